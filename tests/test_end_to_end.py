"""The real path: ingest examples/docs with the real embedder, ask through the CLI and the service,
with an audit hook proving that nothing connects to a non-loopback address."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ingest.pipeline import Ingestor
from rag.config import Settings, load_settings
from rag.embedding import create_embedder
from rag.models import smollm_path
from rag.service import Assistant
from rag.store import IndexReader
from tests.conftest import EXAMPLES, REPO
from tests.egress import audit, no_egress, no_egress_in_children

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(EXAMPLES, root / "docs")
    config = {
        "paths": {"data_dir": "data", "sources": ["docs"], "models_dir": str(REPO / "models")},
        "llm": {"backend": "llamacpp", "model_path": str(smollm_path()), "n_ctx": 4096, "max_tokens": 48},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture(scope="module")
def e2e_settings(workspace: Path) -> Settings:
    return load_settings(workspace / "config.yaml", env={})


@pytest.fixture(scope="module")
def first_ingest(
    e2e_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[object, list[str]]]:
    assert e2e_settings.ingest.sandbox  # parsing runs in a child process: watch it too
    with (
        no_egress_in_children(tmp_path_factory.mktemp("egress")) as child_log,
        no_egress() as violations,
        Ingestor(e2e_settings, create_embedder(e2e_settings.embedder)) as ingestor,
    ):
        report = ingestor.ingest(e2e_settings.paths.sources)
    lines = child_log.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("watching ") for line in lines), "the parser process was not watched"
    violations += [f"parser process: {line}" for line in lines if not line.startswith("watching ")]
    yield report, violations


def test_ingest_of_the_samples_handles_every_format(first_ingest: tuple, e2e_settings: Settings) -> None:
    report, _ = first_ingest
    assert report.failed == []
    kinds = {Path(p).suffix for p in report.added}
    assert kinds >= {".pdf", ".docx", ".xlsx", ".csv", ".html", ".eml", ".md"}
    assert report.chunks > 20
    reader = IndexReader(e2e_settings.index_dir, create_embedder(e2e_settings.embedder).identity)
    assert reader.stats().documents == len(report.added)


def test_pdf_passages_carry_their_real_page(first_ingest: tuple, e2e_settings: Settings) -> None:
    embedder = create_embedder(e2e_settings.embedder)
    reader = IndexReader(e2e_settings.index_dir, embedder.identity)
    pdf_chunks = [
        p for p in reader.passages(list(range(1, 2000)), ["public"]) if p.document.endswith(".pdf")
    ]
    pages = {p.page for p in pdf_chunks}
    assert min(pages) == 1 and max(pages) == 12  # type: ignore[type-var]
    assert all(p.page_label == "page" for p in pdf_chunks)


def test_reingest_skips_unchanged_and_follows_changes_and_deletions(
    first_ingest: tuple, e2e_settings: Settings, workspace: Path
) -> None:
    report, _ = first_ingest
    ingestor = Ingestor(e2e_settings, create_embedder(e2e_settings.embedder))
    again = ingestor.ingest(e2e_settings.paths.sources)
    assert again.documents == 0 and len(again.unchanged) == len(report.added)
    assert again.generation == report.generation
    note = workspace / "docs" / "notiz.txt"
    note.write_text("Die Kantine öffnet um 11:30 Uhr. Das Stichwort lautet Quittenbrot.", encoding="utf-8")
    added = ingestor.ingest(e2e_settings.paths.sources)
    assert [Path(p).name for p in added.added] == ["notiz.txt"]
    note.unlink()
    removed = ingestor.ingest(e2e_settings.paths.sources)
    assert [Path(p).name for p in removed.deleted] == ["notiz.txt"]
    assert Assistant(e2e_settings).search("Quittenbrot Kantine") == [] or all(
        "Quittenbrot" not in p.text for p in Assistant(e2e_settings).search("Quittenbrot Kantine")
    )


def test_retrieval_finds_the_right_law_for_german_questions(first_ingest: tuple, e2e_settings: Settings) -> None:
    assistant = Assistant(e2e_settings)
    top = assistant.search("Wie viele Werktage beträgt der Mindesturlaub?", k=3)
    assert any("24 Werktage" in p.text for p in top)
    wage = assistant.search("Wie hoch ist der Mindestlohn seit 2024?", k=5)
    assert any(p.document.startswith("mindestlohn") for p in wage)


def test_questions_the_samples_cannot_answer_are_declined_before_the_model(
    first_ingest: tuple, e2e_settings: Settings
) -> None:
    """The answerability check with the real embedder and the configured thresholds (the twin of the
    hashing-embedder tests in test_answerability): off-topic questions are declined, everyday
    questions the samples do answer are not."""
    assistant = Assistant(e2e_settings)
    for question in (
        "Wie setze ich mein VPN-Passwort zurück?",
        "Wie hoch ist die Dienstwagenpauschale?",
        "Wer ist der Geschäftsführer der Firma?",
    ):
        found = assistant.retrieve(question)
        assert found.sources and not found.answerable, (question, found.evidence)
    for question in (
        "Wie viele Werktage Urlaub stehen Arbeitnehmern mindestens zu?",
        "Wie lange darf man täglich arbeiten?",
        "Darf ich sonntags arbeiten?",
        "Wann ist eine Kündigung sozial ungerechtfertigt?",
        "Wie hoch ist der Mindestlohn 2024?",
    ):
        found = assistant.retrieve(question)
        assert found.answerable, (question, found.evidence)


def test_cli_ask_json_prints_answer_and_sources(first_ingest: tuple, workspace: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hauswissen", "--config", str(workspace / "config.yaml"), "ask", "--json",
         "Wie viele Werktage Urlaub gibt es mindestens?"],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=True,
    )
    data = json.loads(out.stdout)
    assert isinstance(data["answer"], str) and data["answer"]
    assert data["sources"]
    for source in data["sources"]:
        assert {"n", "document", "path", "page", "text"} <= set(source)
    assert any("24 Werktage" in s["text"] for s in data["sources"])


def test_cli_status_and_errors_are_plain(first_ingest: tuple, workspace: Path) -> None:
    cfg = str(workspace / "config.yaml")
    status = subprocess.run(
        [sys.executable, "-m", "hauswissen", "--config", cfg, "status", "--json"],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=True,
    )
    info = json.loads(status.stdout)
    assert info["documents"] >= 9 and info["chunks"] > 20
    bad = subprocess.run(
        [sys.executable, "-m", "hauswissen", "--config", cfg, "ask", "   "],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "empty" in bad.stderr


def test_no_socket_leaves_the_machine_during_ingest_ask_and_ui(
    first_ingest: tuple, e2e_settings: Settings, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ingest_violations = first_ingest
    assert ingest_violations == []
    with no_egress() as violations:
        answer = Assistant(e2e_settings).ask("Wie viele Werktage Urlaub gibt es?").answer
        assert answer.sources
        from streamlit.testing.v1 import AppTest

        monkeypatch.setenv("HAUSWISSEN_CONFIG", str(workspace / "config.yaml"))
        at = AppTest.from_file(str(REPO / "ui" / "app.py"), default_timeout=300)
        at.run()
        at.chat_input[0].set_value("Wie viele Werktage Urlaub gibt es?").run()
        assert not at.exception
    assert violations == []


def test_the_egress_guard_itself_notices_foreign_addresses() -> None:
    class FakeSocket:
        family = 2

    with no_egress() as violations:
        audit("socket.connect", (FakeSocket(), ("127.0.0.1", 8501)))
        audit("socket.getaddrinfo", ("localhost", 80, 0, 0, 0))
        audit("socket.connect", (FakeSocket(), ("192.0.2.10", 443)))
        audit("socket.getaddrinfo", ("huggingface.co", 443, 0, 0, 0))
    assert violations == ["socket.connect -> 192.0.2.10", "socket.getaddrinfo -> huggingface.co"]


def test_default_model_answers_a_german_question_with_a_correct_citation(
    first_ingest: tuple, e2e_settings: Settings
) -> None:
    """The packaged Qwen2.5-1.5B default, the real index, the real prompt: a German answer that cites a
    passage stating the 24 days (greedy decoding, so the run is repeatable)."""
    from rag.models import assemble_default_llm

    model_path = assemble_default_llm(e2e_settings.paths.models_dir)
    settings = e2e_settings.model_copy(
        update={"llm": e2e_settings.llm.model_copy(
            update={"model_path": model_path, "max_tokens": 200, "temperature": 0.0}
        )}
    )
    stream = Assistant(settings).ask("Wie viele Werktage beträgt der gesetzliche Mindesturlaub?")
    answer = stream.answer
    print(f"\n1.5B answer: {answer.text!r}\ntimings: {answer.timings}")
    assert "24" in answer.text
    assert answer.cited, answer.text
    cited_texts = [p.text for _, p in answer.cited_sources()]
    assert any("24 Werktage" in t for t in cited_texts), (answer.text, cited_texts)
    assert not answer.abstained
