"""The ingestion job table: what the UI hands to the worker, and what the worker reports back.

A job is one file. States: ``queued`` -> ``parsing`` -> ``embedding`` -> ``committed`` (or ``skipped``
when unchanged, ``failed`` with a plain reason). The table lives in ``state.sqlite`` (WAL mode) so the UI
can enqueue and read progress while the worker writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
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
"""


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


class JobQueue:
    """A small durable queue in SQLite; safe to use from several processes and threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)

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

    def requeue_interrupted(self) -> int:
        """Put jobs a crashed worker left half-done back in the queue; returns how many."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = 'queued', updated = ? WHERE state IN ('parsing', 'embedding')",
                (time.time(),),
            )
        return cur.rowcount
