"""What the index and the ingestion queue look like right now, for ``hauswissen status`` and the UI.

:func:`index_status` merges three read-only views: the published index (documents, chunks, generation),
the file ledger (every file's state and plain-words reason) and the upload job table. Nothing is created
or changed: on a fresh install, with no data folder yet, it reports an empty index and an empty queue.
:func:`queue_status` is the cheap part of it (counts, the files being worked on, the failures, the ETA)
that the UI polls while files are pending.

The dictionary of :meth:`IndexStatus.to_dict` (``hauswissen status --json`` prints it, adding
``data_dir``, ``embedder``, ``llm`` and ``jobs``, an alias of ``uploads``) is::

    {
      "documents": 12,                 # documents in the published index
      "chunks": 340,                   # chunks (passages) in the published index
      "generation": 7,                 # the published generation, 0 for an empty index
      "last_ingest": "2025-05-01 14:03:12" | null,   # when it was published (local time)
      "queue": {"queued": 2, "parsing": 1, "embedding": 0, "committed": 12, "failed": 1, "quarantined": 0},
      "pending": 3,                    # files still to do: queued + parsing + embedding
      "eta_seconds": 41.5 | null,      # until the pending files are done; null when nothing is pending
                                       # or no file has been timed yet
      "uploads": {"queued": 0, "parsing": 0, "embedding": 0, "committed": 3, "skipped": 0, "failed": 1},
      "files": [                       # failures first, then work in progress, queued, committed; by path
        {
          "path": "/srv/share/a.pdf",
          "state": "failed",           # one of FILE_STATES
          "reason": "the file is empty" | null,   # plain words, for failed and quarantined files
          "size": 1234 | null,         # bytes of the version the state belongs to
          "updated": "2025-05-01 14:03:10" | null,  # when the state was recorded (local time)
          "title": "A" | null,         # title, kind and chunks of the indexed version; null if not indexed
          "kind": "pdf" | null,
          "access": ["public"] | null, # access tokens, when known (index, upload, source folder)
          "chunks": 17 | null,
          "pages": 57 | null           # pages done so far, while a PDF or scan is being read
        }
      ]
    }

Paths and reasons come from untrusted files: callers escape them for their medium.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.documents import DocumentRecord
from rag.embedding import EmbedderIdentity
from rag.jobs import ACTIVE, FILE_STATES, STATES, FileState, FileStates, JobQueue
from rag.store import IndexReader

log = logging.getLogger(__name__)

PENDING = ("queued", "parsing", "embedding")
WORKING = ("parsing", "embedding")
PROBLEMS = ("failed", "quarantined")
_ORDER = {"failed": 0, "quarantined": 0, "parsing": 1, "embedding": 1, "queued": 2, "committed": 3}


def format_timestamp(timestamp: float | None) -> str | None:
    """``2025-05-01 14:03:12`` in local time, or None."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else None


def describe_eta(seconds: float) -> str:
    """``about 3 min left`` (English, for the command line)."""
    minutes = max(1, round(seconds / 60))
    if seconds < 60:
        return "less than a minute left"
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {minutes / 60:.1f} h left"


@dataclass(frozen=True)
class FileStatus:
    """One file as the ledger and the index know it."""

    path: str
    state: str
    reason: str | None = None
    size: int | None = None
    updated: float | None = None
    title: str | None = None
    kind: str | None = None
    access: tuple[str, ...] | None = None
    chunks: int | None = None
    pages: int | None = None

    @property
    def name(self) -> str:
        """The file name without its folder."""
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]

    def visible_to(self, access: Iterable[str]) -> bool:
        """Whether a caller with ``access`` may see this file's name (unknown access: no)."""
        return self.access is not None and bool(set(self.access).intersection(access))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "state": self.state,
            "reason": self.reason,
            "size": self.size,
            "updated": format_timestamp(self.updated),
            "title": self.title,
            "kind": self.kind,
            "access": list(self.access) if self.access is not None else None,
            "chunks": self.chunks,
            "pages": self.pages,
        }


@dataclass(frozen=True)
class QueueStatus:
    """The ingestion queue: files per state, what is being worked on, what failed, and an ETA."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILE_STATES, 0))
    uploads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    eta_seconds: float | None = None
    working: list[FileStatus] = field(default_factory=list)
    problems: list[FileStatus] = field(default_factory=list)

    @property
    def pending(self) -> int:
        """Files still to do: queued, being parsed or being embedded."""
        return sum(self.counts.get(s, 0) for s in PENDING)

    @property
    def uploads_active(self) -> int:
        return sum(self.uploads.get(s, 0) for s in ACTIVE)

    @property
    def empty(self) -> bool:
        """True when the ledger knows no file at all."""
        return not any(self.counts.values())


@dataclass(frozen=True)
class IndexStatus:
    """The published index merged with the ledger and the upload jobs (see the module docstring)."""

    documents: int
    chunks: int
    generation: int
    created: float | None
    queue: QueueStatus
    files: list[FileStatus]

    @property
    def pending(self) -> int:
        return self.queue.pending

    @property
    def eta_seconds(self) -> float | None:
        return self.queue.eta_seconds

    @property
    def problems(self) -> list[FileStatus]:
        return [f for f in self.files if f.state in PROBLEMS]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dictionary described in the module docstring."""
        eta = self.queue.eta_seconds
        return {
            "documents": self.documents,
            "chunks": self.chunks,
            "generation": self.generation,
            "last_ingest": format_timestamp(self.created),
            "queue": dict(self.queue.counts),
            "pending": self.pending,
            "eta_seconds": round(eta, 1) if eta is not None else None,
            "uploads": dict(self.queue.uploads),
            "files": [f.to_dict() for f in self.files],
        }


