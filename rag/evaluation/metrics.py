"""Retrieval metrics with trec_eval semantics, and SQuAD-style answer metrics (plus German articles).

Retrieval numbers come from ``pytrec_eval`` (the trec_eval C code), so they are comparable with BEIR and
MTEB: nDCG@10 uses graded relevance with the standard log2 discount, Recall@k counts judged-relevant
documents (relevance > 0), and MRR@10 is the reciprocal rank of the first relevant document within the
first ten (0 when there is none).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import pytrec_eval

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]

RETRIEVAL_METRICS = ("nDCG@10", "Recall@10", "Recall@100", "MRR@10")
_TREC_MEASURES = {"ndcg_cut.10", "recall.10", "recall.100"}


def _scored(ranking: Sequence[str]) -> dict[str, float]:
    # trec_eval sorts by score (ties by document id), so scores must encode the rank exactly.
    return {doc: float(len(ranking) - i) for i, doc in enumerate(ranking)}


def retrieval_scores(qrels: Qrels, run: Run) -> dict[str, dict[str, float]]:
    """Per-query ``nDCG@10``, ``Recall@10``, ``Recall@100`` and ``MRR@10`` for queries that have judgements.

    ``run`` maps a query id to its ranked document ids (best first). A judged query missing from ``run``
    scores zero, as in trec_eval with ``-c``.
    """
    judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items() if docs}
    trec_run = {q: _scored(run.get(q, ())) or {"__none__": 0.0} for q in judged}
    top10 = {q: _scored(list(run.get(q, ()))[:10]) or {"__none__": 0.0} for q in judged}
    main = pytrec_eval.RelevanceEvaluator(judged, _TREC_MEASURES).evaluate(trec_run)
    rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)
    return {
        q: {
            "nDCG@10": main[q]["ndcg_cut_10"],
            "Recall@10": main[q]["recall_10"],
            "Recall@100": main[q]["recall_100"],
            "MRR@10": rr[q]["recip_rank"],
        }
        for q in judged
    }


def mean_scores(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over queries (an empty dict for no queries)."""
    names: list[str] = []
    for scores in per_query.values():
        names.extend(n for n in scores if n not in names)
    n = len(per_query)
    return {name: (sum(s.get(name, 0.0) for s in per_query.values()) / n if n else 0.0) for name in names}


_ARTICLES = re.compile(
    r"\b(a|an|the|der|die|das|den|dem|des|ein|eine|einen|einem|einer|eines)\b", re.IGNORECASE
)
_PUNCTUATION = frozenset(string.punctuation) | frozenset("„“”‚‘’«»–—…")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation (lower case, no punctuation, no articles, single spaces), German articles too."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: Iterable[str]) -> float:
    """The best token-overlap F1 between the prediction and any gold answer (SQuAD definition)."""
    best = 0.0
    p_tokens = normalize_answer(prediction).split()
    for gold in golds:
        g_tokens = normalize_answer(gold).split()
        if not p_tokens or not g_tokens:
            best = max(best, float(p_tokens == g_tokens))
            continue
        common = sum((Counter(p_tokens) & Counter(g_tokens)).values())
        if common:
            precision, recall = common / len(p_tokens), common / len(g_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_gold(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when a normalised gold answer occurs in the normalised prediction as whole words."""
    p = f" {normalize_answer(prediction)} "
    return float(any(g and f" {g} " in p for g in (normalize_answer(x) for x in golds)))
