"""Hybrid retrieval: dense (embedder) and keyword (BM25) search, access-filtered, then fused (z-score or RRF)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.config import RetrievalSettings
from rag.documents import Passage
from rag.embedding import Embedder
from rag.fusion import reciprocal_rank_fusion, zscore_fusion
from rag.reranking import Reranker
from rag.store import IndexReader


@dataclass(frozen=True)
class Ranking:
    """The ranked chunk ids of each signal for one query, and their fusion (best first)."""

    dense: list[tuple[int, float]]
    keyword: list[tuple[int, float]]
    fused: list[tuple[int, float]]


class HybridSearch:
    """Answers "which passages fit this question" for one caller's access tokens."""

    def __init__(
        self,
        reader: IndexReader,
        embedder: Embedder,
        settings: RetrievalSettings,
        reranker: Reranker | None = None,
    ) -> None:
        self.reader = reader
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker

    def rank(
        self, query: str, vector: np.ndarray, access: Sequence[str], candidates: int | None = None
    ) -> Ranking:
        """Dense and keyword hits (``candidates`` each, default from settings) and their fusion.

        Both searches filter by ``access`` inside the index, so narrow access never starves results. The
        keyword side's weight shrinks with the share of query terms the index knows (a question in another
        language than the documents matches only names), see ``keyword_coverage_power``.
        """
        n = candidates or self.settings.candidates
        settings = self.settings
        dense = self.reader.search_dense(vector, n, access)
        keyword = self.reader.search_keyword(query, n, access)
        keyword_weight = settings.keyword_weight
        if settings.keyword_coverage_power and keyword:
            keyword_weight *= self.reader.keyword_coverage(query) ** settings.keyword_coverage_power
        if settings.fusion == "rrf":
            fused = reciprocal_rank_fusion(
                {"dense": [i for i, _ in dense], "keyword": [i for i, _ in keyword]},
                weights={"dense": settings.dense_weight, "keyword": keyword_weight},
                k=settings.rrf_k,
            )
        else:
            fused = zscore_fusion(
                dense, keyword, dense_weight=settings.dense_weight, keyword_weight=keyword_weight
            )
        return Ranking(dense, keyword, fused)

    def search(self, query: str, access: Sequence[str], k: int | None = None) -> list[Passage]:
        """The best ``k`` passages the caller may see. ``access`` is required: there is no unfiltered path."""
        return self.search_ranked(query, access, k)[0]

    def search_ranked(
        self, query: str, access: Sequence[str], k: int | None = None
    ) -> tuple[list[Passage], Ranking | None]:
        """Like :meth:`search`, with the ranking the passages were taken from (``None`` when nothing was searched)."""
        k = k or self.settings.top_k
        if not query.strip() or not access:
            return [], None
        vector = self.embedder.embed([query], "query")[0]
        ranking = self.rank(query, vector, access)
        return self.passages(query, ranking, access, k, vector), ranking

    def passages(
        self, query: str, ranking: Ranking, access: Sequence[str], k: int, vector: np.ndarray | None = None
    ) -> list[Passage]:
        """Load the best ``k`` of ``ranking``; with a reranker, its first ``rerank_candidates`` re-ordered.

        ``vector`` is the question's embedding (computed here when a reranker needs it and it is missing).
        A passage's ``score`` is the reranker's for the head (the sentence reranker's standardised sum,
        a cross-encoder's own) and the fused score, shifted below the head, for the rest;
        ``scores["fused"]`` is always the fused score.
        """
        n = self.settings.rerank_candidates if self.reranker is not None else 0
        fused = ranking.fused[:k]
        fused_scores = dict(ranking.fused)
        loaded = self.reader.passages([i for i, _ in ranking.fused[: max(k, n)]], access)
        if self.reranker is not None:
            head_ids = {i for i, _ in ranking.fused[:n]}
            head_passages = [p for p in loaded if p.chunk_id in head_ids]
            if vector is None:
                vector = self.embedder.embed([query], "query")[0]
            head = self.reranker.rerank(query, vector, [(p, fused_scores[p.chunk_id]) for p in head_passages])
            # Below the re-scored head the fused order stands; its scores are shifted under the head's
            # lowest so that scores keep falling with rank.
            tail = [(p, fused_scores[p.chunk_id]) for p in loaded if p.chunk_id not in head_ids]
            if head and tail:
                shift = min(s for _, s in head) - tail[0][1] - 1.0
                tail = [(p, s + shift) for p, s in tail]
            ordered = (head + tail)[:k]
            fused = [(p.chunk_id, s) for p, s in ordered]
            loaded = [p for p, _ in ordered]
        dense_scores, keyword_scores = dict(ranking.dense), dict(ranking.keyword)
        by_id = dict(fused)
        return [
            replace(
                p,
                score=by_id[p.chunk_id],
                scores={
                    name: scores[p.chunk_id]
                    for name, scores in (
                        ("dense", dense_scores), ("keyword", keyword_scores), ("fused", fused_scores)
                    )
                    if p.chunk_id in scores
                },
            )
            for p in loaded
        ]


def passage_to_document(passage: Passage) -> Document:
    """A LangChain Document with the passage's citation metadata."""
    return Document(
        id=str(passage.chunk_id),
        page_content=passage.text,
        metadata={
            "chunk_id": passage.chunk_id,
            "doc_id": passage.doc_id,
            "document": passage.document,
            "path": passage.path,
            "title": passage.title,
            "page": passage.page,
            "section": passage.section,
            "start": passage.start,
            "end": passage.end,
            "score": passage.score,
        },
    )


class HauswissenRetriever(BaseRetriever):
    """LangChain retriever over :class:`HybridSearch`, bound to one caller's access tokens."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    search: HybridSearch
    access: tuple[str, ...]
    k: int = 5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: object
    ) -> list[Document]:
        k = kwargs.get("k", self.k)
        return [passage_to_document(p) for p in self.search.search(query, self.access, int(str(k)))]