class _AccessGuess:
    """Where a file's access tokens are known from: its upload job, the index, or its source folder."""

    def __init__(
        self, settings: Settings, documents: Iterable[DocumentRecord], uploads: dict[str, tuple[str, ...]]
    ) -> None:
        # The ledger names files by their resolved path; a job by the path it was stored under.
        self._uploads = {**{os.path.realpath(p): a for p, a in uploads.items()}, **uploads}
        self._indexed = {d.path: d.access for d in documents}
        self._roots = tuple(
            str(root) + os.sep
            for folder in settings.paths.sources
            for root in {Path(folder).absolute(), Path(folder).resolve()}
        )
        self._default = tuple(settings.retrieval.default_access)

    def __call__(self, path: str) -> tuple[str, ...] | None:
        if path in self._uploads:
            return self._uploads[path]
        if path in self._indexed:
            return self._indexed[path]
        if path.startswith(self._roots):
            return self._default  # what the worker's folder sync gives them
        return None


def _ledger_rows(state_path: Path, states: Sequence[str]) -> tuple[dict[str, int], float | None, list[FileState]]:
    ledger = FileStates(state_path, read_only=True)
    try:
        return ledger.counts(), ledger.eta_seconds(), ledger.all(states) if states else []
    finally:
        ledger.close()


def _read_state(
    state_path: Path, states: Sequence[str]
) -> tuple[dict[str, int], float | None, list[FileState], dict[str, int], dict[str, tuple[str, ...]]]:
    """Counts, ETA and the rows in ``states`` of the ledger, upload counts and upload access."""
    if not state_path.is_file():
        return {}, None, [], {}, {}
    try:
        counts, eta, rows = _ledger_rows(state_path, states)
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):
            raise
        counts, eta, rows = {}, None, []  # written before the ledger existed
    queue = JobQueue(state_path, read_only=True)
    try:
        uploads, upload_access = queue.counts(), queue.access_by_path()
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):
            raise
        uploads, upload_access = {}, {}
    finally:
        queue.close()
    return counts, eta, rows, uploads, upload_access


def _file_status(
    row: FileState, access: tuple[str, ...] | None, doc: DocumentRecord | None = None, chunks: int | None = None
) -> FileStatus:
    return FileStatus(
        path=row.path, state=row.state, reason=row.reason, size=row.size, updated=row.updated,
        title=doc.title if doc else None, kind=doc.kind if doc else None, access=access, chunks=chunks,
        pages=row.pages,
    )


def _queue(
    counts: dict[str, int], uploads: dict[str, int], eta: float | None, files: Iterable[FileStatus]
) -> QueueStatus:
    listed = list(files)
    pending = sum(counts.get(s, 0) for s in PENDING)
    return QueueStatus(
        counts={s: counts.get(s, 0) for s in FILE_STATES},
        uploads={s: uploads.get(s, 0) for s in STATES},
        eta_seconds=eta if pending else None,
        working=[f for f in listed if f.state in WORKING],
        problems=[f for f in listed if f.state in PROBLEMS],
    )


def queue_status(settings: Settings, documents: Iterable[DocumentRecord] = ()) -> QueueStatus:
    """The ingestion queue of ``settings.state_path``, read-only; empty when it does not exist yet.

    ``documents`` (the published index's, when at hand) lets files that were indexed before carry their
    access tokens, so callers can hide names a user may not see.
    """
    counts, eta, rows, uploads, upload_access = _read_state(settings.state_path, WORKING + PROBLEMS)
    access = _AccessGuess(settings, documents, upload_access)
    return _queue(counts, uploads, eta, (_file_status(r, access(r.path)) for r in rows))


def index_status(settings: Settings, identity: EmbedderIdentity, *, reader: IndexReader | None = None) -> IndexStatus:
    """The published index, every file the ledger or the index knows, and the queue; creates nothing.

    Raises:
        IndexMismatchError: the index was built with another embedder than ``identity``.
        IndexCorruptError: the published generation cannot be read.
    """
    own_reader = reader is None
    if reader is None:
        reader = IndexReader(settings.index_dir, identity)
    try:
        stats = reader.stats()
        documents = reader.documents()
        chunk_counts = reader.chunk_count_by_document()
    finally:
        if own_reader:
            reader.close()
    counts, eta, rows, uploads, upload_access = _read_state(settings.state_path, FILE_STATES)
    access = _AccessGuess(settings, documents, upload_access)
    by_path = {d.path: d for d in documents}
    files = []
    for row in rows:
        doc = by_path.get(row.path)
        chunks = chunk_counts.get(doc.doc_id, 0) if doc else None
        files.append(_file_status(row, access(row.path), doc, chunks))
    in_ledger = {r.path for r in rows}
    files += [
        FileStatus(
            path=d.path, state="committed", size=d.size, title=d.title, kind=d.kind, access=d.access,
            chunks=chunk_counts.get(d.doc_id, 0),
        )
        for d in documents
        if d.path not in in_ledger
    ]
    files.sort(key=lambda f: (_ORDER.get(f.state, 4), f.path))
    return IndexStatus(
        documents=stats.documents,
        chunks=stats.chunks,
        generation=stats.generation,
        created=stats.created,
        queue=_queue(counts, uploads, eta, files),
        files=files,
    )
