"""The ingestion worker: a separate process that ingests uploads and keeps source folders in sync.

The UI only stores an upload and queues a job (``rag.uploads``); this process parses and embeds, so a
heavy file never slows the chat. Jobs a crashed worker left half-done are queued again on start.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from ingest.pipeline import Ingestor, IngestReport
from rag.config import Settings
from rag.embedding import Embedder, create_embedder
from rag.errors import IndexLockedError, UserError
from rag.jobs import Job, JobQueue

log = logging.getLogger(__name__)


class Worker:
    """Polls the job table and the configured folders; one instance per data_dir."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or create_embedder(settings.embedder)
        self.ingestor = Ingestor(settings, self.embedder)
        self.queue = JobQueue(settings.state_path)
        self._last_sync = 0.0
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
        """One pass over the configured source folders (new, changed and deleted files)."""
        folders = [p for p in self.settings.paths.sources if p.exists()]
        self._last_sync = time.monotonic()
        if not folders:
            return None
        report = self.ingestor.ingest(folders, access=self.settings.retrieval.default_access)
        if report.documents or report.deleted or report.failed:
            log.info(
                "sync: %d new, %d changed, %d deleted, %d failed",
                len(report.added), len(report.updated), len(report.deleted), len(report.failed),
            )
        return report

    def run_once(self, *, sync_every_s: float = 60.0) -> bool:
        """Handle every queued job, and sync folders when due; returns True if anything was done."""
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
        if time.monotonic() - self._last_sync >= sync_every_s:
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
        log.info("worker started for %s", self.settings.paths.data_dir)
        while not stop.is_set():
            try:
                busy = self.run_once(sync_every_s=interval * 12)
            except Exception:  # e.g. the job table is briefly unreadable: wait, then go on
                log.exception("worker pass failed")
                busy = False
            if not busy:
                stop.wait(interval)
