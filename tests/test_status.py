"""``hauswissen status``: index counts, every file's state and reason, the queue and an ETA."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hauswissen.cli import main
from ingest.pipeline import Ingestor
from rag.config import Settings, load_settings
from rag.embedding import create_embedder
from rag.jobs import FILE_STATES, FileStates, JobQueue
from rag.status import describe_eta, index_status


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config for a data folder that does not exist yet, with one source folder and fake backends."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f"paths:\n  data_dir: {tmp_path / 'data'}\n  sources: [{tmp_path / 'sources'}]\n"
        "embedder:\n  backend: hashing\n  dimension: 64\nllm:\n  backend: scripted\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def configured(config: Path) -> Settings:
    return load_settings(config, env={})


def status(config: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> Any:
    assert main(["--config", str(config), "status", *flags]) == 0
    out = capsys.readouterr().out
    return json.loads(out) if "--json" in flags else out


@pytest.fixture
def ingested(configured: Settings, tmp_path: Path) -> Settings:
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "urlaub.md").write_text("# Urlaub\n\nDer Urlaub beträgt 24 Werktage.\n", encoding="utf-8")
    (sources / "kantine.txt").write_text("Die Kantine öffnet um 11:30 Uhr.\n", encoding="utf-8")
    (sources / "leer.txt").write_bytes(b"")
    with Ingestor(configured, create_embedder(configured.embedder)) as ingestor:
        report = ingestor.ingest([sources], access=("public",))
    assert len(report.added) == 2 and len(report.failed) == 1
    return configured


def by_name(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Path(f["path"]).name: f for f in info["files"]}


def test_status_of_a_fresh_install_is_empty_and_creates_no_files(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = status(config, capsys, "--json")

    assert info["documents"] == 0 and info["chunks"] == 0 and info["generation"] == 0
    assert info["last_ingest"] is None
    assert info["queue"] == dict.fromkeys(FILE_STATES, 0)
    assert info["eta_seconds"] is None and info["pending"] == 0
    assert info["files"] == [] and info["uploads"] == info["jobs"]
    assert {"embedder", "llm", "data_dir"} <= info.keys()
    assert not (tmp_path / "data").exists()


def test_status_json_lists_each_files_state_and_reason(
    ingested: Settings, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = status(config, capsys, "--json")

    assert info["documents"] == 2 and info["chunks"] >= 2 and info["generation"] >= 1
    assert info["last_ingest"] is not None
    assert info["queue"] == {**dict.fromkeys(FILE_STATES, 0), "committed": 2, "failed": 1}
    assert info["eta_seconds"] is None, "nothing is pending"
    files = by_name(info)
    assert set(files) == {"urlaub.md", "kantine.txt", "leer.txt"}
    assert info["files"][0]["path"].endswith("leer.txt"), "failures come first"
    empty = files["leer.txt"]
    assert empty["state"] == "failed" and empty["reason"] == "the file is empty"
    assert empty["chunks"] is None and empty["title"] is None and empty["size"] == 0
    for name in ("urlaub.md", "kantine.txt"):
        committed = files[name]
        assert committed["state"] == "committed" and committed["reason"] is None
        assert committed["chunks"] >= 1 and committed["access"] == ["public"]
        assert committed["kind"] in ("md", "txt") and committed["title"]
        assert committed["size"] > 0 and committed["updated"] is not None


def test_status_shows_an_eta_while_files_are_queued(
    ingested: Settings, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = FileStates(ingested.state_path)
    for name in ("a.pdf", "b.pdf"):  # timed files, so there is a median to go by
        ledger.set(f"/share/{name}", "parsing", size=10, mtime=1.0)
        ledger.set(f"/share/{name}", "committed")
    ledger.set("/share/c.pdf", "queued", size=10, mtime=1.0)
    ledger.set("/share/d.pdf", "embedding", size=10, mtime=1.0)
    ledger.pages_done("/share/d.pdf", 57)
    ledger.close()

    info = status(config, capsys, "--json")

    assert info["queue"]["queued"] == 1 and info["queue"]["embedding"] == 1
    assert info["pending"] == 2
    assert isinstance(info["eta_seconds"], float) and info["eta_seconds"] >= 0
    queued = by_name(info)["c.pdf"]
    assert queued["state"] == "queued" and queued["reason"] is None and queued["size"] == 10
    assert queued["updated"] is not None and queued["chunks"] is None and queued["access"] is None
    assert queued["pages"] is None and by_name(info)["d.pdf"]["pages"] == 57
    out = status(config, capsys)
    assert "queued 1, parsing 0, embedding 1, committed 4, failed 1, quarantined 0; 2 to do, " in out
    assert "  embedding: /share/d.pdf (57 pages done)" in out


def test_human_status_lists_failures_with_their_reason(
    ingested: Settings, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = status(config, capsys)

    assert "documents:   2" in out and "last ingest: " in out
    assert "queue:       queued 0, parsing 0, embedding 0, committed 2, failed 1, quarantined 0\n" in out
    failure = next(line for line in out.splitlines() if "leer.txt" in line)
    assert failure.startswith("  failed: ") and failure.endswith("leer.txt: the file is empty")
    assert "  - urlaub.md  (md; " in out


def test_hostile_names_and_reasons_cannot_reach_the_terminal_raw(
    configured: Settings, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = FileStates(configured.state_path)
    ledger.set("/share/\x1b[2Jevil\u202e.pdf", "quarantined", "parser crashed\nfake: line\x07")
    ledger.close()

    out = status(config, capsys)

    line = next(x for x in out.splitlines() if "evil" in x)
    assert line == "  quarantined: /share/[2Jevil .pdf: parser crashed fake: line"
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out


def test_upload_jobs_are_counted_and_carry_their_access(
    configured: Settings, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upload = str(tmp_path / "data" / "uploads" / "bericht.pdf")
    queue = JobQueue(configured.state_path)
    queue.enqueue(upload, "bericht.pdf", access=("group:hr",))
    queue.close()
    ledger = FileStates(configured.state_path)
    ledger.set(upload, "failed", "password-protected PDF")
    ledger.close()

    info = status(config, capsys, "--json")

    assert info["uploads"]["queued"] == 1 and info["jobs"] == info["uploads"]
    (entry,) = info["files"]
    assert entry["access"] == ["group:hr"] and entry["reason"] == "password-protected PDF"
    assert "jobs:        queued 1" in status(config, capsys)


def test_files_under_a_source_folder_get_the_default_access(configured: Settings, tmp_path: Path) -> None:
    ledger = FileStates(configured.state_path)
    ledger.set(str(tmp_path / "sources" / "neu.pdf"), "queued")
    ledger.set("/elsewhere/geheim.pdf", "queued")
    ledger.close()

    status = index_status(configured, create_embedder(configured.embedder).identity)
    files = {Path(f.path).name: f for f in status.files}

    assert files["neu.pdf"].visible_to(["public"])
    assert files["geheim.pdf"].access is None and not files["geheim.pdf"].visible_to(["public"])


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(20, "less than a minute left"), (170, "about 3 min left"), (7200, "about 2.0 h left")],
)
def test_the_eta_is_described_in_words(seconds: float, words: str) -> None:
    assert describe_eta(seconds) == words
