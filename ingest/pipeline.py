"""The ingestion pipeline: discover -> skip unchanged -> parse -> chunk -> embed -> commit.

One failing file is reported with its reason and never stops the batch. Changes are published as index
generations every ``ingest.commit_every`` files and at the end, so a crash loses at most that batch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from ingest.chunking import chunk_document
from ingest.parsing import parse_file
from rag.config import Settings
from rag.documents import DocumentRecord
from rag.embedding import Embedder
from rag.errors import DocumentError
from rag.files import sha256_file
from rag.jobs import FileStates
from rag.store import IndexWriter

log = logging.getLogger(__name__)

StageCallback = Callable[[Path, str], None]


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
    seconds: float = 0.0
    generation: int = 0

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
            "seconds": round(self.seconds, 2),
            "generation": self.generation,
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
    """Ingests files into the index with one embedder; reuse it to avoid reloading the model."""

    def __init__(self, settings: Settings, embedder: Embedder, ledger: FileStates | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.ledger = ledger or FileStates(settings.state_path)

    def _check_size(self, path: Path, size: int) -> None:
        limit = self.settings.ingest.max_file_mb * 1e6
        if size == 0:
            raise DocumentError(str(path), "the file is empty")
        if size > limit:
            raise DocumentError(
                str(path), f"file too large: {size / 1e6:.0f} MB > {self.settings.ingest.max_file_mb:.0f} MB"
            )

    def _ingest_file(
        self,
        writer: IndexWriter,
        path: Path,
        sha: str,
        access: Sequence[str],
        on_stage: StageCallback | None,
    ) -> int:
        stat = path.stat()
        self._check_size(path, stat.st_size)
        if on_stage:
            on_stage(path, "parsing")
        ingest = self.settings.ingest
        parsed = parse_file(
            path, max_pdf_pages=ingest.max_pdf_pages, ocr_languages=ingest.ocr_languages if ingest.ocr else None
        )
        _, chunks = chunk_document(
            parsed,
            self.embedder.count_tokens,
            self.settings.chunking.max_tokens,
            self.settings.chunking.overlap_tokens,
        )
        if not chunks:
            raise DocumentError(str(path), "no text found")
        if on_stage:
            on_stage(path, "embedding")
        vectors = self.embedder.embed([c.text for c in chunks], "passage")
        title = parsed.title or path.name
        record = DocumentRecord(
            doc_id=document_id(path),
            path=str(path),
            title=title,
            sha256=sha,
            kind=parsed.kind,
            access=tuple(access),
            size=stat.st_size,
            mtime=stat.st_mtime,
            page_label=parsed.page_label,
        )
        writer.upsert_document(record, chunks, vectors)
        return len(chunks)

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

        Raises:
            IndexLockedError: another process is writing the index.
        """
        if not access:
            raise ValueError("ingest needs at least one access token; unknown access must not mean public")
        wanted_access = tuple(sorted(set(access)))
        started = time.perf_counter()
        report = IngestReport()
        files = list(dict.fromkeys(discover(paths, self.settings.ingest.extensions)))
        ledger = self.ledger
        with IndexWriter(self.settings.index_dir, self.embedder.identity) as writer:
            known = {d.path: d for d in writer.documents()}
            hashes: dict[str, str] = {}
            if delete_missing:
                present = {str(f) for f in files}
                roots = [str(Path(p).resolve()) + os.sep for p in paths if Path(p).is_dir()]
                gone = [d for p, d in known.items() if p not in present and any(p.startswith(r) for r in roots)]
                for vanished, target in self._moves(gone, [f for f in files if str(f) not in known], hashes):
                    known[str(target)] = self._move(writer, vanished, target)
                    del known[vanished.path]
                    report.moved.append((vanished.path, str(target)))
                    gone.remove(vanished)
                for doc in gone:
                    writer.delete_path(doc.path)
                    report.deleted.append(doc.path)
                    del known[doc.path]
                ledger.forget_missing(roots, present)
            versions = self._versions(files)
            unchanged = {
                key for key, (size, mtime) in versions.items()
                if (d := known.get(key)) is not None and d.size == size and d.mtime == mtime
            }
            for key, (size, mtime) in versions.items():
                if key not in unchanged and ledger.known_failure(key, size, mtime) is None:
                    ledger.set(key, "queued", size=size, mtime=mtime)
            uncommitted: list[tuple[str, int, float]] = []

            def commit() -> None:
                report.generation = writer.commit()
                ledger.committed(uncommitted)
                uncommitted.clear()

            def stage(path: Path, name: str) -> None:
                ledger.set(str(path), name)
                if on_stage:
                    on_stage(path, name)

            def fail(key: str, reason: str, state: str) -> None:
                size, mtime = versions.get(key, (0, 0.0))
                ledger.set(key, state, reason, size=size, mtime=mtime)
                report.failed.append((key, reason))
                if on_done:
                    on_done(Path(key), "failed", reason)

            pending = 0
            bar = tqdm(files, unit="file", disable=not progress, dynamic_ncols=True)
            for path in bar:
                bar.set_postfix_str(path.name[-40:], refresh=False)
                key = str(path)
                if key not in versions:
                    fail(key, "the file vanished or cannot be read", "failed")
                    continue
                size, mtime = versions[key]
                try:
                    old = known.get(key)
                    same = key in unchanged
                    if not same and (failure := ledger.known_failure(key, size, mtime)) is not None:
                        report.still_failed.append((key, failure.reason or failure.state))
                        continue
                    sha = "" if same else hashes.get(key) or sha256_file(path)
                    if old is not None and (same or old.sha256 == sha):
                        if old.access != wanted_access:
                            writer.set_access(old.doc_id, wanted_access)
                            report.updated.append(key)
                        else:
                            report.unchanged.append(key)
                            if on_done:
                                on_done(path, "skipped", "unchanged")
                        uncommitted.append((key, size, mtime))
                        continue
                    n = self._ingest_file(writer, path, sha, wanted_access, stage)
                except DocumentError as e:
                    fail(key, e.reason, "quarantined" if e.quarantine else "failed")
                    continue
                except Exception as e:  # one bad file must not stop the batch
                    log.exception("ingesting %s failed", path)
                    fail(key, f"unexpected error: {type(e).__name__}: {e}"[:300], "failed")
                    continue
                report.chunks += n
                (report.updated if key in known else report.added).append(key)
                uncommitted.append((key, size, mtime))
                pending += 1
                if pending >= self.settings.ingest.commit_every:
                    commit()
                    pending = 0
                bar.set_postfix(chunks=report.chunks, failed=len(report.failed), refresh=False)
            bar.close()
            commit()
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
