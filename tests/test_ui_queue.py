"""The ingestion queue in the sidebar: counts per state, the current file, the ETA and the failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest
from ui_support import APP, configured_app

from rag.jobs import FileStates
from ui.escaping import escape_inline
from ui.i18n import TEXTS


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The app configured for an empty data folder and one source folder (default access: public)."""
    folder = tmp_path / "sources"
    with configured_app(tmp_path, tmp_path / "data", monkeypatch, sources=folder):
        yield folder


@pytest.fixture
def ledger(sources: Path) -> Iterator[FileStates]:
    states = FileStates(sources.parent / "data" / "state.sqlite")
    yield states
    states.close()


def start_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.sidebar.caption]


def problems(at: AppTest) -> list[str]:
    (expander,) = at.sidebar.expander
    return [c.value for c in expander.caption]


def test_queue_shows_counts_the_current_file_and_the_eta(sources: Path, ledger: FileStates) -> None:
    ledger.set(str(sources / "fertig.md"), "parsing", size=5, mtime=1.0)
    ledger.set(str(sources / "fertig.md"), "committed")
    ledger.set(str(sources / "handbuch.pdf"), "parsing", size=5, mtime=1.0)
    ledger.set(str(sources / "wartet.docx"), "queued", size=5, mtime=1.0)

    at = start_app()

    assert "Verarbeitung" in [s.value for s in at.sidebar.subheader]
    shown = captions(at)
    assert "wartend: 1 · wird gelesen: 1 · wird indexiert: 0 · indexiert: 1 · fehlgeschlagen: 0 · " \
        "in Quarantäne: 0" in shown
    assert f"Wird gerade gelesen: {escape_inline('handbuch.pdf')}" in shown
    assert "Noch 2 Dateien, fertig in weniger als einer Minute." in shown
    assert not at.sidebar.expander, "nothing failed"


def test_queue_follows_the_ledger_on_the_next_run(sources: Path, ledger: FileStates) -> None:
    ledger.set(str(sources / "a.md"), "queued")
    at = start_app()
    assert "Noch 1 Dateien; die Restzeit wird noch geschätzt." in captions(at)

    ledger.set(str(sources / "a.md"), "committed")
    at.run()

    assert not at.exception
    shown = captions(at)
    assert any(c.startswith("wartend: 0 · ") and "indexiert: 1" in c for c in shown)
    assert not any("Dateien" in c for c in shown), "no ETA once nothing is pending"


def test_failed_file_is_listed_with_its_reason_in_german_and_english(sources: Path, ledger: FileStates) -> None:
    ledger.set(str(sources / "kaputt.pdf"), "failed", "password-protected PDF", size=5, mtime=1.0)
    ledger.set(str(sources / "bombe.docx"), "quarantined", "parser exceeded its time limit (120 s)")

    at = start_app()

    assert at.sidebar.expander[0].label == "Nicht verarbeitete Dateien (2)"
    timeout = escape_inline("Das Leseprogramm hat sein Zeitlimit überschritten (120 s)")
    assert problems(at) == [
        f"„{escape_inline('bombe.docx')}“ – in Quarantäne. Grund: {timeout}",
        f"„{escape_inline('kaputt.pdf')}“ – fehlgeschlagen. Grund: {escape_inline('Kennwortgeschütztes PDF')}",
    ]

    at.sidebar.radio[0].set_value("en").run()

    assert "Processing" in [s.value for s in at.sidebar.subheader]
    assert at.sidebar.expander[0].label == "Files not processed (2)"
    assert f"“{escape_inline('kaputt.pdf')}” – failed. Reason: {escape_inline('password-protected PDF')}" in (
        problems(at)
    )
    assert any(c.startswith("waiting: 0 · reading: 0 · ") for c in captions(at))


def test_hostile_file_names_and_reasons_are_shown_as_text(sources: Path, ledger: FileStates) -> None:
    name = "<script>alert(1)<script><img src=x onerror=alert(1)>.pdf"  # "/" cannot be in a file name
    reason = "**fett** [klick](javascript:alert(1)) <img src=x onerror=alert(1)> :red[rot]"
    ledger.set(str(sources / name), "failed", reason)
    ledger.set(str(sources / "[a](javascript:x).md"), "parsing")

    at = start_app()

    (shown,) = problems(at)
    assert escape_inline(name) in shown and escape_inline(reason) in shown
    values = captions(at) + problems(at) + [e.label for e in at.sidebar.expander]
    for value in values:
        assert "<script" not in value.replace("\\<script", "")
        tokens = MarkdownIt("commonmark").parse(value)
        kinds = {t.type for tok in tokens for t in [tok, *(tok.children or [])]}
        assert not {"html_inline", "html_block", "link_open", "image", "strong_open"} & kinds, value


def test_files_the_user_may_not_see_are_counted_but_not_named(sources: Path, ledger: FileStates) -> None:
    ledger.set("/srv/personal/kuendigung-mueller.pdf", "failed", "password-protected PDF")
    ledger.set("/srv/personal/abmahnung.pdf", "parsing")

    at = start_app()

    assert at.sidebar.expander[0].label == "Nicht verarbeitete Dateien (1)"
    assert problems(at) == [TEXTS["de"]["queue_hidden"].format(count=1)]
    text = " ".join(captions(at) + problems(at))
    assert "mueller" not in text and "abmahnung" not in text
    assert "wird gelesen: 1" in text


def test_no_queue_before_the_worker_has_seen_a_file(sources: Path) -> None:
    at = start_app()

    assert "Verarbeitung" not in [s.value for s in at.sidebar.subheader]
    assert not (sources.parent / "data" / "state.sqlite").exists(), "the page creates no state database"


def test_a_long_file_being_read_shows_how_many_pages_are_read(sources: Path, ledger: FileStates) -> None:
    ledger.set(str(sources / "scan.pdf"), "parsing", size=5, mtime=1.0)
    ledger.pages_done(str(sources / "scan.pdf"), 1234)

    shown = captions(start_app())

    assert f"Wird gerade gelesen: {escape_inline('scan.pdf')} (1.234 Seiten fertig)" in shown
