"""Fusing ranked lists: z-score convex combination (the default) and reciprocal-rank fusion."""

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


def zscore_fusion(
    dense: Sequence[tuple[K, float]],
    keyword: Sequence[tuple[K, float]],
    *,
    dense_weight: float,
    keyword_weight: float,
) -> list[tuple[K, float]]:
    """Combine two scored lists: ``dense_weight * z(dense) + keyword_weight * z(keyword)``.

    Each list's scores are standardised (mean 0, deviation 1) over the list itself, so a hit that stands
    out in its list counts more than one in a flat list, unlike rank-based fusion. A hit missing from a
    list gets that list's lowest z-score. Ties keep first-seen order (dense first).
    """

    def standardise(hits: Sequence[tuple[K, float]]) -> tuple[dict[K, float], float]:
        if not hits:
            return {}, 0.0
        values = [s for _, s in hits]
        mean = sum(values) / len(values)
        deviation = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
        z = {item: (score - mean) / deviation for item, score in hits}
        return z, min(z.values())

    dz, dmin = standardise(dense)
    kz, kmin = standardise(keyword)
    order = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in keyword]))
    scores = {
        item: dense_weight * dz.get(item, dmin) + keyword_weight * kz.get(item, kmin) for item in order
    }
    position = {item: n for n, item in enumerate(order)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], position[kv[0]]))
