"""Source folders stay in sync by themselves: filesystem events, polling, and shares that disappear."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from ingest.watching import FolderWatcher
from ingest.worker import Worker
from rag.config import Settings
from rag.embedding import HashingEmbedder
from rag.store import IndexReader
from tests.conftest import EXAMPLES


def _wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[FolderWatcher]:
    (tmp_path / "share").mkdir()
    (tmp_path / "share" / "data").mkdir()
    w = FolderWatcher([tmp_path / "share"], settle_s=0.2, ignore=[tmp_path / "share" / "data"])
    yield w
    w.close()


def test_a_new_file_makes_a_sync_due_once_the_changes_settle(watcher: FolderWatcher, tmp_path: Path) -> None:
    assert watcher.watching == [tmp_path / "share"]
    (tmp_path / "share" / "neu.md").write_text("# Neu\n\nText.", encoding="utf-8")

    assert _wait_for(watcher.due)
    assert not watcher.due()  # one burst of changes, one sync


def test_reading_a_file_is_no_change(watcher: FolderWatcher, tmp_path: Path) -> None:
    existing = tmp_path / "share" / "alt.md"
    existing.write_text("alt", encoding="utf-8")
    _wait_for(watcher.due)

    existing.read_text(encoding="utf-8")
    time.sleep(0.5)

    assert not watcher.pending()


def test_writes_in_an_ignored_folder_are_no_change(watcher: FolderWatcher, tmp_path: Path) -> None:
    (tmp_path / "share" / "data" / "CURRENT").write_text("gen-000001\n", encoding="utf-8")
    time.sleep(0.5)

    assert not watcher.pending()


def _search(settings: Settings, embedder: HashingEmbedder, word: str) -> list[str]:
    reader = IndexReader(settings.index_dir, embedder.identity)
    try:
        hits = [i for i, _ in reader.search_keyword(word, 5, ["public"])]
        return [Path(p.path).name for p in reader.passages(hits, ["public"])]
    finally:
        reader.close()


def test_the_running_worker_indexes_a_saved_file_and_forgets_a_deleted_one_within_seconds(
    settings_factory: Callable[..., Settings],
) -> None:
    # Polling is an hour away: only the filesystem events can explain a quick sync.
    settings = settings_factory(INGEST__SYNC_INTERVAL_S="3600", INGEST__POLL_INTERVAL_S="0.2")
    folder = settings.paths.sources[0]
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLES / "burlg.md", folder / "burlg.md")
    embedder = HashingEmbedder(settings.embedder.dimension)
    worker = Worker(settings, embedder=embedder)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        assert _wait_for(lambda: settings.index_dir.exists() and "burlg.md" in _search(settings, embedder, "Urlaub"))

        (folder / "kantine.md").write_text("# Kantine\n\nDie Kantine öffnet um elf Uhr.", encoding="utf-8")
        assert _wait_for(lambda: "kantine.md" in _search(settings, embedder, "Kantine"))

        (folder / "kantine.md").unlink()
        assert _wait_for(lambda: "kantine.md" not in _search(settings, embedder, "Kantine"))
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert worker.watcher is None  # the observer thread was stopped with the worker


def test_an_empty_source_folder_keeps_its_documents(settings: Settings) -> None:
    folder = settings.paths.sources[0]
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLES / "burlg.md", folder / "burlg.md")
    embedder = HashingEmbedder(settings.embedder.dimension)
    Ingestor(settings, embedder).ingest([folder])
    (folder / "burlg.md").unlink()  # what an unmounted share looks like: the mount point is empty

    worker = Worker(settings, embedder=embedder)
    worker.run_once(sync_every_s=0)

    assert "burlg.md" in _search(settings, embedder, "Urlaub")
