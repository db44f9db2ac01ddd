"""Folder sync: renamed and moved files are recognised by their content and never re-embedded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embedding import HashingEmbedder, TextKind
from rag.integrity import verify_index
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


def _chunk_texts_and_vectors(settings: Settings, embedder: HashingEmbedder) -> dict[str, np.ndarray]:
    import faiss

    from rag.store import VECTORS, read_current

    reader = IndexReader(settings.index_dir, embedder.identity)
    try:
        ids = reader.chunk_ids_of([d.doc_id for d in reader.documents()])
        texts = {p.chunk_id: p.text for p in reader.passages(ids, ["public"])}
    finally:
        reader.close()
    vectors = faiss.read_index(str(settings.index_dir / str(read_current(settings.index_dir)) / VECTORS))
    return {text: vectors.reconstruct(chunk_id) for chunk_id, text in texts.items()}


def test_an_edited_file_embeds_only_the_chunks_whose_text_changed(
    settings: Settings, embedder: CountingEmbedder, share: Path
) -> None:
    ingestor = Ingestor(settings, embedder)
    ingestor.ingest([share])
    before = _chunk_texts_and_vectors(settings, embedder)
    embedded = embedder.passages
    law = share / "burlg.md"
    law.write_text(law.read_text(encoding="utf-8").replace("mindestens 24 Werktage", "mindestens 26 Werktage"))

    report = ingestor.ingest([share])

    after = _chunk_texts_and_vectors(settings, embedder)
    changed = set(after) - set(before)
    assert [Path(p).name for p in report.updated] == ["burlg.md"]
    assert 1 <= len(changed) < len(after) / 4, "one paragraph changed: its section's chunks, not the law"
    assert embedder.passages - embedded == len(changed)
    assert report.reused == report.chunks - len(changed)
    for text in set(after) & set(before):  # the kept vectors are the stored ones, exactly
        assert np.array_equal(after[text], before[text])
    assert _keyword_hits(settings, embedder, "26 Werktage") == {"burlg.md"}
    assert verify_index(settings.index_dir, embedder.identity).ok


def test_a_copied_file_takes_the_vectors_of_its_original(
    settings: Settings, embedder: CountingEmbedder, share: Path
) -> None:
    ingestor = Ingestor(settings, embedder)
    ingestor.ingest([share])
    embedded = embedder.passages

    shutil.copy(share / "burlg.md", share / "personal" / "urlaub-kopie.md")
    report = ingestor.ingest([share])

    assert embedder.passages == embedded
    assert report.chunks > 0 and report.reused == report.chunks
    assert {"burlg.md", "urlaub-kopie.md"} <= set(_documents(settings, embedder))


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
