"""Each source of an answer opens its original on demand: a PDF's cited page as an image plus a download
of the file, other documents as a download; refusals are warnings, never tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from ui_support import (
    APP,
    KILOMETER,
    URLAUB,
    SampleDocument,
    build_file_index,
    configured_app,
    write_pdf,
)

import ui.runtime
from rag.chat import ScriptedChatModel
from rag.config import Settings
from rag.documents import ChunkDraft
from rag.service import Assistant

QUESTION = "Wie viel Kilometergeld gibt es für Dienstreisen mit dem eigenen Pkw?"


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A source folder with a two-page PDF and a Markdown file, indexed; the app configured for it."""
    data, folder = tmp_path / "data", tmp_path / "sources"
    folder.mkdir()
    pdf = write_pdf(folder / "reisekosten.pdf", ["1 Geltungsbereich", KILOMETER])
    markdown = folder / "burlg.md"
    markdown.write_text(URLAUB, encoding="utf-8")
    build_file_index(data, [
        SampleDocument(path=str(pdf), kind="pdf", title="Reisekostenrichtlinie",
                       chunks=[ChunkDraft(KILOMETER, 0, len(KILOMETER), page=2, section="2 Fahrtkosten")]),
        SampleDocument(path=str(markdown), chunks=[ChunkDraft(URLAUB, 0, len(URLAUB), section="§ 3")]),
    ])
    model = ScriptedChatModel(replies=["0,30 Euro je Kilometer [1]."] * 3)
    monkeypatch.setattr(ui.runtime, "create_assistant", lambda settings: _assistant(settings, model))
    with configured_app(tmp_path, data, monkeypatch, sources=folder):
        yield folder


def _assistant(settings: Settings, model: ScriptedChatModel) -> Assistant:
    return Assistant(settings, chat_model=model)


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each download button the app shows would send (AppTest cannot fetch the file itself)."""
    sent: list[dict[str, Any]] = []
    original = st.download_button

    def spy(label: str, data: Any, **kwargs: Any) -> bool:
        sent.append({"data": data, **kwargs})
        return original(label, data, **kwargs)

    monkeypatch.setattr(st, "download_button", spy)
    return sent


def asked() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.chat_input[0].set_value(QUESTION).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_original(at: AppTest, document: str) -> Any:
    """Switch on "Original öffnen" of the source naming ``document``; returns the sources expander."""
    (answer,) = [m for m in at.chat_message if m.name == "assistant"]
    (expander,) = answer.expander
    headings = [m.value for m in expander.markdown if m.value.startswith("**\\[")]
    n = next(i for i, h in enumerate(headings) if document.replace(".", "\\.") in h)
    toggle = expander.toggle[n]
    assert toggle.label == "Original öffnen" and not toggle.value
    toggle.set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    return next(m for m in at.chat_message if m.name == "assistant").expander[0]


def test_originals_are_not_opened_until_asked_for(sources: Path) -> None:
    at = asked()

    assert not at.get("image") and not at.get("download_button")
    assert [t.label for t in at.toggle] == ["Original öffnen", "Original öffnen"]


def test_a_pdf_source_shows_its_cited_page_and_offers_the_file(
    sources: Path, downloads: list[dict[str, Any]]
) -> None:
    expander = open_original(asked(), "reisekosten.pdf")

    (image,) = expander.get("image")
    assert image.captions == ["Seite 2 des Originals"]
    assert image.value and image.value[0].endswith(".png")
    (download,) = expander.get("download_button")
    assert download.label == "Original herunterladen (reisekosten\\.pdf)"
    assert download.proto.url.endswith(".pdf")
    (sent,) = downloads
    assert sent["data"] == (sources / "reisekosten.pdf").read_bytes()
    assert (sent["file_name"], sent["mime"]) == ("reisekosten.pdf", "application/pdf")


def test_a_markdown_source_offers_its_file_for_download(sources: Path, downloads: list[dict[str, Any]]) -> None:
    expander = open_original(asked(), "burlg.md")

    assert not expander.get("image")
    (download,) = expander.get("download_button")
    assert download.label == "Original herunterladen (burlg\\.md)"
    (sent,) = downloads
    assert (sent["data"], sent["file_name"], sent["mime"]) == (URLAUB.encode(), "burlg.md", "text/markdown")


def test_a_deleted_original_is_explained_not_a_traceback(sources: Path) -> None:
    at = asked()
    (sources / "reisekosten.pdf").unlink()

    expander = open_original(at, "reisekosten.pdf")

    assert not expander.get("image") and not expander.get("download_button")
    assert [w.value for w in expander.warning] == [
        "Das Original kann nicht geöffnet werden: die Datei existiert nicht mehr"
    ]


def test_a_changed_original_is_offered_with_a_notice(sources: Path) -> None:
    at = asked()
    (sources / "burlg.md").write_text("Der Urlaub beträgt jährlich 30 Werktage.", encoding="utf-8")

    expander = open_original(at, "burlg.md")

    assert any("seit der Indexierung geändert" in w.value for w in expander.warning)
    assert expander.get("download_button")


def test_the_same_answer_twice_in_a_chat_gets_its_own_toggles(sources: Path) -> None:
    at = asked()
    at.chat_input[0].set_value(QUESTION).run()
    assert not at.exception, [e.value for e in at.exception]

    keys = [t.key for t in at.toggle]
    assert len(keys) == 4 and len(set(keys)) == 4
    at.toggle[2].set_value(True).run()
    assert not at.exception
    first, second = [m for m in at.chat_message if m.name == "assistant"]
    assert not first.expander[0].get("download_button") and second.expander[0].get("download_button")
