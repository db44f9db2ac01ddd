"""The ingestion worker: a separate process that ingests uploads and keeps source folders in sync.

The UI only stores an upload and queues a job (``rag.uploads``); this process parses and embeds, so a
heavy file never slows the chat. Jobs a crashed worker left half-done are queued again on start. Source
folders are synced when filesystem events say something changed (``ingest.watch``) and, whatever the
events, every ``ingest.sync_interval_s`` seconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from ingest.pipeline import Ingestor, IngestReport
from ingest.watching import FolderWatcher
from rag.config import Settings
from rag.embedding import Embedder, create_embedder
from rag.errors import IndexLockedError, UserError
from rag.jobs import Job, JobQueue

log = logging.getLogger(__name__)


def available(folder: Path) -> bool:
    """True when ``folder`` is a directory with at least one entry."""
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


class Worker:
    """Polls the job table and the configured folders; one instance per data_dir."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or create_embedder(settings.embedder)
        self.ingestor = Ingestor(settings, self.embedder)
        self.queue = JobQueue(settings.state_path)
        self._last_sync = float("-inf")  # the first pass always syncs
        # Started by run_forever: a single pass (``worker --once``, tests) needs no events.
        self.watcher: FolderWatcher | None = None
        self.ingestor.ledger.requeue_interrupted()
        requeued = self.queue.requeue_interrupted()
        if requeued:
            log.info("re-queued %d interrupted jobs", requeued)

    def process_job(self, job: Job) -> None:
        """Ingest one queued file and record its final state."""
        path = Path(job.path)

        def stage(_: Path, name: str) -> None:
            self.queue.update(job.job_id, name)

        if not path.is_file():
            self.queue.update(job.job_id, "failed", "the uploaded file is gone")
            return
        report = self.ingestor.ingest([path], access=job.access, delete_missing=False, on_stage=stage)
        if report.failed:
            self.queue.update(job.job_id, "failed", report.failed[0][1])
        elif report.unchanged:
            self.queue.update(job.job_id, "skipped", "unchanged")
        else:
            self.queue.update(job.job_id, "committed")

    def sync_sources(self) -> IngestReport | None:
        """One pass over the configured source folders (new, changed and deleted files).

        A folder that is missing or completely empty is left out of the pass, so its documents stay:
        that is what an unmounted or unreachable share looks like, and deleting every document of a
        share because of a network outage would be the worst possible reaction.
        """
        self._last_sync = time.monotonic()
        folders = []
        for folder in self.settings.paths.sources:
            if available(folder):
                folders.append(folder)
            else:
                log.warning("source folder %s is missing or empty (unmounted share?); its documents are kept", folder)
        if not folders:
            return None
        report = self.ingestor.ingest(folders, access=self.settings.retrieval.default_access)
        if report.error:
            log.error("sync stopped: %s; trying again at the next pass", report.error)
        if report.documents or report.moved or report.deleted or report.failed:
            log.info(
                "sync: %d new, %d changed, %d moved, %d deleted, %d failed",
                len(report.added), len(report.updated), len(report.moved), len(report.deleted), len(report.failed),
            )
        return report

    def run_once(self, *, sync_every_s: float | None = None) -> bool:
        """Handle every queued job, and sync folders when due; returns True if anything was done.

        A sync is due when the watcher saw changes settle, or ``sync_every_s`` (default
        ``ingest.sync_interval_s``) after the last one.
        """
        if sync_every_s is None:
            sync_every_s = self.settings.ingest.sync_interval_s
        did_work = False
        while (job := self.queue.claim_next()) is not None:
            did_work = True
            try:
                self.process_job(job)
            except IndexLockedError as e:
                log.info("%s; job %d goes back to the queue", e, job.job_id)
                self.queue.update(job.job_id, "queued")
                return did_work
            except UserError as e:
                self.queue.update(job.job_id, "failed", str(e))
            except Exception as e:  # the worker must outlive any one file or fault
                log.exception("job %d failed", job.job_id)
                self.queue.update(job.job_id, "failed", f"internal error: {type(e).__name__}")
        changed = self.watcher is not None and self.watcher.due()
        if changed or time.monotonic() - self._last_sync >= sync_every_s:
            did_work = did_work or changed
            try:
                self.sync_sources()
            except IndexLockedError as e:
                log.info("%s; syncing later", e)
            except Exception:
                log.exception("syncing the source folders failed; trying again later")
        return did_work

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Work until ``stop`` is set (or forever)."""
        stop = stop or threading.Event()
        interval = self.settings.ingest.poll_interval_s
        if self.settings.ingest.watch:
            self.watcher = FolderWatcher(self.settings.paths.sources, ignore=[self.settings.paths.data_dir])
        log.info("worker started for %s", self.settings.paths.data_dir)
        try:
            self._loop(stop, interval)
        finally:
            if self.watcher is not None:
                self.watcher.close()
                self.watcher = None
            self.ingestor.close()

    def close(self) -> None:
        """Stop the parser process (a later pass starts a new one)."""
        self.ingestor.close()

    def _loop(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # e.g. the job table is briefly unreadable: wait, then go on
                log.exception("worker pass failed")
                busy = False
            if not busy:
                watcher = self.watcher
                stop.wait(min(interval, watcher.settle_s) if watcher and watcher.pending() else interval)
