"""The Streamlit UI, run headless with AppTest against a small German index and fake backends.

The app reads its configuration exactly as in production (``HAUSWISSEN_CONFIG`` plus
``HAUSWISSEN__...`` overrides); tests that need particular model replies replace
``ui.runtime.create_assistant`` to inject a ``ScriptedChatModel`` into the Assistant.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest
from ui_support import APP, HR_CANARY, URLAUB, SampleDocument, build_index, configured_app, write_config

import ui.runtime
from rag.chat import ScriptedChatModel
from rag.config import Settings
from rag.documents import ChunkDraft
from rag.errors import BackendError
from rag.jobs import JobQueue
from rag.service import Assistant
from ui.escaping import escape_inline, escape_markdown, quote
from ui.i18n import TEXTS
from ui.uploads import submit_upload

QUESTION = "Wie viele Werktage Urlaub gibt es jährlich?"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty data folder, the app configured for it with fake backends, caches cleared."""
    data = tmp_path / "data"
    with configured_app(tmp_path, data, monkeypatch):
        yield data


@pytest.fixture
def indexed(data_dir: Path) -> Path:
    build_index(data_dir)
    return data_dir


def start_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    return at


def with_replies(monkeypatch: pytest.MonkeyPatch, model: ScriptedChatModel) -> None:
    """Make the app's Assistant answer through ``model``."""

    def create(settings: Settings) -> Assistant:
        return Assistant(settings, chat_model=model)

    monkeypatch.setattr(ui.runtime, "create_assistant", create)


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def all_markdown(at: AppTest) -> list[str]:
    """Every Markdown-rendered string on the page (markdown, captions, alerts, labels)."""
    values = [m.value for m in at.markdown] + [c.value for c in at.caption]
    values += [a.value for kind in (at.error, at.warning, at.info, at.success) for a in kind]
    values += [e.label for e in at.expander]
    return values


def assistant_messages(at: AppTest) -> list[Any]:
    return [m for m in at.chat_message if m.name == "assistant"]


def button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


# --- asking ---------------------------------------------------------------------------------------


