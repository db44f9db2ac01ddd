"""The ingestion job table and the file ledger, both in ``state.sqlite`` (WAL mode).

A job is one upload the UI hands to the worker. States: ``queued`` -> ``parsing`` -> ``embedding`` ->
``committed`` (or ``skipped`` when unchanged, ``failed`` with a plain reason).

The file ledger (:class:`FileStates`) holds the state of every file the pipeline has seen, uploads and
folder files alike: ``queued``, ``parsing``, ``embedding``, ``committed``, ``failed`` (a plain reason) or
``quarantined`` (the file was refused as dangerous or broke the parser: crash, hang, memory). A failed or
quarantined file is not tried again until its size or modification time changes. The UI and
``hauswissen status`` read it for the queue, the failures and an ETA, while the worker writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "parsing", "embedding", "committed", "skipped", "failed")
ACTIVE = ("queued", "parsing", "embedding")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    display_name TEXT NOT NULL,
    access TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, job_id);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    mtime REAL NOT NULL DEFAULT 0,
    started REAL,
    seconds REAL,
    updated REAL NOT NULL,
    pages INTEGER
);
CREATE INDEX IF NOT EXISTS files_state ON files(state);
"""
# Columns added after the first release: (table, column, type), added to older databases on open.
_ADDED_COLUMNS = (("files", "pages", "INTEGER"),)


@dataclass(frozen=True)
class Job:
    job_id: int
    source: str
    path: str
    display_name: str
    access: tuple[str, ...]
    state: str
    reason: str | None
    created: float
    updated: float


def _row_to_job(row: sqlite3.Row | tuple) -> Job:
    return Job(
        job_id=row[0], source=row[1], path=row[2], display_name=row[3], access=tuple(json.loads(row[4])),
        state=row[5], reason=row[6], created=row[7], updated=row[8],
    )


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """The state database in autocommit and WAL mode, so the UI reads while the worker writes.

    ``read_only`` opens an existing database without creating or changing it (status readers).

    Raises:
        sqlite3.OperationalError: ``read_only`` and the database does not exist.
    """
    if read_only:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False, isolation_level=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.executescript(_SCHEMA)
    for table, column, kind in _ADDED_COLUMNS:
        if _has_column(db, table, column):
            continue
        # Checked again under the write lock: the worker and the UI may open an old database at once.
        db.execute("BEGIN IMMEDIATE")
        try:
            if not _has_column(db, table, column):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return db


def _has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))


