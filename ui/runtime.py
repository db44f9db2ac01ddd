"""Process-wide objects of the UI: settings, the shared Assistant and the job queue.

Only objects without user data are cached with ``st.cache_resource``; chat history and a session's
uploads live in ``st.session_state``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from rag.config import Settings, load_settings, resolve_config_path
from rag.conversations import ConversationStore
from rag.documents import DocumentRecord
from rag.jobs import JobQueue
from rag.service import Assistant
from rag.store import IndexReader

REPO_ROOT = Path(__file__).resolve().parent.parent


def config_path() -> Path | None:
    """``$HAUSWISSEN_CONFIG``, else ``config.yaml`` in the repository root if it exists, else None."""
    return resolve_config_path(None, [REPO_ROOT])


def read_settings() -> Settings:
    """The settings for this run (cheap; read on every rerun so a changed environment is seen).

    Raises:
        ConfigError: the configuration is unreadable or invalid.
    """
    return load_settings(config_path())


def settings_key(settings: Settings) -> str:
    """A cache key that changes whenever any setting (the API key included) changes."""
    secret = settings.llm.api_key.get_secret_value().encode()
    return settings.model_dump_json() + hashlib.sha256(secret).hexdigest()


def create_assistant(settings: Settings) -> Assistant:
    """Build the Assistant for ``settings`` (tests replace this to inject a chat model)."""
    return Assistant(settings)


@st.cache_resource(show_spinner=False, max_entries=4)
def _cached_assistant(key: str, _settings: Settings) -> Assistant:
    return create_assistant(_settings)


def shared_assistant(settings: Settings) -> Assistant:
    """One Assistant per configuration and process, shared by all sessions (it holds no user data).

    Raises:
        UserError: the index was built with another embedder, a model is missing, ...
    """
    return _cached_assistant(settings_key(settings), settings)


@st.cache_resource(show_spinner=False, max_entries=4)
def _cached_queue(state_path: str) -> JobQueue:
    return JobQueue(Path(state_path))


def shared_queue(settings: Settings) -> JobQueue:
    """The ingestion job table (process-wide; sessions only read the jobs they created)."""
    return _cached_queue(str(settings.state_path))


@st.cache_resource(show_spinner=False, max_entries=4)
def _cached_conversations(path: str, retention_days: float) -> ConversationStore:
    return ConversationStore(Path(path), retention_days)


def shared_conversations(settings: Settings) -> ConversationStore:
    """The chat store (process-wide; a session reads and writes only its own chat id)."""
    return _cached_conversations(str(settings.conversations_path), settings.ui.history_days)


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_catalogue(
    index_dir: str, generation: int, created: float | None, _reader: IndexReader
) -> tuple[tuple[DocumentRecord, ...], dict[str, int]]:
    return tuple(_reader.documents()), _reader.chunk_count_by_document()


def document_catalogue(
    assistant: Assistant, generation: int, created: float | None
) -> tuple[tuple[DocumentRecord, ...], dict[str, int]]:
    """Every document of a published generation and its chunk count, read once per generation.

    Not filtered by access (callers filter), so nothing in this cache belongs to one user. Do not
    mutate the result: it is shared.
    """
    return _cached_catalogue(str(assistant.reader.index_dir), generation, created, assistant.reader)
