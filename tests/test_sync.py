"""Folder sync: renamed and moved files are recognised by their content and never re-embedded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embedding import HashingEmbedder, TextKind
from rag.store import IndexReader
from tests.conftest import EXAMPLES


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting the passages it embeds."""

    def __init__(self, dimension: int) -> None:
        super().__init__(dimension)
        self.passages = 0

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        if kind == "passage":
            self.passages += len(texts)
        return super()._embed(texts, kind)


@pytest.fixture
def embedder(settings: Settings) -> CountingEmbedder:
    return CountingEmbedder(settings.embedder.dimension)


@pytest.fixture
def share(settings: Settings) -> Path:
    folder = settings.paths.sources[0]
    (folder / "personal").mkdir(parents=True)
    shutil.copy(EXAMPLES / "burlg.md", folder / "burlg.md")
    (folder / "notiz.txt").write_text("Die Kantine öffnet um elf Uhr.\n", encoding="utf-8")
    return folder


def _documents(settings: Settings, embedder: HashingEmbedder) -> dict[str, tuple[str, list[int]]]:
    """File name -> (title, chunk ids) of every indexed document."""
    reader = IndexReader(settings.index_dir, embedder.identity)
    try:
        return {
            Path(d.path).name: (d.title, reader.chunk_ids_of([d.doc_id])) for d in reader.documents()
        }
    finally:
        reader.close()


def _keyword_hits(settings: Settings, embedder: HashingEmbedder, query: str) -> set[str]:
    reader = IndexReader(settings.index_dir, embedder.identity)
    try:
        hits = [i for i, _ in reader.search_keyword(query, 10, ["public"])]
        return {Path(p.path).name for p in reader.passages(hits, ["public"])}
    finally:
        reader.close()


def test_a_renamed_file_keeps_its_chunks_and_is_not_embedded_again(
    settings: Settings, embedder: CountingEmbedder, share: Path
) -> None:
    ingestor = Ingestor(settings, embedder)
    ingestor.ingest([share])
    before = _documents(settings, embedder)
    embedded = embedder.passages

    (share / "burlg.md").rename(share / "personal" / "bundesurlaubsgesetz.md")
    report = ingestor.ingest([share])

    assert embedder.passages == embedded
    assert report.moved == [(str(share / "burlg.md"), str(share / "personal" / "bundesurlaubsgesetz.md"))]
    assert report.deleted == [] and report.added == []
    after = _documents(settings, embedder)
    assert set(after) == {"bundesurlaubsgesetz.md", "notiz.txt"}
    assert after["bundesurlaubsgesetz.md"] == before["burlg.md"]  # same title, same chunk ids
    assert _keyword_hits(settings, embedder, "Urlaub") == {"bundesurlaubsgesetz.md"}


def test_a_title_taken_from_the_file_name_follows_the_rename(
    settings: Settings, embedder: CountingEmbedder, share: Path
) -> None:
    ingestor = Ingestor(settings, embedder)
    ingestor.ingest([share])

    (share / "notiz.txt").rename(share / "speiseplan.txt")
    ingestor.ingest([share])

    assert _documents(settings, embedder)["speiseplan.txt"][0] == "speiseplan"
    assert _keyword_hits(settings, embedder, "speiseplan") == {"speiseplan.txt"}
    assert _keyword_hits(settings, embedder, "notiz") == set()


def test_a_file_renamed_and_changed_is_ingested_anew(
    settings: Settings, embedder: CountingEmbedder, share: Path
) -> None:
    ingestor = Ingestor(settings, embedder)
    ingestor.ingest([share])
    (share / "notiz.txt").unlink()
    (share / "kantine.txt").write_text("Die Kantine öffnet um zwölf Uhr.\n", encoding="utf-8")

    report = ingestor.ingest([share])

    assert report.moved == []
    assert [Path(p).name for p in report.deleted] == ["notiz.txt"]
    assert [Path(p).name for p in report.added] == ["kantine.txt"]


def test_a_copy_is_a_new_document_and_the_original_stays(
    settings: Settings, embedder: CountingEmbedder, share: Path
) -> None:
    ingestor = Ingestor(settings, embedder)
    ingestor.ingest([share])

    shutil.copy(share / "notiz.txt", share / "personal" / "notiz-kopie.txt")
    report = ingestor.ingest([share])

    assert report.moved == [] and [Path(p).name for p in report.added] == ["notiz-kopie.txt"]
    assert {"notiz.txt", "notiz-kopie.txt"} <= set(_documents(settings, embedder))


def test_an_unchanged_folder_is_neither_parsed_nor_embedded_again(
    settings: Settings, embedder: CountingEmbedder, share: Path
) -> None:
    ingestor = Ingestor(settings, embedder)
    ingestor.ingest([share])
    embedded = embedder.passages

    report = ingestor.ingest([share])

    assert embedder.passages == embedded
    assert report.documents == 0 and len(report.unchanged) == 2


def test_every_file_has_a_state_and_a_failure_is_not_retried_until_the_file_changes(
    settings: Settings, embedder: CountingEmbedder, share: Path
) -> None:
    broken = share / "kaputt.pdf"
    broken.write_bytes(b"%PDF-1.7\n not really a pdf")
    ingestor = Ingestor(settings, embedder)

    first = ingestor.ingest([share])
    states = {Path(s.path).name: s for s in ingestor.ledger.all()}
    assert {n: s.state for n, s in states.items()} == {
        "kaputt.pdf": "failed", "burlg.md": "committed", "notiz.txt": "committed",
    }
    assert states["kaputt.pdf"].reason == dict(first.failed)[str(broken)]

    second = ingestor.ingest([share])
    assert second.failed == [] and [Path(p).name for p, _ in second.still_failed] == ["kaputt.pdf"]

    broken.write_text("# Repariert\n\nJetzt eine Textdatei.", encoding="utf-8")
    broken.rename(share / "repariert.md")
    third = ingestor.ingest([share])
    assert [Path(p).name for p in third.added] == ["repariert.md"]
    assert {Path(s.path).name for s in ingestor.ledger.all()} == {"repariert.md", "burlg.md", "notiz.txt"}


def test_a_changed_failed_file_is_tried_again(settings: Settings, embedder: CountingEmbedder, share: Path) -> None:
    broken = share / "liste.csv"
    broken.write_bytes(b"")
    ingestor = Ingestor(settings, embedder)
    assert [Path(p).name for p, _ in ingestor.ingest([share]).failed] == ["liste.csv"]

    broken.write_text("Name;Tage\nAnna;30\n", encoding="utf-8")
    report = ingestor.ingest([share])

    assert [Path(p).name for p in report.added] == ["liste.csv"]
    assert {s.state for s in ingestor.ledger.all()} == {"committed"}
