"""Shared fixtures: settings in a tmp data_dir, a small index built with the hashing embedder."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.offline import enforce_offline_env

enforce_offline_env()

from rag.config import Settings, load_settings  # noqa: E402
from rag.documents import ChunkDraft, DocumentRecord  # noqa: E402
from rag.embedding import HashingEmbedder  # noqa: E402
from rag.store import IndexWriter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
EXAMPLES = REPO / "examples" / "docs"

SAMPLE_DOCS: list[tuple[str, str, tuple[str, ...], list[ChunkDraft]]] = [
    (
        "/docs/burlg.md",
        "Bundesurlaubsgesetz",
        ("public",),
        [
            ChunkDraft("Jeder Arbeitnehmer hat in jedem Kalenderjahr Anspruch auf bezahlten Erholungsurlaub.",
                       0, 86, section="§ 1 Urlaubsanspruch"),
            ChunkDraft("Der Urlaub beträgt jährlich mindestens 24 Werktage.", 87, 139,
                       section="§ 3 Dauer des Urlaubs"),
        ],
    ),
    (
        "/docs/hinweisblatt.pdf",
        "Hinweisblatt Verbraucherinsolvenz",
        ("public",),
        [ChunkDraft("Das Insolvenzgericht prüft den Antrag auf Restschuldbefreiung.", 0, 63, page=3)],
    ),
    (
        "/docs/hr/gehaelter.md",
        "Gehälter",
        ("group:hr",),
        [ChunkDraft("Geheim: Das Gehalt der Geschäftsführung beträgt 250000 Euro. KANARIENVOGEL-HR", 0, 80)],
    ),
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_env(root: Path, **overrides: str) -> dict[str, str]:
    """The environment of settings in ``root`` (data/, sources/) with the hashing embedder and the
    scripted chat model; ``section__key="value"`` overrides more (for subprocesses too)."""
    env = {
        "HAUSWISSEN__PATHS__DATA_DIR": str(root / "data"),
        "HAUSWISSEN__PATHS__SOURCES": str([str(root / "sources")]),
        "HAUSWISSEN__EMBEDDER__BACKEND": "hashing",
        "HAUSWISSEN__EMBEDDER__DIMENSION": "64",
        "HAUSWISSEN__LLM__BACKEND": "scripted",
    }
    env.update({f"HAUSWISSEN__{k.upper()}": v for k, v in overrides.items()})
    return env


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        return load_settings(None, env=fake_env(tmp_path, **env))

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


def build_index(index_dir: Path, embedder: HashingEmbedder) -> None:
    with IndexWriter(index_dir, embedder.identity) as writer:
        for i, (path, title, access, chunks) in enumerate(SAMPLE_DOCS):
            record = DocumentRecord(f"doc{i}", path, title, f"sha{i}", Path(path).suffix[1:], access=access)
            writer.upsert_document(record, chunks, embedder.embed([c.text for c in chunks], "passage"))
        writer.commit()


@pytest.fixture
def indexed_settings(settings: Settings) -> Settings:
    build_index(settings.index_dir, HashingEmbedder(settings.embedder.dimension))
    return settings


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HAUSWISSEN__") or key == "HAUSWISSEN_CONFIG":
            monkeypatch.delenv(key, raising=False)
