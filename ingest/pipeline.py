"""The ingestion pipeline: discover -> skip unchanged -> parse -> chunk -> embed -> commit.

One failing file is reported with its reason and never stops the batch. Changes are published as index
generations every ``ingest.commit_every`` files and at the end, so a crash loses at most that batch.
A file's parts (a PDF's pages) are chunked and embedded as the parser sends them; the file is committed
whole, once its last part is embedded.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from ingest.chunking import Chunker
from ingest.parsing import ParsedDocument, stream_file
from ingest.sandbox import Parser, SandboxedParser, SandboxLimits, parts_of
from ingest.validation import validate_file
from rag.config import Settings
from rag.documents import ChunkDraft, DocumentRecord
from rag.embedding import Embedder
from rag.errors import DocumentError
from rag.files import sha256_file
from rag.jobs import FileStates
from rag.store import IndexWriter

log = logging.getLogger(__name__)

StageCallback = Callable[[Path, str], None]
_T = TypeVar("_T")


@dataclass
class IngestReport:
    """What one ingestion run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Files that failed before and have not changed since: not tried again.
    still_failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    # Of those chunks, how many took the vector of an identical chunk text already in the index (or
    # earlier in the same batch) instead of being embedded.
    reused: int = 0
    # Tokens of the indexed chunk texts (as the embedder counts them) and pages parsed.
    tokens: int = 0
    pages: int = 0
    seconds: float = 0.0
    # Wall seconds by stage: validate, parse, chunk, embed, write, commit (parse overlaps embed).
    stage_seconds: dict[str, float] = field(default_factory=dict)
    generation: int = 0
    # Set when the index could not be written and the run stopped (the index is unchanged).
    error: str | None = None

    @property
    def documents(self) -> int:
        return len(self.added) + len(self.updated)

    def to_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": len(self.unchanged),
            "deleted": self.deleted,
            "moved": [{"from": a, "to": b} for a, b in self.moved],
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "still_failed": [{"path": p, "reason": r} for p, r in self.still_failed],
            "chunks": self.chunks,
            "reused": self.reused,
            "tokens": self.tokens,
            "pages": self.pages,
            "seconds": round(self.seconds, 2),
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "generation": self.generation,
            "error": self.error,
        }


def document_id(path: Path) -> str:
    """A stable id for a file path (content changes keep the id; the chunks are replaced)."""
    return hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:20]


def discover(paths: Iterable[Path], extensions: Sequence[str]) -> Iterator[Path]:
    """Regular files under ``paths`` with a supported extension; symlinks are never followed."""
    wanted = {e.lower() for e in extensions}
    for root in paths:
        root = Path(root)
        if root.is_symlink():
            log.warning("skipping symlink %s", root)
            continue
        if root.is_file():
            if root.suffix.lower() in wanted:
                yield root.resolve()
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                candidate = Path(dirpath) / name
                if name.startswith(".") or candidate.is_symlink() or not candidate.is_file():
                    continue
                if candidate.suffix.lower() in wanted:
                    yield candidate.resolve()


