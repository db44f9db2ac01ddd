"""Follow-up questions rewritten into standalone ones before retrieval."""

from __future__ import annotations

import pytest

from rag.chat import ScriptedChatModel
from rag.followups import Exchange, clean_rewrite, rewrite_messages, standalone_question

HISTORY = [Exchange("Wie viele Urlaubstage gibt es?", "Der Urlaub beträgt mindestens 24 Werktage [1].")]


def test_without_history_the_question_is_used_as_asked_and_the_model_is_not_called() -> None:
    model = ScriptedChatModel(replies=["Etwas ganz anderes?"])
    assert standalone_question(model, "Wie viel Urlaub?", [], "de") == "Wie viel Urlaub?"
    assert model.calls == []


def test_a_follow_up_is_replaced_by_the_models_standalone_rewrite() -> None:
    model = ScriptedChatModel(replies=["Wie lange gilt der Anspruch auf 24 Werktage Urlaub?"])
    rewritten = standalone_question(model, "und wie lange gilt das?", HISTORY, "de")
    assert rewritten == "Wie lange gilt der Anspruch auf 24 Werktage Urlaub?"
    prompt = str(model.calls[0][-1].content)
    assert "Wie viele Urlaubstage gibt es?" in prompt and "und wie lange gilt das?" in prompt
    assert "[1]" not in prompt  # citation markers of earlier answers mean nothing to the rewrite


def test_only_the_first_line_of_a_chatty_reply_is_read() -> None:
    model = ScriptedChatModel(replies=["Frage: Wie lange gilt der Urlaubsanspruch?\nDer Anspruch gilt ein Jahr lang."])
    assert standalone_question(model, "und wie lange?", HISTORY, "de") == "Wie lange gilt der Urlaubsanspruch?"


@pytest.mark.parametrize(
    "reply",
    ["", "   ", "Der Urlaub gilt für ein Kalenderjahr.", "?", "Warum? " * 200],
)
def test_a_reply_that_is_not_one_question_falls_back_to_the_question_as_asked(reply: str) -> None:
    assert clean_rewrite(reply, "und wie lange gilt das?") == "und wie lange gilt das?"


def test_quotes_and_labels_around_the_rewrite_are_removed() -> None:
    assert clean_rewrite("„Wie lange gilt der Urlaub?“", "und das?") == "Wie lange gilt der Urlaub?"
    assert clean_rewrite("Rewritten question: How long is leave valid?", "and that?") == "How long is leave valid?"


def test_the_rewrite_prompt_keeps_only_the_last_turns_and_shortens_long_answers() -> None:
    history = [Exchange(f"Frage {i}?", "lang " * 500) for i in range(6)]
    prompt = str(rewrite_messages("und dann?", history, "de")[-1].content)
    assert "Frage 0?" not in prompt and "Frage 5?" in prompt
    assert len(prompt) < 2000


def test_english_rewrites_get_english_instructions() -> None:
    messages = rewrite_messages("and how long?", HISTORY, "en")
    assert "rewrite the last question" in str(messages[0].content)


def test_the_rewrite_sees_the_previous_answer_without_its_citations_but_with_its_link_text() -> None:
    history = [Exchange("Wie viele Urlaubstage gibt es?", "Es gibt 30 Tage [1][2], siehe [3](https://intranet.example/u).")]
    prompt = str(rewrite_messages("und für Azubis?", history, "de")[-1].content)
    assert "30 Tage," in prompt and "[1]" not in prompt
    assert "[3](https://intranet.example/u)" in prompt
