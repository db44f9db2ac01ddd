"""The one page of the web UI: sidebar, empty state or chat. Errors become friendly messages here."""

from __future__ import annotations

import logging

import streamlit as st

from rag.errors import UserError
from rag.service import Assistant
from ui.conversation import ask, chat_id, history, new_chat, render_history
from ui.escaping import escape_inline, escape_markdown
from ui.i18n import UILanguage, translate
from ui.runtime import read_settings, shared_assistant, shared_conversations
from ui.sidebar import (
    IndexView,
    index_view,
    render_jobs,
    render_language_switch,
    render_new_chat,
    render_status,
    render_upload,
)

logger = logging.getLogger(__name__)


def _setup_error(error: Exception, language: UILanguage) -> None:
    if isinstance(error, UserError):
        reason = escape_markdown(str(error))
        st.error(translate(language, "setup_error", reason=reason), icon=":material/build:")
    else:
        logger.error("the UI could not start: %s", type(error).__name__, exc_info=error)
        st.error(translate(language, "unexpected_error"), icon=":material/error:")


def _index_view(assistant: Assistant, language: UILanguage) -> IndexView | None:
    try:
        return index_view(assistant, assistant.default_access())
    except UserError as e:
        st.error(translate(language, "setup_error", reason=escape_markdown(str(e))), icon=":material/build:")
    except Exception:
        logger.exception("reading the index status failed")
        st.error(translate(language, "index_error"), icon=":material/error:")
    return None


FIRST_RUN_DOCUMENTS = 8


def _first_run(view: IndexView, language: UILanguage) -> None:
    """What the assistant can and cannot do, and which documents it knows (shown while a chat is empty)."""
    titles = [escape_inline(d.title or d.path.rsplit("/", 1)[-1]) for d in view.documents[:FIRST_RUN_DOCUMENTS]]
    known = ", ".join(f"*{t}*" for t in titles)
    if len(view.documents) > FIRST_RUN_DOCUMENTS:
        known += " " + translate(language, "documents_more", count=len(view.documents) - FIRST_RUN_DOCUMENTS)
    with st.container(border=True):
        st.markdown(f"**{translate(language, 'first_run_title')}**")
        st.markdown(translate(language, "first_run_can"))
        st.markdown(translate(language, "first_run_cannot"))
        st.markdown(translate(language, "first_run_documents", count=len(view.documents), documents=known))
        st.caption(translate(language, "welcome"))


def main() -> None:
    """Render the page for one script run."""
    # No page_icon: Streamlit fetches a Material-icon favicon from fonts.gstatic.com (offline: no).
    st.set_page_config(page_title="Hauswissen")
    try:
        settings = read_settings()
    except Exception as e:
        _setup_error(e, "de")
        return
    language = render_language_switch(settings.ui.language)
    render_new_chat(language, new_chat)
    st.title(translate(language, "title"), anchor=False)
    st.caption(translate(language, "tagline"))
    try:
        # The first session of a process loads the embedder and opens the index.
        with st.spinner(translate(language, "starting")):
            assistant = shared_assistant(settings)
    except Exception as e:
        _setup_error(e, language)
        return
    view = _index_view(assistant, language)
    if view is not None:
        render_status(view, language)
    render_upload(settings, assistant.default_access(), language)
    render_jobs(settings, language, assistant.default_access())

    try:
        store = shared_conversations(settings)
    except Exception as e:
        _setup_error(e, language)
        return
    chat = chat_id()
    turns = history(store, chat)

    # No max_chars: the browser would silently cut a pasted question; the length check explains instead.
    question = st.chat_input(translate(language, "chat_placeholder"))
    if view is not None and not view.documents:
        st.info(
            f"**{translate(language, 'empty_title')}**\n\n{translate(language, 'empty_body')}",
            icon=":material/upload_file:",
        )
    elif view is not None and not turns and question is None:
        _first_run(view, language)
    render_history(store, chat, turns, language)
    if question is not None:
        ask(assistant, store, chat, turns, question, settings.ui.max_question_chars, language)