class Ingestor:
    """Ingests files into the index with one embedder; reuse it to avoid reloading the model.

    Each file is validated (:func:`ingest.validation.validate_file`) and then parsed, in a child process
    with limits when ``ingest.sandbox`` is set. The next files are parsed while the current ones are
    chunked and embedded, a large file's first pages are embedded while its later ones are parsed, and
    chunks of consecutive small files are embedded in one batch, so the embedder is kept busy. Call
    :meth:`close` (or use ``with``) to stop the parser process.
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        ledger: FileStates | None = None,
        *,
        parser: Parser = stream_file,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.ledger = ledger or FileStates(settings.state_path)
        ingest = settings.ingest
        self._sandbox = SandboxedParser(SandboxLimits.from_settings(ingest), parser) if ingest.sandbox else None
        self._parser: Parser = self._sandbox.stream if self._sandbox else parser

    def close(self) -> None:
        """Stop the parser child process, if any (the ingestor can still be used; it starts a new one)."""
        if self._sandbox is not None:
            self._sandbox.close()

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _parse(self, work: _Work, parts: _Parts) -> None:
        """Validate and parse one file (runs in the parse thread), passing its parts on as they come;
        stops early when the consumer gives up on the file."""
        ingest = self.settings.ingest
        t0 = time.perf_counter()
        validated: float | None = None
        try:
            validate_file(work.path, ingest, work.size)
            validated = time.perf_counter()
            stream = parts_of(self._parser(
                work.path, max_pdf_pages=ingest.max_pdf_pages,
                ocr_languages=ingest.ocr_languages if ingest.ocr else None,
            ))
            try:
                for part in stream:
                    parts.put(part)
                    if parts.abandoned.is_set():
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()  # an unfinished sandboxed stream ends its child
        except BaseException as e:
            now = time.perf_counter()
            validated = now if validated is None else validated
            parts.end(validated - t0, now - validated, e)
            if not isinstance(e, Exception):
                raise
            return
        parts.end(validated - t0, time.perf_counter() - validated, None)

    def _chunker(self) -> Chunker:
        chunking = self.settings.chunking
        return Chunker(self.embedder.count_tokens, chunking.max_tokens, chunking.overlap_tokens)

    @staticmethod
    def _record(work: _Work, parsed: ParsedDocument, access: tuple[str, ...]) -> DocumentRecord:
        """The index's record of a parsed file (``parsed``: its last part, which has the title)."""
        return DocumentRecord(
            doc_id=document_id(work.path),
            path=str(work.path),
            title=parsed.title or work.path.name,
            sha256=work.sha,
            kind=parsed.kind,
            access=access,
            size=work.size,
            mtime=work.mtime,
            page_label=parsed.page_label,
        )

    @staticmethod
    def _moves(
        gone: Sequence[DocumentRecord], new_files: Sequence[Path], hashes: dict[str, str]
    ) -> list[tuple[DocumentRecord, Path]]:
        """Pairs of (vanished document, new file) with the same content: renames and moves.

        Only new files of a size some vanished document had are hashed (into ``hashes``, for reuse);
        each vanished document pairs with at most one new file.
        """
        by_size: dict[int, list[DocumentRecord]] = {}
        for doc in gone:
            by_size.setdefault(doc.size, []).append(doc)
        moves = []
        for path in new_files:
            try:
                candidates = by_size.get(path.stat().st_size)
                if not candidates:
                    continue
                sha = hashes[str(path)] = sha256_file(path)
            except OSError:
                continue  # the file went away or is unreadable; the main loop reports it
            match = next((d for d in candidates if d.sha256 == sha), None)
            if match is not None:
                candidates.remove(match)
                moves.append((match, path))
        return moves

    @staticmethod
    def _move(writer: IndexWriter, old: DocumentRecord, path: Path) -> DocumentRecord:
        """Move ``old`` to ``path`` in the index; returns the document's new record."""
        stat = path.stat()
        # A title that was only the old file name follows the file (parse_file falls back to the stem).
        title = path.stem if old.title in (Path(old.path).stem, Path(old.path).name) else old.title
        moved = replace(
            old, doc_id=document_id(path), path=str(path), size=stat.st_size, mtime=stat.st_mtime, title=title
        )
        writer.move_document(
            old.doc_id, new_doc_id=moved.doc_id, path=moved.path, size=moved.size, mtime=moved.mtime, title=title
        )
        return moved

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        access: Sequence[str] = ("public",),
        delete_missing: bool = True,
        progress: bool = False,
        on_stage: StageCallback | None = None,
        on_done: Callable[[Path, str, str | None], None] | None = None,
    ) -> IngestReport:
        """Bring the index up to date with ``paths`` (files or folders).

        With ``delete_missing``, indexed documents under a given folder whose file is gone are removed.
        ``on_stage(path, stage)`` reports progress; ``on_done(path, state, reason)`` reports files that were
        skipped or failed. Files in ``report.added``/``report.updated`` are committed when this returns.

        When the index cannot be written (disk full, I/O error, read-only folder) the run stops there:
        the published index is unchanged, the files not yet committed are in ``report.failed`` with that
        reason (and are tried again by the next run), and ``report.error`` says what happened.

        Raises:
            IndexLockedError: another process is writing the index.
        """
        if not access:
            raise ValueError("ingest needs at least one access token; unknown access must not mean public")
        started = time.perf_counter()
        report = IngestReport()
        files = list(dict.fromkeys(discover(paths, self.settings.ingest.extensions)))
        with IndexWriter(self.settings.index_dir, self.embedder.identity) as writer:
            run = _Run(self, writer, report, self._versions(files), on_stage, on_done)
            bar = tqdm(total=len(files), unit="file", disable=not progress, dynamic_ncols=True)
            try:
                with run.timed("scan"):
                    if delete_missing:
                        run.remove_missing(paths, files)
                    todo = run.classify(files, tuple(sorted(set(access))), bar)
                run.process(todo, bar)
                run.commit()
            except _IndexWriteFailed as e:
                run.abandon(e.reason)
            finally:
                bar.close()
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _versions(files: Sequence[Path]) -> dict[str, tuple[int, float]]:
        """Size and modification time of each file that can still be read (a file's version)."""
        versions = {}
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            versions[str(path)] = (stat.st_size, stat.st_mtime)
        return versions


