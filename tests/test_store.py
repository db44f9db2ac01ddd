"""The index: round trip, access filtering during search, atomic generations, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rag.documents import ChunkDraft, DocumentRecord
from rag.embedding import EmbedderIdentity, HashingEmbedder
from rag.errors import IndexCorruptError, IndexLockedError, IndexMismatchError
from rag.store import CURRENT, IndexReader, IndexWriter, read_current
from tests.conftest import SAMPLE_DOCS, build_index


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(64)


@pytest.fixture
def index_dir(tmp_path: Path, embedder: HashingEmbedder) -> Path:
    d = tmp_path / "index"
    build_index(d, embedder)
    return d


def test_round_trip_keeps_text_and_citation_metadata(index_dir: Path, embedder: HashingEmbedder) -> None:
    reader = IndexReader(index_dir, embedder.identity)
    assert reader.stats().documents == 3
    assert reader.stats().chunks == 4
    hits = reader.search_keyword("Werktage Urlaub", 5, ["public"])
    passages = reader.passages([i for i, _ in hits], ["public"])
    assert passages[0].text == "Der Urlaub beträgt jährlich mindestens 24 Werktage."
    assert passages[0].section == "§ 3 Dauer des Urlaubs"
    assert passages[0].document == "burlg.md"
    pdf = reader.passages([i for i, _ in reader.search_keyword("Insolvenzgericht", 5, ["public"])], ["public"])
    assert pdf[0].page == 3


@pytest.mark.parametrize("k", [1, 2, 3, 10, 50])
def test_access_is_enforced_during_search_without_starving(
    index_dir: Path, embedder: HashingEmbedder, k: int
) -> None:
    reader = IndexReader(index_dir, embedder.identity)
    # The HR chunk is the best dense match for this query, yet a public caller still gets k results.
    query = embedder.embed(["Geheim: Das Gehalt der Geschäftsführung beträgt 250000 Euro."], "query")[0]
    public = reader.search_dense(query, k, ["public"])
    assert len(public) == min(k, 3)
    texts = [p.text for p in reader.passages([i for i, _ in public], ["public"])]
    assert not any("KANARIENVOGEL" in t for t in texts)
    assert reader.search_keyword("Gehalt Geschäftsführung", k, ["public"]) == []
    hr = reader.passages([i for i, _ in reader.search_dense(query, k, ["group:hr"])], ["group:hr"])
    assert [p.title for p in hr] == ["Gehälter"]
    assert reader.search_dense(query, k, []) == []


def test_passages_drop_chunks_the_caller_may_not_see(index_dir: Path, embedder: HashingEmbedder) -> None:
    reader = IndexReader(index_dir, embedder.identity)
    assert reader.passages([1, 2, 3, 4], ["public"]) and all(
        "KANARIENVOGEL" not in p.text for p in reader.passages([1, 2, 3, 4], ["public"])
    )


def test_a_crash_before_the_pointer_moves_leaves_the_old_generation(
    index_dir: Path, embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = read_current(index_dir)
    writer = IndexWriter(index_dir, embedder.identity)
    writer.delete_document("doc0")

    def crash(*_: object) -> None:
        raise OSError("simulated crash before CURRENT is replaced")

    monkeypatch.setattr("rag.store.write_text_atomic", crash)
    with pytest.raises(OSError):
        writer.commit()
    writer.close()
    monkeypatch.undo()
    assert read_current(index_dir) == before
    reader = IndexReader(index_dir, embedder.identity)
    assert reader.stats().documents == 3
    # The next writer cleans up the orphaned generation folder.
    with IndexWriter(index_dir, embedder.identity) as w2:
        assert w2.recover() == []
    assert sorted(p.name for p in index_dir.iterdir() if p.name.startswith(("gen-", "staging-"))) == [before]


def test_uncommitted_changes_are_invisible_and_readers_switch_after_commit(
    index_dir: Path, embedder: HashingEmbedder
) -> None:
    reader = IndexReader(index_dir, embedder.identity)
    with IndexWriter(index_dir, embedder.identity) as writer:
        writer.delete_document("doc0")
        assert reader.refresh() is False
        assert reader.stats().documents == 3
        generation = writer.commit()
    assert reader.refresh() is True
    assert reader.generation == generation
    assert reader.stats().documents == 2


def test_upsert_replaces_a_documents_chunks(index_dir: Path, embedder: HashingEmbedder) -> None:
    path, title, access, _ = SAMPLE_DOCS[0]
    new = [ChunkDraft("Neu: 30 Werktage Urlaub.", 0, 24)]
    with IndexWriter(index_dir, embedder.identity) as writer:
        writer.upsert_document(
            DocumentRecord("doc0", path, title, "sha-new", "md", access), new, embedder.embed(["x"], "passage")
        )
        writer.commit()
    reader = IndexReader(index_dir, embedder.identity)
    assert reader.stats().chunks == 3
    texts = [p.text for p in reader.passages([i for i, _ in reader.search_keyword("Werktage", 5, ["public"])],
                                             ["public"])]
    assert texts == ["Neu: 30 Werktage Urlaub."]


def test_second_writer_is_refused_with_index_locked(index_dir: Path, embedder: HashingEmbedder) -> None:
    with IndexWriter(index_dir, embedder.identity), pytest.raises(IndexLockedError, match="index locked"):
        IndexWriter(index_dir, embedder.identity)


def test_index_from_another_embedder_refuses_to_open(index_dir: Path) -> None:
    other = EmbedderIdentity("other-model", 64, "abc")
    with pytest.raises(IndexMismatchError, match="built with embedder hashing"):
        IndexReader(index_dir, other)
    with pytest.raises(IndexMismatchError):
        IndexWriter(index_dir, other).documents()


@pytest.mark.parametrize("content", ["", "garbage", "../../etc", "gen-999999"])
def test_bad_current_pointer_is_reported_as_corrupt(
    index_dir: Path, embedder: HashingEmbedder, content: str
) -> None:
    (index_dir / CURRENT).write_text(content)
    with pytest.raises(IndexCorruptError):
        IndexReader(index_dir, embedder.identity)


def test_bit_flipped_vectors_fail_the_checksum(index_dir: Path, embedder: HashingEmbedder) -> None:
    gen = index_dir / (read_current(index_dir) or "")
    data = bytearray((gen / "vectors.faiss").read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(gen / "vectors.faiss", 0o644)
    (gen / "vectors.faiss").write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="checksum"):
        IndexReader(index_dir, embedder.identity)


def test_non_finite_vectors_never_enter_the_index(tmp_path: Path, embedder: HashingEmbedder) -> None:
    with IndexWriter(tmp_path / "i", embedder.identity) as writer:
        bad = np.full((1, 64), np.nan, dtype=np.float32)
        with pytest.raises(ValueError, match="non-finite"):
            writer.upsert_document(DocumentRecord("d", "/d", "d", "s", "md"), [ChunkDraft("x", 0, 1)], bad)


def test_empty_index_answers_with_nothing(tmp_path: Path, embedder: HashingEmbedder) -> None:
    reader = IndexReader(tmp_path / "none", embedder.identity)
    assert reader.stats().documents == 0
    assert reader.search_dense(np.ones(64, dtype=np.float32), 5, ["public"]) == []
    assert reader.search_keyword("Urlaub", 5, ["public"]) == []


def test_no_pickle_files_are_written(index_dir: Path) -> None:
    names = {p.suffix for p in index_dir.rglob("*") if p.is_file()}
    assert names <= {"", ".faiss", ".sqlite", ".json"}


def test_readers_keep_answering_while_a_writer_publishes_generations(
    index_dir: Path, embedder: HashingEmbedder
) -> None:
    import threading

    reader = IndexReader(index_dir, embedder.identity)
    query = embedder.embed(["Urlaub Werktage"], "query")[0]
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            try:
                reader.refresh()
                hits = reader.search_dense(query, 3, ["public"])
                reader.passages([i for i, _ in hits], ["public"])
                reader.search_keyword("Urlaub", 3, ["public"])
            except BaseException as e:
                errors.append(e)
                return

    threads = [threading.Thread(target=search_loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(15):
            with IndexWriter(index_dir, embedder.identity) as writer:
                text = f"Notiz {i}: Urlaub wird schriftlich beantragt."
                writer.upsert_document(
                    DocumentRecord(f"n{i}", f"/docs/n{i}.md", "Notiz", f"s{i}", "md"),
                    [ChunkDraft(text, 0, len(text))], embedder.embed([text], "passage"),
                )
                writer.commit()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    reader.refresh()
    assert reader.stats().documents == 3 + 15


def _term_counts(index_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """term_chunks of the published generation, and the same counted from the FTS index itself."""
    import sqlite3

    name = read_current(index_dir)
    db = sqlite3.connect(index_dir / str(name) / "meta.sqlite")
    try:
        kept = dict(db.execute("SELECT term, chunks FROM term_chunks").fetchall())
        db.execute("CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, chunks_fts, 'row')")
        counted = dict(db.execute("SELECT term, doc FROM temp.v").fetchall())
    finally:
        db.close()
    return kept, counted


def test_term_counts_follow_added_replaced_and_deleted_chunks(index_dir: Path, embedder: HashingEmbedder) -> None:
    kept, counted = _term_counts(index_dir)
    assert kept == counted and kept
    with IndexWriter(index_dir, embedder.identity) as writer:
        doc = next(d for d in writer.documents() if d.title == "Gehälter")
        writer.delete_document(doc.doc_id)
        record = DocumentRecord("neu", "/docs/neu.md", "Neu", "sha", "md")
        chunks = [ChunkDraft("Urlaub und Urlaubsgeld.", 0, 23), ChunkDraft("Urlaub im Sommer.", 24, 41)]
        writer.upsert_document(record, chunks, embedder.embed([c.text for c in chunks], "passage"))
        writer.commit()
    kept, counted = _term_counts(index_dir)
    assert kept == counted
    assert "gehalt" not in kept


def test_a_generation_without_term_counts_gets_them_on_the_next_write(
    index_dir: Path, embedder: HashingEmbedder
) -> None:
    import sqlite3

    gen = index_dir / str(read_current(index_dir)) / "meta.sqlite"
    db = sqlite3.connect(gen)
    db.execute("DROP TABLE term_chunks")
    db.commit()
    db.close()
    reader = IndexReader(index_dir, embedder.identity, verify=False)
    # An older generation still answers coverage and keyword queries (from the FTS vocabulary).
    assert reader.keyword_coverage("Urlaub Werktage") == 1.0
    assert reader.search_keyword("Urlaub", 5, ["public"])
    with IndexWriter(index_dir, embedder.identity) as writer:
        record = DocumentRecord("neu", "/docs/neu.md", "Neu", "sha", "md")
        writer.upsert_document(record, [ChunkDraft("Sommer", 0, 6)], embedder.embed(["Sommer"], "passage"))
        writer.commit()
    kept, counted = _term_counts(index_dir)
    assert kept == counted


def test_keyword_coverage_is_low_for_a_question_in_another_language(
    index_dir: Path, embedder: HashingEmbedder
) -> None:
    reader = IndexReader(index_dir, embedder.identity)
    assert reader.keyword_coverage("Werktage Urlaub?") == 1.0
    german = reader.keyword_coverage("Wie viele Werktage Urlaub bekommt man?")
    english = reader.keyword_coverage("How many vacation days does the insolvency court grant?")
    assert german > 0.3 > english
    assert reader.keyword_coverage("") == 0.0


def test_a_stored_vector_is_found_by_its_chunk_text_also_in_an_index_from_before_text_hashes(
    index_dir: Path, embedder: HashingEmbedder
) -> None:
    import sqlite3

    db = sqlite3.connect(index_dir / str(read_current(index_dir)) / "meta.sqlite")
    (text,) = db.execute("SELECT text FROM chunks ORDER BY chunk_id LIMIT 1").fetchone()
    db.execute("DROP INDEX chunks_text_hash")
    db.execute("ALTER TABLE chunks DROP COLUMN text_hash")
    db.commit()
    db.close()
    with IndexWriter(index_dir, embedder.identity) as writer:
        found = writer.vectors_of([text, "Ein Satz, der nirgends steht."])
        assert list(found) == [text]
        assert np.allclose(found[text], embedder.embed([text], "passage")[0])
