"""The chat: its id, its stored turns, asking the Assistant, streaming and rendering answers, feedback.

A chat's turns live in the :class:`~rag.conversations.ConversationStore` (SQLite) under an unguessable
chat id kept in the page URL (``?chat=...``): reloading the page or coming back to that address shows
the chat again, and "new chat" starts a new id. The address is personal: whoever has it sees the chat.
While an answer streams, its text is shown escaped (literal): Streamlit completes unterminated Markdown
while streaming, and half an answer cannot be sanitised reliably. Once the stream ends, the sanitised
Markdown replaces it.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from collections.abc import Iterator
from typing import Any

import streamlit as st

from rag.conversations import (
    ConversationStore,
    Turn,
    answer_from_record,
    answer_to_record,
    exchanges,
    is_chat_id,
    new_chat_id,
)
from rag.errors import BackendError, UserError
from rag.service import Answer, Assistant
from ui.escaping import escape_inline, escape_markdown
from ui.i18n import UILanguage, error_text, translate
from ui.sources import render_answer

logger = logging.getLogger(__name__)

CHAT_KEY = "hauswissen_chat"
_URL_KEY = "chat"


def chat_id() -> str:
    """This session's chat id: the one in the URL when it is well-formed, else a new one put there."""
    from_url = st.query_params.get(_URL_KEY)
    chat = from_url if is_chat_id(from_url) else st.session_state.get(CHAT_KEY)
    if not is_chat_id(chat):
        chat = new_chat_id()
    assert isinstance(chat, str)
    if from_url != chat:
        st.query_params[_URL_KEY] = chat
    st.session_state[CHAT_KEY] = chat
    return chat


def new_chat() -> None:
    """Start an empty chat (a button callback). The old one stays reachable at its address until
    the retention period ends, with its feedback."""
    chat = new_chat_id()
    st.session_state[CHAT_KEY] = chat
    st.query_params[_URL_KEY] = chat


def history(store: ConversationStore, chat: str) -> list[Turn]:
    """The chat's stored turns; none (and a logged error) when the store cannot be read."""
    try:
        return store.turns(chat)
    except (sqlite3.Error, OSError, ValueError):
        logger.exception("reading the chat history failed")
        return []


def _save(store: ConversationStore, chat: str, kind: str, data: dict[str, Any], language: UILanguage) -> int | None:
    try:
        return store.append(chat, kind, data)
    except (sqlite3.Error, OSError) as e:
        logger.error("saving a chat turn failed: %s", e)
        st.warning(translate(language, "history_not_saved"), icon=":material/sd_card_alert:")
        return None


def _render_search(answer: Answer, language: UILanguage) -> None:
    """What retrieval searched for: always named for a refusal, on demand for a rewritten follow-up."""
    query = answer.search_query or answer.question
    if answer.abstained:
        st.caption(translate(language, "searched_for", query=escape_inline(query)))
    elif answer.search_query and answer.search_query != answer.question:
        with st.expander(translate(language, "rewritten_label"), icon=":material/manage_search:"):
            st.markdown(translate(language, "searched_for", query=escape_inline(query)))


def _render_feedback(
    store: ConversationStore, chat: str, seq: int, stored: tuple[int, str] | None, language: UILanguage
) -> None:
    """Thumbs up/down and, once rated, an optional comment; both saved as soon as they change."""
    rating_key, comment_key = f"feedback-{chat}-{seq}", f"feedback-comment-{chat}-{seq}"

    def save() -> None:
        value = st.session_state.get(rating_key)
        if value is None:
            return
        comment = str(st.session_state.get(comment_key) or (stored[1] if stored else ""))
        try:
            store.rate(chat, seq, 1 if value == 1 else -1, comment)
        except UserError as e:
            st.session_state[f"{rating_key}-error"] = error_text(language, e.code, e.params, str(e))
        except (sqlite3.Error, OSError) as e:
            logger.error("saving feedback failed: %s", e)
            st.session_state[f"{rating_key}-error"] = translate(language, "feedback_not_saved")

    default = None if stored is None else (1 if stored[0] > 0 else 0)
    value = st.feedback("thumbs", key=rating_key, default=default, on_change=save)
    problem = st.session_state.pop(f"{rating_key}-error", None)
    if problem:
        st.warning(escape_markdown(problem), icon=":material/error:")
    if value is not None:
        st.text_input(
            translate(language, "feedback_comment"),
            value=stored[1] if stored else "",
            key=comment_key,
            on_change=save,
            max_chars=2000,
            placeholder=translate(language, "feedback_comment_placeholder"),
        )