INDEX_WRITE_FAILURE = "could not write the index"
# Files of this many chunks together are embedded in one call: small files share batches.
_EMBED_GROUP_BATCHES = 4
# Files parsed ahead of the one being embedded, each held in memory until it is embedded: enough that a
# slow parse (OCR) seldom leaves the embedder idle (bench ingest: waiting 5.0 -> 1.4 s of 33 s when 2 ->
# 6), few enough bytes that large files are not all held at once.
_PARSE_AHEAD = 6
_PARSE_AHEAD_BYTES = 32 * 1024 * 1024


def parse_ahead(queued: Sequence[int], upcoming: Sequence[int]) -> int:
    """How many of the ``upcoming`` files (their sizes) to queue for parsing, with ``queued`` (sizes)
    already queued: up to ``_PARSE_AHEAD`` files and ``_PARSE_AHEAD_BYTES`` bytes, and at least one
    when none is queued, however large."""
    count, total = 0, sum(queued)
    for size in upcoming:
        if len(queued) + count >= _PARSE_AHEAD or (len(queued) + count and total + size > _PARSE_AHEAD_BYTES):
            break
        count += 1
        total += size
    return count


@dataclass(frozen=True)
class _Work:
    """A file that needs parsing, with the version that was seen."""

    path: Path
    sha: str
    size: int
    mtime: float

    @property
    def key(self) -> str:
        return str(self.path)


class _Parts:
    """The parts of one file, passed from the parse thread to the thread that chunks and embeds.

    Not bounded: a part is a few pages of text, and a parse that had to wait for the embedder would
    use up its time limit (the sandbox counts wall time per file).
    """

    @dataclass(frozen=True)
    class End:
        validate_s: float
        parse_s: float
        error: BaseException | None

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[ParsedDocument | _Parts.End] = queue.SimpleQueue()
        # Set by the consumer when the file failed: the parse stops at its next part.
        self.abandoned = threading.Event()
        self._ended = False

    def put(self, part: ParsedDocument) -> None:
        self._queue.put(part)

    def end(self, validate_s: float, parse_s: float, error: BaseException | None) -> None:
        """The file's parse is over (``error``: how it failed); only the first call counts."""
        if not self._ended:
            self._ended = True
            self._queue.put(_Parts.End(validate_s, parse_s, error))

    @property
    def ended(self) -> bool:
        return self._ended

    def get(self) -> ParsedDocument | _Parts.End:
        return self._queue.get()


