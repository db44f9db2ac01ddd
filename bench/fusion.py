"""Tune fusion on the development sets: which weights and which fusion rule give the best hybrid.

    .venv/bin/python -m bench.fusion [--cache DIR] [--sets xquad-de xquad-en cranfield cisi en@de]

Each set's index is built once with the real pipeline (reused from ``--cache``); dense and keyword hits
are taken once per query (100 candidates each) and re-fused offline for every grid point, so the grid is
cheap. The table lists each grid point's nDCG@10 per set minus the better of the two baselines measured
in the same run (the default embedder alone, and bm25s), sorted by the worst of those margins over the
same-language sets (``en@de``, English questions over German paragraphs, has its own absolute target).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

from rag.offline import enforce_offline_env

enforce_offline_env()

from hauswissen.evaluation import ACCESS, baseline_texts, build_index, corpus_language  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import create_embedder  # noqa: E402
from rag.evaluation.baselines import Bm25Baseline  # noqa: E402
from rag.evaluation.datasets import EvalSet, load_eval_set, load_queries  # noqa: E402
from rag.evaluation.metrics import mean_scores, retrieval_scores  # noqa: E402
from rag.evaluation.retrieval import documents_in_rank_order  # noqa: E402
from rag.fusion import reciprocal_rank_fusion, zscore_fusion  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"
Hits = list[tuple[int, float]]
# (dense hits, keyword hits, share of the query's terms the index knows) -> fused chunk ids
Fuser = Callable[[Hits, Hits, float], list[int]]


def rrf(dense_weight: float, k: int, power: float = 0.0) -> Fuser:
    def fuse(dense: Hits, keyword: Hits, coverage: float) -> list[int]:
        ranked = reciprocal_rank_fusion(
            {"dense": [i for i, _ in dense], "keyword": [i for i, _ in keyword]},
            weights={"dense": dense_weight, "keyword": coverage**power},
            k=k,
        )
        return [i for i, _ in ranked]

    return fuse


def zscore(dense_weight: float, power: float) -> Fuser:
    """The product's rule: z-scored lists, keyword weight scaled by coverage ** power."""

    def fuse(dense: Hits, keyword: Hits, coverage: float) -> list[int]:
        fused = zscore_fusion(
            dense, keyword, dense_weight=dense_weight, keyword_weight=(1 - dense_weight) * coverage**power
        )
        return [i for i, _ in fused]

    return fuse


def convex(alpha: float) -> Fuser:
    """alpha * min-max(dense) + (1 - alpha) * min-max(keyword); a hit missing from a list scores 0 there."""

    def norm(hits: Hits) -> dict[int, float]:
        if not hits:
            return {}
        scores = [s for _, s in hits]
        lo, hi = min(scores), max(scores)
        return {i: (s - lo) / (hi - lo) if hi > lo else 1.0 for i, s in hits}

    def fuse(dense: Hits, keyword: Hits, coverage: float) -> list[int]:
        d, k = norm(dense), norm(keyword)
        ids = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in keyword]))
        return sorted(ids, key=lambda i: -(alpha * d.get(i, 0.0) + (1 - alpha) * k.get(i, 0.0)))

    return fuse


def _set(name: str) -> EvalSet:
    if "@" in name:
        queries, corpus = name.split("@")
        return load_eval_set(SHARED / f"xquad-{corpus}").with_queries_from(load_queries(SHARED / f"xquad-{queries}"))
    return load_eval_set(SHARED / name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="/tmp/hauswissen-eval-cache")
    parser.add_argument("--sets", nargs="+", default=["xquad-de", "xquad-en", "cranfield", "cisi", "en@de"])
    args = parser.parse_args(argv)
    settings = load_settings(None)
    embedder = create_embedder(settings.embedder)
    grid: dict[str, Fuser] = {}
    for w, k in itertools.product((1.0, 2.0, 3.0), (5, 20, 60)):
        grid[f"rrf w={w} k={k}"] = rrf(w, k)
    grid["rrf w=1.0 k=60 p=4"] = rrf(1.0, 60, 4.0)
    for a in (0.5, 0.6, 0.7, 0.8):
        grid[f"minmax a={a}"] = convex(a)
    for a, p in itertools.product((0.4, 0.5, 0.6), (0.0, 2.0, 4.0)):
        grid[f"zscore a={a} p={p:g}"] = zscore(a, p)
    table: dict[str, dict[str, float]] = {name: {} for name in grid}
    baselines: dict[str, float] = {}
    for set_name in args.sets:
        eval_set = _set(set_name)
        index = build_index(eval_set, settings, embedder, Path(args.cache))
        qids = eval_set.judged_queries
        texts = [eval_set.queries[q] for q in qids]
        vectors = embedder.embed(texts, "query")
        hits = [
            (
                index.reader.search_dense(v, 100, ACCESS),
                index.reader.search_keyword(t, 100, ACCESS),
                index.reader.keyword_coverage(t),
            )
            for t, v in zip(texts, vectors, strict=True)
        ]
        qrels = {q: eval_set.qrels[q] for q in qids}

        def ndcg(run: dict[str, list[str]], qrels: dict[str, dict[str, int]] = qrels) -> float:
            return mean_scores(retrieval_scores(qrels, run))["nDCG@10"]

        def docs(ids: list[int], index: object = index) -> list[str]:
            return documents_in_rank_order(ids, index.chunk_document)[:100]  # type: ignore[attr-defined]

        dense = ndcg({q: docs([i for i, _ in d]) for q, (d, _, _) in zip(qids, hits, strict=True)})
        texts_by_doc = baseline_texts(eval_set, index)
        bm25 = Bm25Baseline(texts_by_doc, corpus_language(list(texts_by_doc.values())))
        bm25_ndcg = ndcg({q: bm25.rank(t) for q, t in zip(qids, texts, strict=True)})
        keyword = ndcg({q: docs([i for i, _ in kw]) for q, (_, kw, _) in zip(qids, hits, strict=True)})
        baselines[set_name] = max(dense, bm25_ndcg)
        print(f"{set_name}: dense {dense:.4f}  bm25s {bm25_ndcg:.4f}  keyword {keyword:.4f}", flush=True)
        for name, fuse in grid.items():
            table[name][set_name] = ndcg(
                {q: docs(fuse(d, kw, c)) for q, (d, kw, c) in zip(qids, hits, strict=True)}
            )
        index.reader.close()

    sets = args.sets
    header = f"{'fusion':<20}" + "".join(f"{s:>12}" for s in sets) + f"{'worst':>9}{'mean':>9}"
    print("\nnDCG@10 minus the better baseline of each set\n" + header + "\n" + "-" * len(header))
    rows = []
    for name, scores in table.items():
        margins = [scores[s] - baselines[s] for s in sets]
        same_language = [m for s, m in zip(sets, margins, strict=True) if "@" not in s] or margins
        rows.append((min(same_language), sum(scores.values()) / len(sets), name, margins))
    for worst, mean, name, margins in sorted(rows, reverse=True):
        print(f"{name:<20}" + "".join(f"{m:>+12.4f}" for m in margins) + f"{worst:>+9.4f}{mean:>9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
