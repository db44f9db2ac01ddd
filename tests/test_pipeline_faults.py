"""The pipeline under faults: an unwritable index, a failing embedder; and parsing beside embedding."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import numpy as np
import pytest
from sandbox_parsers import waits_for_embedding, waits_for_its_first_pages_embedded

import rag.store as store
from ingest.pipeline import INDEX_WRITE_FAILURE, Ingestor
from ingest.worker import Worker
from rag.config import Settings
from rag.embedding import HashingEmbedder, TextKind
from rag.integrity import verify_index
from rag.jobs import FileStates, JobQueue
from rag.store import IndexReader

TESTS = Path(__file__).resolve().parent
TEXT = "Der Arbeitnehmer hat Anspruch auf {n} Werktage Urlaub im Kalenderjahr."


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "sources"
    folder.mkdir()
    for n in range(6):
        (folder / f"regel-{n}.txt").write_text(TEXT.format(n=n), encoding="utf-8")
    return folder


def _documents(settings: Settings) -> set[str]:
    reader = IndexReader(settings.index_dir, HashingEmbedder(64).identity)
    try:
        return {Path(d.path).name for d in reader.documents()}
    finally:
        reader.close()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_an_unwritable_index_fails_the_pending_files_and_leaves_the_index_as_it_was(
    settings_factory, folder: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    settings = settings_factory(ingest__commit_every="2", ingest__sandbox="false")
    embedder = HashingEmbedder(64)
    with Ingestor(settings, embedder) as ingestor:
        ingestor.ingest([folder / "regel-0.txt"], delete_missing=False)
        before = _documents(settings)
        real_rename, calls = os.rename, []

        def rename(src: str | Path, dst: str | Path) -> None:
            calls.append(dst)
            if len(calls) == 2:  # the second generation of this run cannot be published
                raise OSError(code, os.strerror(code))
            real_rename(src, dst)

        monkeypatch.setattr(store.os, "rename", rename)
        report = ingestor.ingest([folder])
        monkeypatch.setattr(store.os, "rename", real_rename)

        reason = f"{INDEX_WRITE_FAILURE} ({os.strerror(code)})"
        assert report.error == reason
        assert {Path(p).name for p in report.added} == {"regel-1.txt", "regel-2.txt"}  # the first generation
        failed = {Path(p).name: r for p, r in report.failed}
        assert set(failed) == {"regel-3.txt", "regel-4.txt", "regel-5.txt"} and set(failed.values()) == {reason}
        assert _documents(settings) == before | {"regel-1.txt", "regel-2.txt"}
        assert verify_index(settings.index_dir, embedder.identity).ok

        # Not the files' fault: the next run tries them again and succeeds.
        again = ingestor.ingest([folder])
    assert {Path(p).name for p in again.added} == {"regel-3.txt", "regel-4.txt", "regel-5.txt"}
    assert again.error is None and not again.still_failed
    assert _documents(settings) == {f"regel-{n}.txt" for n in range(6)}
    ledger = FileStates(settings.state_path)
    assert {f.state for f in ledger.all()} == {"committed"}


def test_an_upload_the_worker_cannot_write_fails_with_the_reason_and_the_worker_goes_on(
    settings_factory, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_factory(ingest__sandbox="false")
    worker = Worker(settings, HashingEmbedder(64))
    queue = JobQueue(settings.state_path)
    job = queue.enqueue(folder / "regel-1.txt", "regel-1.txt")

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "write_text_atomic", full)
    worker.run_once(sync_every_s=float("inf"))
    assert queue.get(job).state == "failed"  # type: ignore[union-attr]
    assert queue.get(job).reason == "could not write the index (No space left on device)"  # type: ignore[union-attr]

    monkeypatch.undo()
    retry = queue.enqueue(folder / "regel-1.txt", "regel-1.txt")
    worker.run_once(sync_every_s=float("inf"))
    assert queue.get(retry).state == "committed"  # type: ignore[union-attr]
    worker.close()


class GatingEmbedder(HashingEmbedder):
    """Writes ``embedded`` into the folder when it is first called (a parser waits for that); with
    ``ledger``, first notes what the ledger says of the files then."""

    def __init__(self, folder: Path, ledger: Path | None = None) -> None:
        super().__init__(64, batch_size=16)  # files of 64 chunks and more are embedded while parsed
        self.folder = folder
        self.ledger = ledger
        self.seen: dict[str, tuple[str, int | None]] = {}

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        if self.ledger is not None and not self.seen:
            states = FileStates(self.ledger, read_only=True)
            self.seen = {Path(f.path).name: (f.state, f.pages) for f in states.all()}
            states.close()
        (self.folder / "embedded").touch()
        return super()._embed(texts, kind)


@pytest.mark.parametrize("sandbox", ["true", "false"])
def test_a_long_files_first_pages_are_embedded_while_its_later_pages_are_parsed(
    settings_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: str
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    settings = settings_factory(ingest__sandbox=sandbox)
    folder = tmp_path / "lang"
    folder.mkdir()
    book = folder / "regelwerk.txt"
    book.write_text("Ein langes Regelwerk.", encoding="utf-8")

    embedder = GatingEmbedder(folder, settings.state_path)
    with Ingestor(settings, embedder, parser=waits_for_its_first_pages_embedded) as ingestor:
        report = ingestor.ingest([folder])

    assert (folder / "regelwerk.txt.parsed").read_text() == "during"
    assert embedder.seen == {"regelwerk.txt": ("embedding", 1)}  # page 1 read, page 2 not yet
    assert report.added == [str(book)] and report.chunks == 90 and report.pages == 2
    ledger = FileStates(settings.state_path, read_only=True)
    assert [(f.state, f.pages) for f in ledger.all()] == [("committed", None)]  # read: no progress shown
    ledger.close()
    reader = IndexReader(settings.index_dir, HashingEmbedder(64).identity)
    try:
        (doc,) = reader.documents()
        assert doc.title == "Ein langes Regelwerk"
    finally:
        reader.close()
    assert verify_index(settings.index_dir, HashingEmbedder(64).identity).ok


def test_a_file_that_fails_after_its_first_pages_were_embedded_leaves_nothing_in_the_index(
    settings_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    settings = settings_factory()
    folder = tmp_path / "lang"
    folder.mkdir()
    (folder / "notiz.txt").write_text("Die Kantine schließt um 14 Uhr.", encoding="utf-8")
    broken = folder / "regelwerk-fails.txt"
    broken.write_text("Ein langes Regelwerk.", encoding="utf-8")

    with Ingestor(settings, GatingEmbedder(folder), parser=waits_for_its_first_pages_embedded) as ingestor:
        report = ingestor.ingest([folder])

    assert (folder / "regelwerk-fails.txt.parsed").read_text() == "during"
    assert report.failed == [(str(broken), "page 2 is damaged")]
    assert report.added == [str(folder / "notiz.txt")] and report.chunks == 90  # the test parser's 90 sections
    assert _documents(settings) == {"notiz.txt"}
    ledger = FileStates(settings.state_path, read_only=True)
    states = {f.path: (f.state, f.reason) for f in ledger.all()}
    ledger.close()
    assert states[str(broken)] == ("failed", "page 2 is damaged")
    assert verify_index(settings.index_dir, HashingEmbedder(64).identity).ok


class FlakyEmbedder(HashingEmbedder):
    """Fails on texts with a trigger word: raises, returns NaN or the wrong dimension."""

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        out = super()._embed(texts, kind)
        if any("EXPLODIERT" in t for t in texts):
            raise RuntimeError("model backend crashed")
        if any("NAN" in t for t in texts):
            out[0, 0] = np.nan
        if any("SCHMAL" in t for t in texts):
            return out[:, :10]
        return out


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ("EXPLODIERT", "embedding failed: model backend crashed"),
        ("NAN", "embedding failed: embedder hashing returned non-finite values"),
        ("SCHMAL", "embedding failed: embedder hashing returned shape (1, 10), expected (1, 64)"),
    ],
)
def test_an_embedder_fault_fails_only_its_file_and_nothing_of_it_enters_the_index(
    settings: Settings, folder: Path, word: str, reason: str
) -> None:
    (folder / "kaputt.txt").write_text(f"Dieser Text {word} beim Einbetten.", encoding="utf-8")
    embedder = FlakyEmbedder(64)
    with Ingestor(settings, embedder) as ingestor:
        report = ingestor.ingest([folder])
    assert report.failed == [(str(folder / "kaputt.txt"), reason)]
    assert len(report.added) == 6  # embedded in the same batch, then file by file to find the culprit
    assert _documents(settings) == {f"regel-{n}.txt" for n in range(6)}
    assert verify_index(settings.index_dir, embedder.identity).ok


class WatchingEmbedder(HashingEmbedder):
    """Its first call raises ``embedding-now`` and waits until the last file was parsed meanwhile."""

    def __init__(self, folder: Path) -> None:
        super().__init__(64, batch_size=1)
        self.folder = folder
        self.calls = 0

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        self.calls += 1
        if self.calls == 1:
            flag, mark = self.folder / "embedding-now", self.folder / "regel-last.txt.parsed"
            flag.touch()
            deadline = time.monotonic() + 10
            while not mark.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            flag.unlink()
        return super()._embed(texts, kind)


def test_the_next_files_are_parsed_while_earlier_ones_are_embedded(
    settings: Settings, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    (folder / "regel-5.txt").rename(folder / "regel-last.txt")
    embedder = WatchingEmbedder(folder)
    with Ingestor(settings, embedder, parser=waits_for_embedding) as ingestor:
        report = ingestor.ingest([folder])
    assert (folder / "regel-last.txt.parsed").read_text() == "during"
    assert len(report.added) == 6
    assert {"validate", "parse", "wait", "chunk", "embed", "write", "commit"} <= set(report.stage_seconds)
    assert report.tokens > 0 and report.pages == 6 and report.chunks == 6


@pytest.mark.timeout(120)
def test_a_fault_before_a_parse_starts_fails_that_file_and_the_run_goes_on(settings: Settings, folder: Path) -> None:
    def on_stage(path: Path, stage: str) -> None:
        if stage == "parsing" and path.name == "regel-2.txt":
            raise RuntimeError("the job table is locked")

    with Ingestor(settings, HashingEmbedder(64)) as ingestor:
        report = ingestor.ingest([folder], on_stage=on_stage)

    assert report.failed == [(str(folder / "regel-2.txt"), "unexpected error: RuntimeError: the job table is locked")]
    assert len(report.added) == 5
