"""Citation markers: ``[n]`` in an answer refers to source n as numbered in the prompt."""

from __future__ import annotations

import re
from dataclasses import dataclass

# [1], [1, 2], [1,2,3], [Quelle 1], [source 2]; not markdown links ([text](url)).
_MARKER = re.compile(r"\[(?:(?:quelle|source|q)\s*)?(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\](?!\()", re.IGNORECASE)


@dataclass(frozen=True)
class CitedAnswer:
    text: str
    cited: list[int]
    dropped: list[int]


def parse_citations(text: str, n_sources: int) -> CitedAnswer:
    """Normalise markers to ``[n]``, drop numbers that no source has, list cited numbers in order.

    A marker like ``[1, 7]`` with only 5 sources becomes ``[1]``; ``[9]`` disappears entirely.
    """
    cited: list[int] = []
    dropped: list[int] = []

    def rewrite(match: re.Match[str]) -> str:
        numbers = [int(x) for x in re.split(r"\s*[,;]\s*", match.group(1))]
        kept = []
        for n in numbers:
            if 1 <= n <= n_sources:
                kept.append(n)
                if n not in cited:
                    cited.append(n)
            elif n not in dropped:
                dropped.append(n)
        return "".join(f"[{n}]" for n in dict.fromkeys(kept))

    cleaned = _MARKER.sub(rewrite, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
    return CitedAnswer(text=cleaned.strip(), cited=cited, dropped=dropped)
