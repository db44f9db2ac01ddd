"""Filesystem events for the source folders, so a saved file is searchable seconds later.

Events only make a sync come sooner: the worker still syncs every few minutes by polling, because
network shares (SMB, NFS) do not deliver events for changes made on other machines and an event queue
can overflow. A sync is idempotent, so a missed or doubled event costs nothing but time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class FolderWatcher:
    """Watches folders recursively; :meth:`due` says when a burst of changes has settled.

    Args:
        folders: The folders to watch; missing ones are skipped (and picked up by polling).
        settle_s: Quiet time after the last event before a sync is due, so copying a folder of a
            thousand files triggers one sync, not a thousand.
        ignore: Folders whose events are not changes of sources (the data folder, should a source
            folder hold it: the index's own writes must not trigger syncs).
    """

    def __init__(self, folders: Sequence[Path], *, settle_s: float = 2.0, ignore: Sequence[Path] = ()) -> None:
        self.settle_s = settle_s
        ignored = tuple(str(p.resolve()) for p in ignore)
        self._lock = threading.Lock()
        self._last_event: float | None = None
        self._observer: Any = None
        self.watching: list[Path] = []
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # polling alone still keeps the folders in sync
            log.info("watchdog is not installed; source folders are polled only")
            return
        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return  # reads (our own parsing among them) change nothing
                paths = [str(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
                if ignored and all(p.startswith(ignored) for p in paths):
                    return
                watcher.notice()

        observer = Observer()
        handler = _Handler()
        for folder in folders:
            if folder.is_dir():
                try:
                    observer.schedule(handler, str(folder), recursive=True)
                    self.watching.append(folder)
                except OSError as e:  # e.g. the inotify watch limit; polling covers the folder
                    log.warning("cannot watch %s (%s); it is polled only", folder, e)
        if self.watching:
            observer.daemon = True
            observer.start()
            self._observer = observer

    def notice(self) -> None:
        """Record that something changed (called from the observer's thread)."""
        with self._lock:
            self._last_event = time.monotonic()

    def due(self) -> bool:
        """True once, when changes were seen and have been quiet for ``settle_s``."""
        with self._lock:
            if self._last_event is None or time.monotonic() - self._last_event < self.settle_s:
                return False
            self._last_event = None
            return True

    def pending(self) -> bool:
        """True while changes wait for their sync (settling or due)."""
        with self._lock:
            return self._last_event is not None

    def close(self) -> None:
        """Stop the observer thread."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
