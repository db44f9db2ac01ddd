"""`hauswissen serve` (what `make run` ends with): UI on 127.0.0.1 plus a worker that ingests uploads."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from rag.config import load_settings
from rag.jobs import JobQueue
from rag.uploads import accept_upload
from tests.conftest import REPO, free_port

pytestmark = pytest.mark.slow


def test_serve_runs_ui_and_worker_and_stops_both(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "paths": {"data_dir": "data", "sources": []},
        "embedder": {"backend": "hashing"},
        "llm": {"backend": "scripted"},
        "ingest": {"poll_interval_s": 0.5},
    }))
    settings = load_settings(config, env={})
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hauswissen", "--config", str(config), "serve", "--port", str(port)],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "UI did not come up"
            time.sleep(0.5)
        queue = JobQueue(settings.state_path)
        job = accept_upload(
            "# Notiz\n\nDie Kantine öffnet um 11:30 Uhr.\n".encode(), "notiz.md",
            uploads_dir=settings.uploads_dir, queue=queue, allowed_extensions=[".md"], max_bytes=1_000_000,
        )
        while (state := queue.get(job)) is None or state.state not in {"committed", "failed"}:
            assert time.monotonic() < deadline, "the worker did not pick up the upload"
            time.sleep(0.5)
        assert state.state == "committed", state.reason
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            log.close()
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "UI or worker still running after serve stopped"
