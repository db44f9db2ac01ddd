"""The sidebar: language, new chat, index status with the document list, uploads, the ingestion queue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlit as st

from rag.config import Settings
from rag.documents import DocumentRecord
from rag.jobs import ACTIVE
from rag.service import Assistant
from rag.status import FileStatus, QueueStatus, queue_status
from ui.escaping import escape_inline
from ui.i18n import LANGUAGE_NAMES, LANGUAGES, UILanguage, error_text, format_number, translate
from ui.reasons import reason_text
from ui.runtime import document_catalogue, shared_assistant, shared_queue
from ui.uploads import submit_upload, upload_limit_mb, upload_types

LANGUAGE_KEY = "hauswissen_language"
UPLOADS_KEY = "hauswissen_uploads"
DOCUMENTS_SHOWN = 200
PROBLEMS_SHOWN = 50
JOB_POLL_S = 2.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexView:
    """What the caller may see of the published index."""

    documents: list[DocumentRecord]
    chunks: int
    generation: int
    created: float | None


def index_view(assistant: Assistant, access: Sequence[str]) -> IndexView:
    """The documents ``access`` may see, their chunk count, and the generation's number and time."""
    stats = assistant.status()
    tokens = set(access)
    catalogue, counts = document_catalogue(assistant, stats.generation, stats.created)
    documents = [d for d in catalogue if tokens.intersection(d.access)]
    chunks = sum(counts.get(d.doc_id, 0) for d in documents)
    return IndexView(documents, chunks, stats.generation, stats.created)


def format_time(timestamp: float, language: UILanguage) -> str:
    pattern = "%d.%m.%Y %H:%M" if language == "de" else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(timestamp).strftime(pattern)


def render_language_switch(default: UILanguage) -> UILanguage:
    """A Deutsch/English switch; the choice lives in this session only."""
    choice = st.sidebar.radio(
        translate(default, "language_label"),
        LANGUAGES,
        index=LANGUAGES.index(default),
        format_func=LANGUAGE_NAMES.__getitem__,
        horizontal=True,
        key=LANGUAGE_KEY,
    )
    return choice if choice in LANGUAGES else default


def render_new_chat(language: UILanguage, on_click: Callable[[], None]) -> None:
    st.sidebar.button(
        translate(language, "new_chat"), icon=":material/add_comment:", on_click=on_click, width="stretch"
    )


def render_status(view: IndexView, language: UILanguage) -> None:
    """Counts, the time of the last update and the visible documents."""
    sidebar = st.sidebar
    sidebar.subheader(translate(language, "status_header"))
    left, right = sidebar.columns(2)
    left.metric(translate(language, "status_documents"), format_number(len(view.documents), language))
    right.metric(translate(language, "status_chunks"), format_number(view.chunks, language))
    if view.created is not None:
        when = format_time(view.created, language)
        sidebar.caption(translate(language, "status_updated", when=when, generation=view.generation))
    else:
        sidebar.caption(translate(language, "status_never"))
    if view.documents:
        with sidebar.expander(translate(language, "documents_list", count=len(view.documents))):
            shown = view.documents[:DOCUMENTS_SHOWN]
            st.markdown("\n".join(f"- {escape_inline(_document_name(d))}" for d in shown))
            if len(view.documents) > len(shown):
                st.caption(translate(language, "documents_more", count=len(view.documents) - len(shown)))
    sidebar.button(translate(language, "refresh"), icon=":material/refresh:", key="hauswissen_refresh")


def _document_name(document: DocumentRecord) -> str:
    return document.path.replace("\\", "/").rsplit("/", 1)[-1]


def _uploads() -> list[dict[str, Any]]:
    """This session's uploads: ``{"name", "job_id"}`` when queued, ``{"name", "reason"}`` when refused."""
    entries: list[dict[str, Any]] = st.session_state.setdefault(UPLOADS_KEY, [])
    return entries


def render_upload(settings: Settings, access: Sequence[str], language: UILanguage) -> None:
    """A file picker in a form; submitted files are stored and queued for the worker."""
    sidebar = st.sidebar
    sidebar.subheader(translate(language, "upload_header"))
    types = upload_types(settings)
    limit = upload_limit_mb(settings)
    with sidebar.form("hauswissen_upload", clear_on_submit=True, border=False):
        files = st.file_uploader(
            translate(language, "upload_label"),
            type=types,
            accept_multiple_files=True,
            max_upload_size=limit,
            help=translate(language, "upload_help", types=", ".join(f".{t}" for t in types), mb=limit),
        )
        submitted = st.form_submit_button(translate(language, "upload_submit"), icon=":material/upload:")
    if not submitted:
        return
    if not files:
        sidebar.warning(translate(language, "upload_none"))
        return
    queue = shared_queue(settings)
    for file in files:
        outcome = submit_upload(file.getvalue(), file.name, settings=settings, queue=queue, access=access)
        if outcome.accepted:
            _uploads().append({"name": outcome.name, "job_id": outcome.job_id})
        else:
            _uploads().append(
                {"name": outcome.name, "reason": outcome.reason, "unexpected": outcome.unexpected,
                 "code": outcome.code, "params": outcome.params}
            )


def _queue_status(settings: Settings) -> QueueStatus:
    """The ledger's queue; files of the published index carry their access tokens."""
    assistant = shared_assistant(settings)
    stats = assistant.status()
    documents, _ = document_catalogue(assistant, stats.generation, stats.created)
    return queue_status(settings, documents)


