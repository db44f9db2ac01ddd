"""Score retrieval on an index built from an evaluation set's corpus.

Chunks are what the index ranks; documents are what judgements name. A document's rank is the rank of its
best chunk (the first time it appears), so a run is a ranked list of distinct document ids. Each system
is run over every judged query on the same index, so the numbers in one table are comparable:

- ``hybrid``: the product's search (:class:`~rag.retrieval.HybridSearch`, reranker included when set);
- ``dense``: the embedder alone (the same index, vectors only);
- ``keyword``: the index's own BM25 side alone;
- ``bm25s``: the external baseline (:mod:`rag.evaluation.baselines`), when given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rag.evaluation.datasets import EvalSet
from rag.evaluation.metrics import mean_scores, retrieval_scores
from rag.retrieval import HybridSearch

# Judged depth: Recall@100 needs 100 distinct documents, and a document may own several chunks.
DEPTH = 100

Ranker = Callable[[str], list[str]]


@dataclass
class SystemResult:
    """One system's scores on one set."""

    system: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    queries: int
    ms_per_query: float
    run: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "system": self.system,
            **{k: round(v, 4) for k, v in self.metrics.items()},
            "queries": self.queries,
            "ms_per_query": round(self.ms_per_query, 2),
        }


def documents_in_rank_order(chunk_ids: Sequence[int], chunk_document: Mapping[int, str]) -> list[str]:
    """Distinct document ids in the order their first chunk appears."""
    seen: dict[str, None] = {}
    for chunk_id in chunk_ids:
        doc = chunk_document.get(chunk_id)
        if doc is not None:
            seen.setdefault(doc, None)
    return list(seen)


def evaluate_retrieval(
    eval_set: EvalSet,
    search: HybridSearch,
    chunk_document: Mapping[int, str],
    access: Sequence[str],
    *,
    baselines: Mapping[str, Ranker] | None = None,
    depth: int = DEPTH,
) -> list[SystemResult]:
    """Run every judged query through ``hybrid``, ``dense``, ``keyword`` and the ``baselines``.

    The fused list is built from ``max(candidates, depth)`` hits per signal so that ``depth`` documents
    exist to judge; the first ten, which nDCG@10 and MRR@10 read, are what a user with the configured
    ``candidates`` would get up to hits that sit below rank ``candidates`` in both signals.
    """
    qids = eval_set.judged_queries
    texts = [eval_set.queries[q] for q in qids]
    candidates = max(search.settings.candidates, depth)
    runs: dict[str, dict[str, list[str]]] = {"hybrid": {}, "dense": {}, "keyword": {}}
    seconds: dict[str, float] = dict.fromkeys(runs, 0.0)

    started = time.perf_counter()
    vectors = search.embedder.embed(texts, "query")
    embed_s = time.perf_counter() - started
    reader = search.reader
    for qid, text, vector in zip(qids, texts, vectors, strict=True):
        t0 = time.perf_counter()
        ranking = search.rank(text, vector, access, candidates=candidates)
        if search.reranker is not None:
            passages = search.passages(text, ranking, access, 2 * candidates, vector)
            fused_ids = [p.chunk_id for p in passages]
        else:
            fused_ids = [i for i, _ in ranking.fused]
        t1 = time.perf_counter()
        dense = reader.search_dense(vector, candidates, access)
        t2 = time.perf_counter()
        keyword = reader.search_keyword(text, candidates, access)
        t3 = time.perf_counter()
        seconds["hybrid"] += t1 - t0
        seconds["dense"] += t2 - t1
        seconds["keyword"] += t3 - t2
        runs["hybrid"][qid] = documents_in_rank_order(fused_ids, chunk_document)[:depth]
        runs["dense"][qid] = documents_in_rank_order([i for i, _ in dense], chunk_document)[:depth]
        runs["keyword"][qid] = documents_in_rank_order([i for i, _ in keyword], chunk_document)[:depth]
    # Embedding the query is part of the hybrid and the dense system's cost (batched here, so averaged).
    seconds["hybrid"] += embed_s
    seconds["dense"] += embed_s
    for name, ranker in (baselines or {}).items():
        t0 = time.perf_counter()
        runs[name] = {qid: ranker(text)[:depth] for qid, text in zip(qids, texts, strict=True)}
        seconds[name] = time.perf_counter() - t0

    results = []
    for name, run in runs.items():
        per_query = retrieval_scores({q: eval_set.qrels[q] for q in qids}, run)
        results.append(
            SystemResult(
                system=name,
                metrics=mean_scores(per_query),
                per_query=per_query,
                queries=len(qids),
                ms_per_query=1000 * seconds.get(name, 0.0) / max(1, len(qids)),
                run=run,
            )
        )
    return results