class JobQueue:
    """A small durable queue in SQLite; safe to use from several processes and threads."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = _connect(self.path, read_only=read_only)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def enqueue(
        self, path: Path | str, display_name: str, access: Sequence[str] = ("public",), source: str = "upload"
    ) -> int:
        """Add a file for the worker; returns the job id."""
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO jobs (source, path, display_name, access, state, created, updated) "
                "VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                (source, str(path), display_name, json.dumps(list(access)), now, now),
            )
        return int(cur.lastrowid or 0)

    def claim_next(self) -> Job | None:
        """Take the oldest queued job and mark it ``parsing``; None when the queue is empty."""
        with self._lock:
            row = self._db.execute(
                "UPDATE jobs SET state = 'parsing', updated = ? WHERE job_id = "
                "(SELECT job_id FROM jobs WHERE state = 'queued' ORDER BY job_id LIMIT 1) "
                "RETURNING job_id, source, path, display_name, access, state, reason, created, updated",
                (time.time(),),
            ).fetchone()
        return _row_to_job(row) if row else None

    def update(self, job_id: int, state: str, reason: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, reason = ?, updated = ? WHERE job_id = ?",
                (state, reason, time.time(), job_id),
            )

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            row = self._db.execute(
                "SELECT job_id, source, path, display_name, access, state, reason, created, updated "
                "FROM jobs WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        return _row_to_job(row) if row else None

    def recent(self, limit: int = 50) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, source, path, display_name, access, state, reason, created, updated "
                "FROM jobs ORDER BY job_id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row_to_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    def access_by_path(self) -> dict[str, tuple[str, ...]]:
        """The access tokens of the latest job for each uploaded file path."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path, access FROM jobs WHERE job_id IN (SELECT MAX(job_id) FROM jobs GROUP BY path)"
            ).fetchall()
        return {path: tuple(json.loads(access)) for path, access in rows}

    def requeue_interrupted(self) -> int:
        """Put jobs a crashed worker left half-done back in the queue; returns how many."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = 'queued', updated = ? WHERE state IN ('parsing', 'embedding')",
                (time.time(),),
            )
        return cur.rowcount


FILE_STATES = ("queued", "parsing", "embedding", "committed", "failed", "quarantined")
_WORKING = ("parsing", "embedding")


@dataclass(frozen=True)
class FileState:
    """What the ledger knows of one file."""

    path: str
    state: str
    reason: str | None
    size: int
    mtime: float
    seconds: float | None
    updated: float
    # Pages done so far (read and final; a PDF page is final 16 pages later) while a PDF or scan is
    # being read; None otherwise.
    pages: int | None = None


class FileStates:
    """The ledger of every file's ingestion state; shares ``state.sqlite`` with :class:`JobQueue`."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self._lock = threading.Lock()
        self._db = _connect(Path(path), read_only=read_only)
        # A reader of a database an older version wrote (no writer has added the column yet).
        self._pages = "pages" if _has_column(self._db, "files", "pages") else "NULL"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def pages_done(self, path: str, pages: int) -> None:
        """Record how many pages of ``path`` are done so far (cleared when its state changes, except to
        ``embedding``, which a long file reaches while it is still being read)."""
        with self._lock:
            self._db.execute("UPDATE files SET pages = ? WHERE path = ?", (pages, path))

    def set(
        self, path: str, state: str, reason: str | None = None, *, size: int | None = None, mtime: float | None = None
    ) -> None:
        """Record ``state`` for ``path``; ``size``/``mtime`` identify the version a failure belongs to."""
        if state not in FILE_STATES:
            raise ValueError(f"unknown file state {state!r}")
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO files (path, state, reason, size, mtime, started, seconds, updated) "
                "VALUES (?, ?, ?, coalesce(?, 0), coalesce(?, 0), ?, NULL, ?) "
                "ON CONFLICT (path) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
                "size = coalesce(?, size), mtime = coalesce(?, mtime), "
                # the clock starts when work starts and stops when the file is done
                "started = CASE WHEN excluded.state = 'parsing' THEN excluded.updated "
                "WHEN excluded.state = 'queued' THEN NULL ELSE started END, "
                "seconds = CASE WHEN excluded.state IN ('committed', 'failed', 'quarantined') AND started "
                "IS NOT NULL THEN excluded.updated - started ELSE seconds END, updated = excluded.updated, "
                "pages = CASE WHEN excluded.state = 'embedding' THEN pages ELSE NULL END",
                (path, state, reason, size, mtime, now if state == "parsing" else None, now, size, mtime),
            )

    def committed(self, files: Sequence[tuple[str, int, float]]) -> None:
        """Mark ``(path, size, mtime)`` versions as committed in one transaction (rows already saying
        so are left alone, so an unchanged folder of thousands of files costs one quick statement)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO files (path, state, reason, size, mtime, started, seconds, updated) "
                    "VALUES (?, 'committed', NULL, ?, ?, NULL, NULL, ?) "
                    "ON CONFLICT (path) DO UPDATE SET state = 'committed', reason = NULL, size = excluded.size, "
                    "mtime = excluded.mtime, updated = excluded.updated, pages = NULL, "
                    "seconds = CASE WHEN started IS NOT NULL THEN excluded.updated - started ELSE seconds END "
                    "WHERE state != 'committed' OR size != excluded.size OR mtime != excluded.mtime",
                    [(path, size, mtime, now) for path, size, mtime in files],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def forget(self, paths: Sequence[str]) -> None:
        """Drop files that are gone from their folder (deleted documents)."""
        with self._lock:
            self._db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])

    def forget_missing(self, roots: Sequence[str], present: Collection[str]) -> None:
        """Drop files under the folders ``roots`` (ending in a separator) that are not in ``present``."""
        with self._lock:
            paths = [r[0] for r in self._db.execute("SELECT path FROM files")]
        self.forget([p for p in paths if p not in present and p.startswith(tuple(roots))])

    def known_failure(self, path: str, size: int, mtime: float) -> FileState | None:
        """The failed or quarantined state of this exact version of ``path``, if it has one."""
        with self._lock:
            row = self._db.execute(
                "SELECT path, state, reason, size, mtime, seconds, updated FROM files "
                "WHERE path = ? AND state IN ('failed', 'quarantined') AND size = ? AND mtime = ?",
                (path, size, mtime),
            ).fetchone()
        return FileState(*row) if row else None

    def requeue_interrupted(self) -> int:
        """Files a crashed worker was working on go back to ``queued``; returns how many."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE files SET state = 'queued', started = NULL, pages = NULL, updated = ? "
                "WHERE state IN ('parsing', 'embedding')",
                (time.time(),),
            )
        return cur.rowcount

    def counts(self) -> dict[str, int]:
        """Files per state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM files GROUP BY state").fetchall()
        return {state: int(n) for state, n in rows}

    def all(self, states: Sequence[str] = FILE_STATES) -> list[FileState]:
        """Every file in ``states``, problems first, then by path."""
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT path, state, reason, size, mtime, seconds, updated, {self._pages} FROM files "  # noqa: S608
                f"WHERE state IN ({marks}) ORDER BY state NOT IN ('failed', 'quarantined'), path",
                list(states),
            ).fetchall()
        return [FileState(*r) for r in rows]

    def eta_seconds(self, recent: int = 50) -> float | None:
        """Seconds until the queue is done: waiting files times the median time of the last ``recent``
        files; None when nothing waits or no file has been timed yet."""
        with self._lock:
            waiting = self._db.execute(
                "SELECT COUNT(*) FROM files WHERE state IN ('queued', 'parsing', 'embedding')"
            ).fetchone()[0]
            times = [
                r[0]
                for r in self._db.execute(
                    "SELECT seconds FROM files WHERE seconds IS NOT NULL ORDER BY updated DESC LIMIT ?", (recent,)
                )
            ]
        if not waiting or not times:
            return None
        times.sort()
        return waiting * times[len(times) // 2]