def render_turn(
    turn: Turn,
    language: UILanguage,
    store: ConversationStore | None = None,
    chat: str | None = None,
    rating: tuple[int, str] | None = None,
) -> None:
    """Render one stored turn in the current language (labels follow a language switch)."""
    if turn.kind == "answer":
        answer = answer_from_record(turn.data)
        render_answer(answer, language)
        _render_search(answer, language)
        if store is not None and chat is not None:
            _render_feedback(store, chat, turn.seq, rating, language)
    elif turn.kind == "error":
        values = {"reason": escape_markdown(turn.data.get("reason") or "")}
        st.error(translate(language, turn.data["key"], **values), icon=":material/error:")


def render_history(store: ConversationStore, chat: str, turns: list[Turn], language: UILanguage) -> None:
    """Every turn of the chat, answers with their feedback controls."""
    try:
        ratings = store.ratings(chat)
    except (sqlite3.Error, OSError):
        ratings = {}
    for turn in turns:
        if turn.kind == "question":
            with st.chat_message("user"):
                st.markdown(escape_markdown(str(turn.data["text"])))
        else:
            with st.chat_message("assistant"):
                render_turn(turn, language, store, chat, ratings.get(turn.seq))


def question_problem(question: str, max_chars: int, language: UILanguage) -> str | None:
    """A friendly message when ``question`` is empty or too long, else None.

    The service checks again (``clean_question``); this check only gives the message in the UI's language.
    """
    text = question.strip()
    if not text:
        return translate(language, "question_empty")
    if len(text) > max_chars:
        return translate(language, "question_too_long", length=len(text), limit=max_chars)
    return None


def _escaped(deltas: Iterator[str]) -> Iterator[str]:
    for delta in deltas:
        yield escape_markdown(delta)


def _stream_answer(assistant: Assistant, question: str, turns: list[Turn], language: UILanguage) -> Turn:
    """Ask, stream the reply (escaped) into the current container; return the finished turn (unsaved)."""
    deltas: Iterator[str] | None = None

    def show_place(place: int) -> None:
        # A toast, not an element: the answer's container must hold only the answer it will be replaced by.
        st.toast(translate(language, "queue_waiting", place=place), icon=":material/hourglass_top:")

    try:
        with st.spinner(translate(language, "searching")):
            stream = assistant.ask(question, history=exchanges(turns), on_wait=show_place)
            deltas = iter(stream)
            # Retrieval and the model's prompt reading happen before the first piece arrives.
            first = next(deltas, "")
        st.write_stream(_escaped(itertools.chain([first], deltas)))
        return Turn(0, "answer", answer_to_record(stream.answer))
    except UserError as e:
        reason = error_text(language, e.code, e.params, str(e))
        return Turn(0, "error", {"key": "user_error", "reason": reason})
    except BackendError as e:
        logger.warning("language model failed: %s", e)
        return Turn(0, "error", {"key": "backend_error"})
    except Exception:
        logger.exception("answering a question failed")
        return Turn(0, "error", {"key": "unexpected_error"})
    finally:
        # Releases the model at once if the stream was abandoned (an error, or the user moved on).
        close = getattr(deltas, "close", None)
        if close is not None:
            close()


def ask(
    assistant: Assistant,
    store: ConversationStore,
    chat: str,
    turns: list[Turn],
    question: str,
    max_chars: int,
    language: UILanguage,
) -> None:
    """Handle one submitted question: validate, show and store it, stream the answer, store it."""
    problem = question_problem(question, max_chars, language)
    if problem is not None:
        st.warning(problem, icon=":material/edit_note:")
        return
    text = question.strip()
    with st.chat_message("user"):
        st.markdown(escape_markdown(text))
    earlier = list(turns)
    _save(store, chat, "question", {"text": text}, language)
    with st.chat_message("assistant"):
        slot = st.empty()
        with slot.container():
            turn = _stream_answer(assistant, text, earlier, language)
        seq = _save(store, chat, turn.kind, turn.data, language)
        with slot.container():
            if seq is None:
                render_turn(turn, language)
            else:
                render_turn(Turn(seq, turn.kind, turn.data), language, store, chat)
