"""Chats in the UI: kept at their address across reloads, follow-ups rewritten visibly, feedback stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from ui_support import APP, URLAUB, build_index, configured_app

import ui.runtime
from hauswissen.cli import main as cli
from rag.chat import ScriptedChatModel
from rag.config import Settings, load_settings
from rag.conversations import ConversationStore, is_chat_id
from rag.service import Assistant
from ui.escaping import escape_markdown
from ui.i18n import TEXTS

DE = TEXTS["de"]
QUESTION = "Wie viele Werktage Urlaub gibt es jährlich?"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    build_index(data)
    with configured_app(tmp_path, data, monkeypatch) as path:
        yield path


def settings(config: Path) -> Settings:
    return load_settings(config)


def start(chat: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if chat is not None:
        at.query_params["chat"] = chat
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chat_of(at: AppTest) -> str:
    value = at.query_params["chat"]
    chat = value[0] if isinstance(value, list) else value
    assert is_chat_id(chat)
    return str(chat)


def user_texts(at: AppTest) -> list[str]:
    return [m.markdown[0].value for m in at.chat_message if m.name == "user"]


def test_a_chat_is_back_after_reloading_its_address(config: Path) -> None:
    first = ask(start(), QUESTION)
    chat = chat_of(first)
    again = start(chat)
    assert user_texts(again) == [escape_markdown(QUESTION)]
    answer = " ".join(m.value for msg in again.chat_message if msg.name == "assistant" for m in msg.markdown)
    assert "24 Werktage" in answer


def test_a_page_without_or_with_a_forged_chat_id_starts_an_empty_chat(config: Path) -> None:
    chat = chat_of(ask(start(), QUESTION))
    for forged in ["../../state", "x", chat[:-1] + "!"]:
        at = start(forged)
        assert not at.chat_message
        assert chat_of(at) not in (forged, chat)


def test_new_chat_starts_a_fresh_address_and_the_old_chat_stays_reachable(config: Path) -> None:
    at = ask(start(), QUESTION)
    old = chat_of(at)
    next(b for b in at.button if b.label == DE["new_chat"]).click().run()
    assert not at.chat_message
    assert chat_of(at) != old
    assert user_texts(start(old)) == [escape_markdown(QUESTION)]


def test_a_follow_up_is_searched_as_its_standalone_rewrite_which_is_shown(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def respond(messages: list[Any]) -> str:
        prompt = str(messages[-1].content)
        if "<source" not in prompt:  # the rewrite prompt
            return "Ab wann entsteht der Anspruch auf Urlaub?"
        return "Nach sechs Monaten [1]." if "Wartezeit" in prompt.split("Frage:")[0] else "24 Werktage [1]."

    model = ScriptedChatModel(respond=respond)
    monkeypatch.setattr(ui.runtime, "create_assistant", lambda s: Assistant(s, chat_model=model))
    at = ask(ask(start(), QUESTION), "und ab wann?")

    assert len(model.calls) == 3  # answer, rewrite, answer
    rewrite_prompt = str(model.calls[1][-1].content)
    assert QUESTION in rewrite_prompt and "und ab wann?" in rewrite_prompt
    expander = next(e for e in at.expander if e.label == DE["rewritten_label"])
    assert escape_markdown("Ab wann entsteht der Anspruch auf Urlaub?") in expander.markdown[0].value
    assert user_texts(at) == [escape_markdown(q) for q in (QUESTION, "und ab wann?")]  # the user's words stay as asked


def test_a_refusal_names_what_was_searched(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = ScriptedChatModel(replies=["Dazu finde ich in den Dokumenten keine Antwort."])
    monkeypatch.setattr(ui.runtime, "create_assistant", lambda s: Assistant(s, chat_model=model))
    at = ask(start(), "Wie hoch ist die Kantinenpauschale?")
    assert any("Gesucht wurde nach" in c.value and "Kantinenpauschale" in c.value for c in at.caption)


def test_thumbs_and_comment_are_stored_with_the_answer_and_export_as_an_eval_case(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    at = ask(start(), QUESTION)
    chat = chat_of(at)
    at.feedback[0].set_value(1).run()
    assert not at.exception
    at.text_input[0].input("stimmt genau").run()
    assert not at.exception

    store = ConversationStore(settings(config).conversations_path)
    [rated] = store.feedback()
    assert (rated.conversation, rated.rating, rated.comment) == (chat, 1, "stimmt genau")
    assert rated.answer.question == QUESTION and URLAUB in rated.answer.sources[0].text

    reloaded = start(chat)
    assert reloaded.feedback[0].value == 1  # the stored rating is shown again

    out = tmp_path / "export"
    assert cli(["--config", str(config), "feedback", "export", str(out)]) == 0
    # The test index's documents are not files in a source folder, so the rated answer is for review.
    rows = [json.loads(line) for line in (out / "review.jsonl").read_text().splitlines()]
    assert [(r["question"], r["rating"], r["comment"]) for r in rows] == [(QUESTION, 1, "stimmt genau")]
    assert "1 answer(s) to review" in capsys.readouterr().out


def test_a_chat_is_invisible_from_another_browser_session(config: Path) -> None:
    ask(start(), "Alice fragt nach dem Urlaub?")
    bob = start()
    assert not bob.chat_message


def test_first_run_explains_the_assistant_and_lists_only_documents_the_user_may_see(config: Path) -> None:
    at = start()
    text = " ".join(m.value for m in at.markdown)
    assert DE["first_run_title"] in text and "Was es nicht kann" in text
    assert "Bekannte Dokumente (2)" in text and "Reisekostenrichtlinie" in text
    assert "gehaelter" not in text  # an HR document is not even named to a public user
    ask(at, QUESTION)
    assert DE["first_run_title"] not in " ".join(m.value for m in at.markdown)


def test_a_full_generation_queue_answers_busy_instead_of_hanging(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAUSWISSEN__LLM__MAX_WAITING", "0")
    made: list[Assistant] = []

    def create(s: Settings) -> Assistant:
        made.append(Assistant(s, chat_model=ScriptedChatModel()))
        return made[-1]

    monkeypatch.setattr(ui.runtime, "create_assistant", create)
    at = start()
    ticket = made[0].generation_queue.enter()  # someone else's answer holds the only slot
    try:
        ask(at, QUESTION)
    finally:
        ticket.release()
    errors = " ".join(e.value for e in at.error)
    assert "warten bereits" in errors and "Sprachmodell" in errors, errors
