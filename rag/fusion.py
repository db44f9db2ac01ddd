"""Reciprocal-rank fusion of several ranked lists."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[K]],
    *,
    weights: Mapping[str, float] | None = None,
    k: int = 60,
) -> list[tuple[K, float]]:
    """Fuse ranked lists: score(d) = sum over lists of weight / (k + rank), rank starting at 1.

    Ties keep the order in which items were first seen, so results are deterministic.
    """
    scores: dict[K, float] = {}
    first_seen: dict[K, int] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        if weight <= 0:
            continue
        for rank, item in enumerate(ranking, start=1):
            first_seen.setdefault(item, len(first_seen))
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))