@dataclass
class _Prepared:
    """A file being chunked and embedded, part by part; complete once ``record`` is set."""

    work: _Work
    chunks: list[ChunkDraft] = field(default_factory=list)
    record: DocumentRecord | None = None
    pages: int = 0
    # Vectors of ``chunks[:embedded]``, in blocks as they were embedded.
    vectors: list[np.ndarray] = field(default_factory=list)
    embedded: int = 0
    # Chunks whose vector was taken from the index or an identical chunk before it, not embedded.
    reused: int = 0

    @property
    def waiting(self) -> int:
        """Chunks without a vector yet."""
        return len(self.chunks) - self.embedded


class _IndexWriteFailed(Exception):
    """The index could not be written; ends the run (internal to this module)."""

    def __init__(self, error: BaseException) -> None:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        self.reason = f"{INDEX_WRITE_FAILURE} ({detail or type(error).__name__})"
        super().__init__(self.reason)


class _Run:
    """One call of :meth:`Ingestor.ingest`: the writer, the report and what is not yet committed."""

    def __init__(
        self,
        ingestor: Ingestor,
        writer: IndexWriter,
        report: IngestReport,
        versions: dict[str, tuple[int, float]],
        on_stage: StageCallback | None,
        on_done: Callable[[Path, str, str | None], None] | None,
    ) -> None:
        self.ingestor, self.writer, self.report, self.versions = ingestor, writer, report, versions
        self.ledger = ingestor.ledger
        self.on_stage, self.on_done = on_stage, on_done
        self.known = {d.path: d for d in writer.documents()}
        self.access: tuple[str, ...] = ()
        self.hashes: dict[str, str] = {}
        # Versions to mark committed in the ledger once the next generation is published.
        self.uncommitted: list[tuple[str, int, float]] = []
        self.pending_files = 0
        self.buffer: list[_Prepared] = []
        self.buffered_chunks = 0
        # Vectors embedded in this run whose chunks are not written yet, by text (reused like the index's).
        self.fresh: dict[str, np.ndarray] = {}
        self.in_flight: list[_Work] = []
        # Report lengths at the last commit: what comes after is not published yet.
        self._published = self._marks()

    # -- bookkeeping -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add_time(name, time.perf_counter() - t)

    def add_time(self, name: str, seconds: float) -> None:
        self.report.stage_seconds[name] = self.report.stage_seconds.get(name, 0.0) + seconds

    def stage(self, work: _Work, name: str) -> None:
        self.ledger.set(work.key, name)
        if self.on_stage:
            self.on_stage(work.path, name)

    def fail(self, key: str, reason: str, state: str = "failed") -> None:
        size, mtime = self.versions.get(key, (0, 0.0))
        self.ledger.set(key, state, reason, size=size, mtime=mtime)
        self.report.failed.append((key, reason))
        if self.on_done:
            self.on_done(Path(key), "failed", reason)

    def _marks(self) -> tuple[int, int, int, int, int, int, int, int]:
        r = self.report
        return len(r.added), len(r.updated), len(r.deleted), len(r.moved), r.chunks, r.reused, r.tokens, r.pages

    def _write(self, fn: Callable[..., _T], *args: object, **kwargs: object) -> _T:
        """Call an index writer method; its I/O and database errors end the run."""
        try:
            return fn(*args, **kwargs)
        except (OSError, sqlite3.DatabaseError) as e:
            raise _IndexWriteFailed(e) from e

    # -- the phases --------------------------------------------------------------------------------

    def remove_missing(self, paths: Sequence[Path], files: Sequence[Path]) -> None:
        """Documents under the given folders whose file is gone: moved (same content elsewhere) or deleted."""
        known, report = self.known, self.report
        present = {str(f) for f in files}
        roots = [str(Path(p).resolve()) + os.sep for p in paths if Path(p).is_dir()]
        gone = [d for p, d in known.items() if p not in present and any(p.startswith(r) for r in roots)]
        new_files = [f for f in files if str(f) not in known]
        for vanished, target in Ingestor._moves(gone, new_files, self.hashes):
            known[str(target)] = self._write(Ingestor._move, self.writer, vanished, target)
            del known[vanished.path]
            report.moved.append((vanished.path, str(target)))
            gone.remove(vanished)
        for doc in gone:
            self._write(self.writer.delete_path, doc.path)
            report.deleted.append(doc.path)
            del known[doc.path]
        self.ledger.forget_missing(roots, present)

    def _known_failure(self, key: str, size: int, mtime: float) -> str | None:
        failure = self.ledger.known_failure(key, size, mtime)
        if failure is None or (failure.reason or "").startswith(INDEX_WRITE_FAILURE):
            return None  # an index write failure was not the file's fault: try again
        return failure.reason or failure.state

    def classify(self, files: Sequence[Path], access: tuple[str, ...], bar: tqdm) -> list[_Work]:
        """Settle every file that needs no parsing (unchanged, known failure, access change only);
        returns the rest, to be parsed."""
        known, report, versions, ledger = self.known, self.report, self.versions, self.ledger
        unchanged = {
            key for key, (size, mtime) in versions.items()
            if (d := known.get(key)) is not None and d.size == size and d.mtime == mtime
        }
        for key, (size, mtime) in versions.items():
            if key not in unchanged and self._known_failure(key, size, mtime) is None:
                ledger.set(key, "queued", size=size, mtime=mtime)
        todo = []
        for path in files:
            key = str(path)
            if key not in versions:
                self.fail(key, "the file vanished or cannot be read")
                bar.update()
                continue
            size, mtime = versions[key]
            same = key in unchanged
            if not same and (reason := self._known_failure(key, size, mtime)) is not None:
                report.still_failed.append((key, reason))
                bar.update()
                continue
            try:
                sha = "" if same else self.hashes.get(key) or sha256_file(path)
            except OSError as e:
                self.fail(key, f"cannot read the file ({e.strerror or type(e).__name__})")
                bar.update()
                continue
            old = known.get(key)
            if old is not None and (same or old.sha256 == sha):
                if old.access != access:
                    self._write(self.writer.set_access, old.doc_id, access)
                    report.updated.append(key)
                else:
                    report.unchanged.append(key)
                    if self.on_done:
                        self.on_done(path, "skipped", "unchanged")
                self.uncommitted.append((key, size, mtime))
                bar.update()
                continue
            todo.append(_Work(path, sha, size, mtime))
        self.access = access
        return todo

    def process(self, todo: Sequence[_Work], bar: tqdm) -> None:
        """Parse ``todo`` in a background thread, a few files ahead, while this thread chunks, embeds
        and writes; the parse itself runs in the sandbox process, so both run at once."""
        ingestor = self.ingestor
        upcoming = deque(todo)
        futures: deque[tuple[_Work, _Parts, Future[None]]] = deque()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hauswissen-parse")

        def parse(work: _Work, parts: _Parts) -> None:
            try:
                # "parsing" when the parse starts, not when it is queued: the ledger times each file
                # from here, and the ETA and the status page would otherwise count the queue as work.
                self.stage(work, "parsing")
                ingestor.embedder.reserve_cores(1)  # the parser's core, while it works
                try:
                    ingestor._parse(work, parts)
                finally:
                    ingestor.embedder.reserve_cores(0)
            except BaseException as e:
                if parts.ended:  # after the parse: nobody waits for it, so say it here
                    log.error("after parsing %s: %s", work.path, e, exc_info=e)
                parts.end(0.0, 0.0, e)  # whatever failed, the consumer must not wait for this file forever
                if not isinstance(e, Exception):
                    raise

        def submit() -> None:
            nearest = [w.size for w in itertools.islice(upcoming, _PARSE_AHEAD)]
            for _ in range(parse_ahead([w.size for w, _, _ in futures], nearest)):
                work = upcoming.popleft()
                self.in_flight.append(work)
                parts = _Parts()
                futures.append((work, parts, pool.submit(parse, work, parts)))

        parts: _Parts | None = None
        try:
            submit()
            while futures:
                work, parts, _ = futures.popleft()
                try:
                    prepared = self._prepare(work, parts, submit)
                except DocumentError as e:
                    parts.abandoned.set()
                    self.in_flight.remove(work)
                    self.fail(work.key, e.reason, "quarantined" if e.quarantine else "failed")
                    bar.update()
                    continue
                except _IndexWriteFailed:
                    raise
                except Exception as e:  # one bad file must not stop the batch
                    parts.abandoned.set()
                    self.in_flight.remove(work)
                    log.error("ingesting %s failed: %s", work.path, e, exc_info=e)
                    self.fail(work.key, f"unexpected error: {type(e).__name__}: {e}"[:300])
                    bar.update()
                    continue
                self.stage(work, "embedding")
                self.buffer.append(prepared)
                self.buffered_chunks += prepared.waiting
                full = self.buffered_chunks >= self._group()
                # A generation is due: embed now, so that a crash loses at most commit_every files.
                due = self.pending_files + len(self.buffer) >= ingestor.settings.ingest.commit_every
                if full or due or not futures:
                    self.flush(bar)
            self.flush(bar)
        except BaseException:
            # Interrupted or the index cannot be written: stop the parse in flight now, not after it ends.
            for _, waiting, _ in futures:
                waiting.abandoned.set()
            if parts is not None:
                parts.abandoned.set()
            if ingestor._sandbox is not None:
                ingestor._sandbox.kill()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _group(self) -> int:
        """Chunks embedded in one call."""
        return _EMBED_GROUP_BATCHES * self.ingestor.embedder.batch_size

    def _prepare(self, work: _Work, parts: _Parts, submit: Callable[[], None]) -> _Prepared:
        """Chunk ``work``'s parts as they arrive and embed them in groups while later parts are parsed;
        returns the file once its last part is chunked (the chunks not yet embedded wait for a flush).

        Raises:
            DocumentError: the parse or the embedding failed, or the file has no text.
        """
        prepared = _Prepared(work)
        chunker = self.ingestor._chunker()
        last: ParsedDocument | None = None
        submitted = False
        while True:
            with self.timed("wait"):
                item = parts.get()
            if not submitted:  # the next files' parse may start once this one's has
                submit()
                submitted = True
            if isinstance(item, _Parts.End):
                break
            last = item
            with self.timed("chunk"):
                prepared.chunks += chunker.add(item.elements)
            read = max([prepared.pages, *(e.page or 0 for e in item.elements)])
            if read > prepared.pages:  # shown by ``status`` and the UI: a long scan is not stuck
                try:
                    self.ledger.pages_done(work.key, read)
                except sqlite3.Error as e:  # progress only: never worth failing the file
                    log.warning("could not record the pages done of %s: %s", work.path, e)
            prepared.pages = read
            if prepared.waiting >= self._group():
                if not prepared.vectors:
                    self.stage(work, "embedding")
                with self.timed("embed"):
                    error = self._embed([prepared])[0]
                if error is not None:
                    raise DocumentError(work.key, error)
        self.add_time("validate", item.validate_s)
        self.add_time("parse", item.parse_s)
        if item.error is not None:
            raise item.error
        with self.timed("chunk"):
            prepared.chunks += chunker.finish()
        if not prepared.chunks or last is None:
            raise DocumentError(work.key, "no text found")
        prepared.record = Ingestor._record(work, last, self.access)
        prepared.pages = prepared.pages or 1
        return prepared

    def _embed(self, batch: Sequence[_Prepared]) -> list[str | None]:
        """Embed the chunks of ``batch`` that have no vector yet, in one embedder call; if that fails,
        file by file to find the culprit. Returns, per file, None or why its embedding failed.

        Only texts neither the index nor this run holds yet are embedded, each once (see
        ``IndexWriter.vectors_of``).
        """
        embedder = self.ingestor.embedder
        texts = [c.text for p in batch for c in p.chunks[p.embedded :]]
        known = self._write(self.writer.vectors_of, texts)
        known.update((t, self.fresh[t]) for t in texts if t in self.fresh)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        try:
            fresh = list(embedder.embed(missing, "passage")) if missing else []
        except Exception as e:
            if len(batch) == 1:
                return [f"embedding failed: {e}"[:300]]
            return [error for p in batch for error in self._embed([p])]
        # Texts with a vector before this call; of the others, each text's first chunk is the one embedded.
        available = set(known)
        for p in batch:
            for c in p.chunks[p.embedded :]:
                p.reused += c.text in available
                available.add(c.text)
        known.update(zip(missing, fresh, strict=True))
        embedded = set(missing)
        for p in batch:
            if p.waiting:
                new = p.chunks[p.embedded :]
                block = np.stack([known[c.text] for c in new])
                p.vectors.append(block)
                p.embedded = len(p.chunks)
                # Rows of the block, not of the embedder's output: each vector is held once.
                for c, row in zip(new, block, strict=True):
                    if c.text in embedded and c.text not in self.fresh:
                        self.fresh[c.text] = row
        return [None] * len(batch)

    def flush(self, bar: tqdm) -> None:
        """Embed the buffered files and add them to the pending generation."""
        if not self.buffer:
            return
        batch, self.buffer, self.buffered_chunks = self.buffer, [], 0
        count_tokens = self.ingestor.embedder.count_tokens
        dimension = self.ingestor.embedder.identity.dimension
        with self.timed("embed"):
            errors = self._embed(batch)
        for prepared, error in zip(batch, errors, strict=True):
            bar.update()
            work = prepared.work
            if error is not None:
                self.fail(work.key, error)
                self.in_flight.remove(work)
                continue
            assert prepared.record is not None
            vectors = np.concatenate(prepared.vectors) if prepared.vectors else np.empty((0, dimension))
            with self.timed("write"):
                self._write(self.writer.upsert_document, prepared.record, prepared.chunks, vectors)
            self.in_flight.remove(work)
            report = self.report
            report.chunks += len(prepared.chunks)
            report.reused += prepared.reused
            report.pages += prepared.pages
            with self.timed("chunk"):
                report.tokens += sum(count_tokens(c.text) for c in prepared.chunks)
            (report.updated if work.key in self.known else report.added).append(work.key)
            self.uncommitted.append((work.key, work.size, work.mtime))
            self.pending_files += 1
            bar.set_postfix(chunks=report.chunks, failed=len(report.failed), refresh=False)
        self.fresh.clear()  # written now: the index hands them out
        if self.pending_files >= self.ingestor.settings.ingest.commit_every:
            self.commit()

    def commit(self) -> None:
        """Publish the pending changes, then mark their files committed in the ledger."""
        with self.timed("commit"):
            self.report.generation = self._write(self.writer.commit)
        self.ledger.committed(self.uncommitted)
        self.uncommitted.clear()
        self.pending_files = 0
        self._published = self._marks()

    def abandon(self, reason: str) -> None:
        """The index could not be written: drop the pending changes and say which files they were."""
        log.error("%s; the published index is unchanged", reason)
        self.writer.rollback()
        report = self.report
        added, updated, deleted, moved, chunks, reused, tokens, pages = self._published
        lost = report.added[added:] + report.updated[updated:] + [w.key for w in self.in_flight]
        del report.added[added:], report.updated[updated:], report.deleted[deleted:], report.moved[moved:]
        report.chunks, report.reused, report.tokens, report.pages = chunks, reused, tokens, pages
        for key in dict.fromkeys(lost):
            self.fail(key, reason)
        report.error = reason
