"""The chat: a session's history, asking the Assistant, streaming and rendering answers.

History lives only in ``st.session_state`` (one per browser session), as plain dicts so a code reload
never strands it. While an answer streams, its text is shown escaped (literal): Streamlit completes
unterminated Markdown while streaming, and half an answer cannot be sanitised reliably. Once the stream
ends, the sanitised Markdown replaces it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import streamlit as st

from rag.errors import BackendError, UserError
from rag.service import Assistant
from ui.escaping import escape_markdown
from ui.i18n import UILanguage, error_text, translate
from ui.sources import render_answer

logger = logging.getLogger(__name__)

HISTORY_KEY = "hauswissen_history"

Turn = dict[str, Any]


def history() -> list[Turn]:
    """This session's turns: ``{"kind": "question"|"answer"|"error", ...}``."""
    turns: list[Turn] = st.session_state.setdefault(HISTORY_KEY, [])
    return turns


def clear_history() -> None:
    st.session_state[HISTORY_KEY] = []


def render_turn(turn: Turn, language: UILanguage) -> None:
    """Render one stored turn in the current language (labels follow a language switch)."""
    if turn["kind"] == "answer":
        render_answer(turn["answer"], language)
    elif turn["kind"] == "error":
        values = {"reason": escape_markdown(turn.get("reason") or "")}
        st.error(translate(language, turn["key"], **values), icon=":material/error:")


def render_history(language: UILanguage) -> None:
    for turn in history():
        if turn["kind"] == "question":
            with st.chat_message("user"):
                st.markdown(escape_markdown(turn["text"]))
        else:
            with st.chat_message("assistant"):
                render_turn(turn, language)


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


def _stream_answer(assistant: Assistant, question: str, language: UILanguage) -> Turn:
    """Ask, stream the reply (escaped) into the current container; return the finished turn."""
    deltas: Iterator[str] | None = None
    try:
        with st.spinner(translate(language, "searching")):
            stream = assistant.ask(question)
            deltas = iter(stream)
            # Retrieval and the model's prompt reading happen before the first piece arrives.
            first = next(deltas, "")
        st.write_stream(_escaped(itertools.chain([first], deltas)))
        return {"kind": "answer", "answer": stream.answer}
    except UserError as e:
        return {"kind": "error", "key": "user_error", "reason": error_text(language, e.code, e.params, str(e))}
    except BackendError as e:
        logger.warning("language model failed: %s", e)
        return {"kind": "error", "key": "backend_error"}
    except Exception:
        logger.exception("answering a question failed")
        return {"kind": "error", "key": "unexpected_error"}
    finally:
        # Releases the model at once if the stream was abandoned (an error, or the user moved on).
        close = getattr(deltas, "close", None)
        if close is not None:
            close()


def ask(assistant: Assistant, question: str, max_chars: int, language: UILanguage) -> None:
    """Handle one submitted question: validate, show it, stream the answer, store both turns."""
    problem = question_problem(question, max_chars, language)
    if problem is not None:
        st.warning(problem, icon=":material/edit_note:")
        return
    text = question.strip()
    turns = history()
    turns.append({"kind": "question", "text": text})
    with st.chat_message("user"):
        st.markdown(escape_markdown(text))
    with st.chat_message("assistant"):
        slot = st.empty()
        with slot.container():
            turn = _stream_answer(assistant, text, language)
        with slot.container():
            render_turn(turn, language)
    turns.append(turn)
