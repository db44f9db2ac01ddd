"""The file ledger: every file's state and reason, failures remembered per version, an ETA."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from rag.jobs import FileStates, JobQueue


@pytest.fixture
def ledger(tmp_path: Path) -> FileStates:
    return FileStates(tmp_path / "state.sqlite")


def test_a_file_moves_through_its_states_and_its_time_is_measured(ledger: FileStates) -> None:
    ledger.set("/s/a.pdf", "queued", size=10, mtime=1.0)
    ledger.set("/s/a.pdf", "parsing")
    time.sleep(0.05)
    ledger.set("/s/a.pdf", "embedding")
    ledger.set("/s/a.pdf", "committed")

    (state,) = ledger.all()
    assert state.state == "committed" and state.reason is None
    assert state.size == 10 and state.mtime == 1.0
    assert state.seconds is not None and state.seconds >= 0.05


def test_a_failure_is_remembered_for_that_version_only(ledger: FileStates) -> None:
    ledger.set("/s/a.pdf", "parsing", size=10, mtime=1.0)
    ledger.set("/s/a.pdf", "quarantined", "parser exceeded its time limit (120 s)")

    known = ledger.known_failure("/s/a.pdf", 10, 1.0)
    assert known is not None and known.reason == "parser exceeded its time limit (120 s)"
    assert ledger.known_failure("/s/a.pdf", 11, 1.0) is None  # changed: try again
    assert ledger.known_failure("/s/a.pdf", 10, 2.0) is None


def test_work_a_crash_interrupted_is_queued_again(ledger: FileStates) -> None:
    ledger.set("/s/a.md", "parsing", size=1, mtime=1.0)
    ledger.set("/s/b.md", "embedding", size=1, mtime=1.0)
    ledger.set("/s/c.md", "committed", size=1, mtime=1.0)

    assert ledger.requeue_interrupted() == 2
    assert ledger.counts() == {"queued": 2, "committed": 1}


def test_failures_are_listed_first(ledger: FileStates) -> None:
    ledger.set("/s/a.md", "committed")
    ledger.set("/s/z.pdf", "failed", "password-protected PDF")

    assert [s.path for s in ledger.all()] == ["/s/z.pdf", "/s/a.md"]
    assert [s.path for s in ledger.all(["committed"])] == ["/s/a.md"]


def test_the_eta_is_waiting_files_times_the_median_file_time(ledger: FileStates) -> None:
    assert ledger.eta_seconds() is None
    for name in ("a", "b", "c"):
        ledger.set(f"/s/{name}", "parsing")
        ledger.set(f"/s/{name}", "committed")
    for name in ("d", "e"):
        ledger.set(f"/s/{name}", "queued")

    eta = ledger.eta_seconds()
    assert eta is not None and 0 <= eta < 1


def test_deleted_files_are_forgotten(ledger: FileStates) -> None:
    ledger.set("/s/a.md", "committed")
    ledger.forget(["/s/a.md"])
    assert ledger.all() == []


def test_the_ledger_shares_the_state_database_with_the_upload_queue(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "state.sqlite")
    ledger = FileStates(tmp_path / "state.sqlite")
    queue.enqueue(tmp_path / "u.pdf", "u.pdf")
    ledger.set(str(tmp_path / "u.pdf"), "queued")

    assert queue.counts() == {"queued": 1} and ledger.counts() == {"queued": 1}


def test_an_unknown_state_is_refused(ledger: FileStates) -> None:
    with pytest.raises(ValueError, match="unknown file state"):
        ledger.set("/s/a", "done")


def test_pages_done_show_while_a_file_is_read_and_go_when_it_is_committed(ledger: FileStates) -> None:
    ledger.set("/s/scan.pdf", "parsing", size=10, mtime=1.0)
    ledger.pages_done("/s/scan.pdf", 57)
    assert ledger.all()[0].pages == 57
    ledger.set("/s/scan.pdf", "embedding")  # its first pages are embedded while it is still read
    assert ledger.all()[0].pages == 57
    ledger.committed([("/s/scan.pdf", 10, 1.0)])  # how the pipeline marks a published file
    assert ledger.all()[0].pages is None
    ledger.set("/s/scan.pdf", "parsing")
    ledger.pages_done("/s/scan.pdf", 3)
    ledger.requeue_interrupted()  # after a crash the page count would be stale
    assert ledger.all()[0].pages is None


def test_a_ledger_an_older_version_wrote_gains_the_pages_column_and_reads_before_that(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE files (path TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT, size INTEGER NOT NULL "
        "DEFAULT 0, mtime REAL NOT NULL DEFAULT 0, started REAL, seconds REAL, updated REAL NOT NULL)"
    )
    old.execute("INSERT INTO files VALUES ('/s/a.md', 'committed', NULL, 1, 1.0, NULL, 0.5, 1.0)")
    old.commit()
    old.close()

    reader = FileStates(path, read_only=True)  # a status page before any writer has opened it
    assert [(f.path, f.pages) for f in reader.all()] == [("/s/a.md", None)]
    reader.close()
    writer = FileStates(path)
    writer.set("/s/b.pdf", "parsing")
    writer.pages_done("/s/b.pdf", 3)
    assert {f.path: f.pages for f in writer.all()} == {"/s/a.md": None, "/s/b.pdf": 3}
    writer.close()


def test_two_processes_migrating_an_old_ledger_at_once_both_open_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE files (path TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT, size INTEGER NOT NULL "
                "DEFAULT 0, mtime REAL NOT NULL DEFAULT 0, started REAL, seconds REAL, updated REAL NOT NULL)")
    old.commit()
    old.close()
    FileStates(path).close()  # the first process adds the column

    import rag.jobs

    real, told = rag.jobs._has_column, []

    def stale_first_look(db: sqlite3.Connection, table: str, column: str) -> bool:
        if not told:  # the second process looked before the first one's ALTER TABLE
            told.append(True)
            return False
        return real(db, table, column)

    monkeypatch.setattr(rag.jobs, "_has_column", stale_first_look)
    second = FileStates(path)  # before the fix: "duplicate column name: pages"
    second.set("/s/a.pdf", "parsing")
    second.pages_done("/s/a.pdf", 1)
    assert second.all()[0].pages == 1
    second.close()