def test_german_question_gets_streamed_answer_with_cited_sources(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_replies(monkeypatch, ScriptedChatModel(replies=["Es sind mindestens 24 Werktage im Jahr [1]."]))
    at = ask(start_app(), QUESTION)

    user, answer = at.chat_message
    assert user.name == "user"
    assert user.markdown[0].value == escape_markdown(QUESTION)
    assert answer.name == "assistant"
    assert answer.markdown[0].value == "Es sind mindestens 24 Werktage im Jahr [1]."
    (sources,) = answer.expander
    assert sources.label.startswith("Quellen: 1 von ")
    shown = [m.value for m in sources.markdown]
    heading = next(v for v in shown if v.startswith("**\\[1\\]**"))
    assert escape_inline("burlg.md") in heading
    assert escape_inline("§ 3 Dauer des Urlaubs") in heading
    assert ":green-badge[zitiert]" in heading
    assert any(escape_markdown(URLAUB) in v for v in shown)
    assert sum(":green-badge[" in v for v in shown) == 1, "only source 1 is cited"


def test_configured_scripted_backend_answers_from_first_source(indexed: Path) -> None:
    """No injection: the backends come from the environment alone, as for the served app."""
    at = ask(start_app(), QUESTION)

    (answer,) = assistant_messages(at)
    assert "[1]" in answer.markdown[0].value
    assert at.warning.len == 0, "not an abstention"
    headings = [m.value for m in answer.expander[0].markdown]
    assert ":green-badge[zitiert]" in headings[0]


def test_pdf_sources_show_their_page(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_replies(monkeypatch, ScriptedChatModel(replies=["0,30 Euro je Kilometer [1]."]))
    at = ask(start_app(), "Wie viel Kilometergeld gibt es für Dienstreisen mit dem eigenen Pkw?")

    shown = [m.value for m in assistant_messages(at)[0].expander[0].markdown]
    heading = next(v for v in shown if escape_inline("reisekostenrichtlinie.pdf") in v)
    assert escape_inline("Seite 2, 2 Fahrtkosten") in heading


def test_abstention_is_marked_and_still_lists_closest_sources(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_replies(monkeypatch, ScriptedChatModel(replies=["Dazu finde ich in den Dokumenten keine Antwort."]))
    at = ask(start_app(), "Wer gewinnt die nächste Fußballweltmeisterschaft?")

    (answer,) = assistant_messages(at)
    assert answer.warning[0].value == TEXTS["de"]["abstained"]
    (closest,) = answer.expander
    assert closest.label.startswith("Nächstliegende Fundstellen (")
    assert not any(":green-badge[" in m.value for m in closest.markdown)
    assert len(closest.markdown) >= 2


def test_a_withdrawn_answer_says_not_found_and_keeps_the_draft_out_of_sight(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_replies(monkeypatch, ScriptedChatModel(replies=["Es gibt 40 Werktage Urlaub <b>sicher</b> [1]."]))
    at = ask(start_app(), QUESTION)

    assert not at.exception
    (answer,) = assistant_messages(at)
    assert answer.warning[0].value == TEXTS["de"]["abstained"]
    assert answer.markdown[0].value == "Dazu finde ich in den Dokumenten keine Antwort."
    draft, closest = answer.expander
    assert draft.label == TEXTS["de"]["draft_withdrawn"]
    assert not draft.proto.expanded
    assert any(TEXTS["de"]["draft_withdrawn_why"] in c.value for c in draft.caption)
    shown = [m.value for m in draft.markdown]
    assert any("40 Werktage" in v for v in shown)
    assert not any("<b>" in v for v in shown)
    assert closest.label.startswith("Nächstliegende Fundstellen (")


def test_answer_markup_from_the_model_is_sanitised(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evil = (
        # No number beside the 24 from the source: an invented one would withdraw the answer, and this test
        # is about markup in a shown answer (test_a_withdrawn_answer_... covers a withdrawn draft's).
        "Es sind 24 Werktage. Siehe <script>alert(document.cookie)</script> und ![x](http://evil/x.png?q=geheim) "
        "sowie [hier klicken](javascript:alert(document.domain)) [1]."
    )
    with_replies(monkeypatch, ScriptedChatModel(replies=[evil]))
    at = ask(start_app(), QUESTION)

    rendered = assistant_messages(at)[0].markdown[0].value
    assert "<script" not in rendered
    assert "&lt;script" in rendered
    assert "hier klicken" in rendered
    for value in all_markdown(at):
        kinds = {t.type for tok in MarkdownIt("commonmark").parse(value) for t in [tok, *(tok.children or [])]}
        assert not {"image", "link_open", "html_inline", "html_block"} & kinds, value


def test_partial_answers_are_escaped_while_streaming(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit completes unterminated Markdown while streaming; the pieces it gets must be inert."""
    streamed: list[str] = []
    write_stream = st.write_stream

    def spy(stream: Iterator[str], **kwargs: Any) -> Any:
        def record() -> Iterator[str]:
            for piece in stream:
                streamed.append(piece)
                yield piece

        return write_stream(record(), **kwargs)

    monkeypatch.setattr(st, "write_stream", spy)
    with_replies(monkeypatch, ScriptedChatModel(replies=["Bild ![x](http://evil/x.png) <b>fett</b> [1]"]))
    ask(start_app(), QUESTION)

    text = "".join(streamed)
    assert len(streamed) > 3, "the answer arrives in pieces"
    assert text == escape_markdown("Bild ![x](http://evil/x.png) <b>fett</b> [1]")


def test_html_file_names_are_shown_literally(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "<img src=x onerror=alert(1)>[a](javascript:alert(1)).md"
    build_index(
        data_dir,
        [SampleDocument(path=f"upload/{name}", chunks=[ChunkDraft(URLAUB, 0, 50, section="<b>§ 3</b>")])],
    )
    with_replies(monkeypatch, ScriptedChatModel(replies=["24 Werktage [1]."]))
    at = ask(start_app(), QUESTION)

    values = all_markdown(at)
    assert any(escape_inline(name) in v for v in values), "listed in the sidebar and the sources"
    for value in values:
        assert "<img" not in value.replace("\\<img", "")
        assert "](javascript" not in value.replace("\\]\\(javascript", "")
        assert "<b>" not in value.replace("\\<b\\>", "")


# --- bad questions and failures --------------------------------------------------------------------


@pytest.mark.parametrize("question", ["   ", "x" * 2001], ids=["blank", "over-long"])
def test_blank_or_overlong_question_gets_a_friendly_warning(indexed: Path, question: str) -> None:
    at = ask(start_app(), question)

    assert not at.chat_message, "nothing is added to the conversation"
    (warning,) = at.warning
    if question.strip():
        assert warning.value.startswith("Ihre Frage ist zu lang (2001 Zeichen)")
    else:
        assert warning.value == "Bitte geben Sie eine Frage ein."


def test_question_the_service_refuses_shows_its_reason(indexed: Path) -> None:
    """Only control characters: the UI's check passes it, the service's clean_question refuses it."""
    at = ask(start_app(), "\x00\x01\x02")

    (answer,) = assistant_messages(at)
    assert "Bitte geben Sie eine Frage ein" in answer.error[0].value  # the library refusal, in German


def test_unreachable_model_gets_a_friendly_message(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    model = ScriptedChatModel(replies=["Teil einer Antwort [1]."], error=refused)
    with_replies(monkeypatch, model)
    at = ask(start_app(), QUESTION)

    (answer,) = assistant_messages(at)
    assert answer.error[0].value == TEXTS["de"]["backend_error"]
    assert not answer.expander
    assert "Teil" not in " ".join(m.value for m in answer.markdown), "the partial answer is replaced"
    assert not model.is_busy


def test_unexpected_error_is_logged_not_shown(
    indexed: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(messages: object) -> str:
        raise KeyError("internal detail 0xdeadbeef")

    with_replies(monkeypatch, ScriptedChatModel(respond=explode))
    with caplog.at_level(logging.ERROR):
        at = ask(start_app(), QUESTION)

    (answer,) = assistant_messages(at)
    assert answer.error[0].value == TEXTS["de"]["unexpected_error"]
    assert not any("deadbeef" in v for v in all_markdown(at))
    assert any("deadbeef" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_backend_error_raised_by_the_model_itself(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_replies(monkeypatch, ScriptedChatModel(error=BackendError("the model at http://10.0.0.5 is busy")))
    at = ask(start_app(), QUESTION)

    error = assistant_messages(at)[0].error[0].value
    assert error == TEXTS["de"]["backend_error"]
    assert "10.0.0.5" not in error


# --- sessions, language, empty state, status -------------------------------------------------------


def test_two_sessions_never_see_each_others_history(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def echo(messages: list[Any]) -> str:
        return "Antwort auf: " + str(messages[-1].content).split("Frage: ")[-1] + " [1]"

    with_replies(monkeypatch, ScriptedChatModel(respond=echo))
    alice = ask(start_app(), "Alice fragt: Wie lange ist die Wartezeit für Urlaub?")
    bob = start_app()

    assert not bob.chat_message
    ask(bob, "Bob fragt: Wie viel Kilometergeld gibt es?")
    alice.run()

    def texts(at: AppTest) -> str:
        return " ".join(m.value for msg in at.chat_message for m in msg.markdown)

    assert "Alice" in texts(alice) and "Bob" not in texts(alice)
    assert "Bob" in texts(bob) and "Alice" not in texts(bob)


def test_new_chat_clears_the_conversation(indexed: Path) -> None:
    at = ask(start_app(), QUESTION)
    assert at.chat_message

    button(at, "Neuer Chat").click().run()
    assert not at.chat_message
    assert not at.exception


def test_language_switch_changes_labels(indexed: Path) -> None:
    at = start_app()
    assert at.title[0].value == "Hauswissen"
    assert at.chat_input[0].placeholder == TEXTS["de"]["chat_placeholder"]
    assert [s.value for s in at.sidebar.subheader] == ["Wissensbasis", "Dokumente hinzufügen"]

    at.sidebar.radio[0].set_value("en").run()
    assert at.chat_input[0].placeholder == TEXTS["en"]["chat_placeholder"]
    assert [s.value for s in at.sidebar.subheader] == ["Knowledge base", "Add documents"]
    assert [m.label for m in at.sidebar.metric] == ["Documents", "Passages"]
    assert button(at, "New chat")

    ask(at, "How many working days of holiday are there per year?")
    (answer,) = assistant_messages(at)
    assert answer.expander[0].label.startswith("Sources: 1 of ")
    assert ":green-badge[cited]" in answer.expander[0].markdown[0].value

    at.sidebar.radio[0].set_value("de").run()
    assert assistant_messages(at)[0].expander[0].label.startswith("Quellen: 1 von "), "history follows"


def test_english_default_from_settings(indexed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUSWISSEN__UI__LANGUAGE", "en")
    at = start_app()
    assert at.sidebar.radio[0].value == "en"
    assert at.chat_input[0].placeholder == TEXTS["en"]["chat_placeholder"]


def test_empty_index_shows_how_to_add_documents(data_dir: Path) -> None:
    at = start_app()

    (info,) = at.info
    assert "Noch keine Dokumente" in info.value and "Dokumente hinzufügen" in info.value
    assert [m.value for m in at.sidebar.metric] == ["0", "0"]
    assert TEXTS["de"]["status_never"] in [c.value for c in at.sidebar.caption]


def test_sidebar_status_counts_and_lists_only_visible_documents(indexed: Path) -> None:
    at = start_app()

    assert [(m.label, m.value) for m in at.sidebar.metric] == [("Dokumente", "2"), ("Abschnitte", "4")]
    assert any(c.value.startswith("Stand: ") and "(Version 1)" in c.value for c in at.sidebar.caption)
    (documents,) = at.sidebar.expander
    assert documents.label == "Dokumente (2)"
    listed = documents.markdown[0].value
    assert escape_inline("burlg.md") in listed and escape_inline("reisekostenrichtlinie.pdf") in listed
    assert "gehaelter" not in listed
    assert not at.info, "no empty state"


def test_status_follows_a_newly_published_generation(indexed: Path) -> None:
    at = start_app()
    assert at.sidebar.metric[0].value == "2"

    build_index(indexed, [SampleDocument(path="neu/kantine.md", chunks=[ChunkDraft("Die Kantine.", 0, 12)])])
    button(at, "Aktualisieren").click().run()

    assert [m.value for m in at.sidebar.metric] == ["3", "5"]
    assert any("(Version 2)" in c.value for c in at.sidebar.caption)
    assert escape_inline("kantine.md") in at.sidebar.expander[0].markdown[0].value


def test_documents_of_other_groups_never_appear_in_sources(
    indexed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_replies(monkeypatch, ScriptedChatModel(replies=["Urlaub [1]."]))
    at = ask(start_app(), "Gehaltsbänder Urlaub Geschäftsführung vertraulich")

    for value in all_markdown(at):
        assert HR_CANARY not in value and "gehaelter" not in value


def test_broken_configuration_is_explained(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUSWISSEN__RETRIEVAL__TOP_K", "-3")
    at = start_app()

    (error,) = at.error
    assert error.value.startswith("Hauswissen ist nicht vollständig eingerichtet: invalid configuration")


# --- uploads ---------------------------------------------------------------------------------------


def submit(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "application/octet-stream"))
    button(at, TEXTS["de"]["upload_submit"]).click().run()
    assert not at.exception
    return at


def test_upload_of_a_mislabelled_file_is_refused_with_its_reason(data_dir: Path) -> None:
    at = submit(start_app(), "<script>x</script>bericht.pdf", b"<html>kein PDF</html>")

    (error,) = at.sidebar.error
    assert "wurde abgelehnt: der Inhalt passt nicht zur Endung \\.pdf" in error.value
    assert "<script" not in error.value
    assert JobQueue(data_dir / "state.sqlite").recent() == []


def test_upload_is_queued_and_its_progress_shown(data_dir: Path) -> None:
    at = submit(start_app(), "notiz.txt", "Die Kantine öffnet um 11:30 Uhr.".encode())

    queue = JobQueue(data_dir / "state.sqlite")
    (job,) = queue.recent()
    assert job.display_name == "notiz.txt" and job.state == "queued"
    assert (data_dir / "uploads").is_dir() and Path(job.path).read_bytes().startswith(b"Die Kantine")
    assert at.sidebar.info[0].value == f"{escape_inline('notiz.txt')}: wartet"

    queue.update(job.job_id, "failed", "no text found")
    at.run()
    assert at.sidebar.error[0].value.endswith("fehlgeschlagen. Grund: Kein Text gefunden")

    queue.update(job.job_id, "committed")
    at.run()
    assert at.sidebar.success[0].value.endswith(": bereit")


def test_upload_jobs_are_private_to_the_session(data_dir: Path) -> None:
    submit(start_app(), "notiz.txt", b"Hallo")
    other = start_app()
    assert not other.sidebar.info and not other.sidebar.success
    assert "Ihre Uploads" not in [s.value for s in other.sidebar.subheader]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("leer.txt", b"", "the file is empty"),
        ("programm.exe", b"MZ\x90\x00", "unsupported file type .exe"),
        ("gross.txt", b"a" * (1024 * 1024 + 1), "file too large"),
        ("tarnung.docx", b"%PDF-1.7", "is not an Office document"),
    ],
)
def test_submit_upload_refuses_bad_files(
    tmp_path: Path, settings_factory: Callable[..., Settings], name: str, data: bytes, reason: str
) -> None:
    settings = settings_factory(max_upload_mb=1)
    queue = JobQueue(settings.state_path)
    outcome = submit_upload(data, name, settings=settings, queue=queue, access=("public",))

    assert not outcome.accepted and not outcome.unexpected
    assert outcome.reason is not None and reason in outcome.reason
    assert queue.recent() == []


def test_submit_upload_keeps_files_inside_the_uploads_folder(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    queue = JobQueue(settings.state_path)
    outcome = submit_upload(
        b"Inhalt", "../../etc/passwd.txt", settings=settings, queue=queue, access=("public",)
    )

    assert outcome.accepted and outcome.name == "passwd.txt"
    job = queue.get(outcome.job_id or 0)
    assert job is not None and job.access == ("public",)
    stored = Path(job.path).resolve()
    assert stored.is_relative_to(settings.uploads_dir.resolve())
    assert stored.read_bytes() == b"Inhalt"


def test_submit_upload_reports_storage_failures_as_unexpected(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_factory()
    queue = JobQueue(settings.state_path)
    settings.uploads_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.uploads_dir.write_text("a file where the folder should be")
    with caplog.at_level(logging.ERROR):
        outcome = submit_upload(b"Inhalt", "a.txt", settings=settings, queue=queue, access=("public",))

    assert outcome.unexpected and not outcome.accepted and outcome.reason is None
    assert "storing an upload failed" in caplog.text


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    from rag.config import load_settings

    def make(**ui: object) -> Settings:
        return load_settings(write_config(tmp_path, tmp_path / "data", **ui), env={})

    return make


# --- strings and escaping --------------------------------------------------------------------------


def test_every_string_exists_in_both_languages_with_the_same_placeholders() -> None:
    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    assert TEXTS["de"].keys() == TEXTS["en"].keys()
    for key, german in TEXTS["de"].items():
        assert fields(german) == fields(TEXTS["en"][key]), key


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>.pdf",
        "![x](http://evil/x.png)",
        "[klick](javascript:alert(1))",
        ":red[rot] :material/home: $x^2$ **fett** `code` # Titel",
        "a\\](b) \u202eRTL\x00",
    ],
)
def test_escaped_text_has_no_markup_left(hostile: str) -> None:
    escaped = escape_markdown(hostile)
    unescaped = escaped.replace("\\\\", "")
    for i, ch in enumerate(unescaped):
        if ch in string.punctuation and ch != "\\":
            assert unescaped[i - 1] == "\\", (hostile, escaped, i)
    assert "\u202e" not in escaped and "\x00" not in escaped


def test_quote_keeps_lines_and_cuts_long_passages() -> None:
    assert quote("Zeile 1\nZeile 2") == "> Zeile 1  \n> Zeile 2  "
    long = quote("a" * 2000, limit=100)
    assert long.startswith("> " + "a" * 100) and long.rstrip().endswith("…")


def test_library_refusals_are_shown_in_the_users_language() -> None:
    from rag.errors import InvalidInputError
    from rag.uploads import accept_upload
    from ui.i18n import error_text

    try:
        accept_upload(b"x" * 10, "gross.pdf", uploads_dir=Path("/nonexistent"), queue=None,  # type: ignore[arg-type]
                      allowed_extensions=[".pdf"], max_bytes=5)
    except InvalidInputError as e:
        german = error_text("de", e.code, e.params, str(e))
        english = error_text("en", e.code, e.params, str(e))
    assert german == "die Datei ist zu groß (0.0 MB, höchstens 0 MB)"
    assert english.startswith("the file is too large")
    assert error_text("de", None, {}, "plain fallback") == "plain fallback"


def test_long_multibyte_upload_names_fit_the_file_system() -> None:
    from rag.uploads import safe_filename

    name = safe_filename("𝔸" * 300 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= 120