def render_queue(settings: Settings, access: Sequence[str], language: UILanguage) -> None:
    """Files per ingestion state, the file being worked on, the ETA and the files that failed.

    Shown once the worker has seen files; polls while files are pending, like :func:`render_jobs`, and
    reruns the page when they are done so the index status follows. Names ``access`` may not see are
    only counted.
    """
    try:
        status = _queue_status(settings)
    except Exception:
        logger.exception("reading the ingestion queue failed")
        st.sidebar.caption(translate(language, "queue_error"))
        return
    if status.empty:
        return
    with st.sidebar:
        st.fragment(run_every=JOB_POLL_S if status.pending else None)(_queue_fragment)(
            settings, tuple(access), language, status.pending > 0
        )


def _queue_fragment(settings: Settings, access: tuple[str, ...], language: UILanguage, was_pending: bool) -> None:
    try:
        status = _queue_status(settings)
    except Exception:
        logger.exception("reading the ingestion queue failed")
        st.caption(translate(language, "queue_error"))
        return
    st.subheader(translate(language, "queue_header"))
    st.caption(
        " · ".join(
            f"{translate(language, f'file_{state}')}: {format_number(n, language)}"
            for state, n in status.counts.items()
        )
    )
    for file in status.working:
        if file.visible_to(access):
            text = translate(language, f"queue_now_{file.state}", name=escape_inline(file.name))
            if file.pages:
                key = "queue_page_done" if file.pages == 1 else "queue_pages_done"
                text += " " + translate(language, key, pages=format_number(file.pages, language))
            st.caption(text)
    if status.pending:
        st.caption(_eta_text(status, language))
    problems = [f for f in status.problems if f.visible_to(access)]
    hidden = len(status.problems) - len(problems)
    if status.problems:
        with st.expander(translate(language, "queue_problems", count=len(status.problems))):
            for file in problems[:PROBLEMS_SHOWN]:
                st.caption(_problem_text(file, language))
            if len(problems) > PROBLEMS_SHOWN:
                st.caption(translate(language, "documents_more", count=len(problems) - PROBLEMS_SHOWN))
            if hidden:
                st.caption(translate(language, "queue_hidden", count=hidden))
    if was_pending and not status.pending:
        # The queue ran empty: rerun the whole page so the index status and document list update.
        st.rerun()


def _eta_text(status: QueueStatus, language: UILanguage) -> str:
    count = format_number(status.pending, language)
    if status.eta_seconds is None:
        return translate(language, "queue_eta_unknown", count=count)
    if status.eta_seconds < 60:
        return translate(language, "queue_eta_soon", count=count)
    return translate(language, "queue_eta", count=count, minutes=format_number(status.eta_seconds / 60, language))


def _problem_text(file: FileStatus, language: UILanguage) -> str:
    reason = reason_text(file.reason, language) if file.reason else translate(language, "queue_no_reason")
    return translate(
        language, "queue_problem", name=escape_inline(file.name), state=translate(language, f"file_{file.state}"),
        reason=escape_inline(reason),
    )


def render_jobs(settings: Settings, language: UILanguage, access: Sequence[str] | None = None) -> None:
    """The ingestion queue (see :func:`render_queue`; ``access`` defaults to the configured default
    access, which is what every UI session gets) and this session's uploads and their states; polls while
    any is still being processed."""
    render_queue(settings, settings.retrieval.default_access if access is None else access, language)
    entries = _uploads()
    if not entries:
        return
    queue = shared_queue(settings)
    active = any(_state(queue, e) in ACTIVE for e in entries)
    with st.sidebar:
        st.fragment(run_every=JOB_POLL_S if active else None)(_jobs_fragment)(settings, language, active)


def _state(queue: Any, entry: dict[str, Any]) -> str:
    if entry.get("job_id") is None:
        return "failed"
    job = queue.get(entry["job_id"])
    return job.state if job is not None else "unknown"


def _jobs_fragment(settings: Settings, language: UILanguage, was_active: bool) -> None:
    queue = shared_queue(settings)
    st.subheader(translate(language, "jobs_header"))
    still_active = False
    for entry in reversed(_uploads()):
        name = escape_inline(entry["name"])
        if entry.get("job_id") is None:
            if entry.get("unexpected"):
                st.error(f"{name}: {translate(language, 'unexpected_error')}", icon=":material/error:")
            else:
                reason = escape_inline(
                    error_text(language, entry.get("code"), entry.get("params") or {}, entry.get("reason") or "")
                )
                message = translate(language, "upload_rejected", name=name, reason=reason)
                st.error(message, icon=":material/block:")
            continue
        job = queue.get(entry["job_id"])
        state = job.state if job is not None else "unknown"
        label = translate(language, f"job_{state}")
        if state in ACTIVE:
            still_active = True
            st.info(f"{name}: {label}", icon=":material/hourglass_top:")
        elif state == "failed":
            reason = escape_inline(reason_text((job.reason if job else None) or "", language))
            why = translate(language, "job_reason", reason=reason)
            st.error(f"{name}: {label}. {why}", icon=":material/error:")
        else:
            st.success(f"{name}: {label}", icon=":material/check_circle:")
    if was_active and not still_active:
        # Processing finished: rerun the whole page so the index status and document list update.
        st.rerun()
