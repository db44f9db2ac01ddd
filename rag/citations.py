"""Citation markers: ``[n]`` in an answer refers to source n as numbered in the prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.text import keyword_terms

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


# Where one sentence ends and the next begins (an answer's or a source's).
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÄÖÜ0-9(„\"])")
MARKER = re.compile(r"\s*\[(\d{1,3})\](?!\()")
"""One normalised citation ``[n]`` (group 1: n) with the whitespace before it; a markdown link
``[3](url)`` is not one. Every module that finds or strips an answer's citations uses this pattern."""


def attribute_uncited(text: str, sources: Sequence[str], *, min_coverage: float = 0.6) -> tuple[str, list[int]]:
    """Add ``[n]`` to sentences that state something without a marker, when one source holds most of
    their words (small models often copy a source's sentence and forget to cite it).

    Returns the text and the numbers it added. A sentence no source covers stays unmarked: it is not
    supported by the sources, and the reader should see that.
    """
    source_terms = [set(keyword_terms(s)) for s in sources]
    added: list[int] = []
    out = []
    for sentence in SENTENCE_END.split(text):
        terms = set(keyword_terms(sentence, drop_stop_words=True))
        if MARKER.search(sentence) or len(terms) < 3:
            out.append(sentence)
            continue
        coverage = [len(terms & st) / len(terms) for st in source_terms]
        best = max(range(len(coverage)), key=coverage.__getitem__, default=None)
        if best is None or coverage[best] < min_coverage:
            out.append(sentence)
            continue
        n = best + 1
        stripped = sentence.rstrip()
        end = len(stripped) - 1 if stripped[-1:] in ".!?" else len(stripped)
        out.append(f"{stripped[:end]} [{n}]{stripped[end:]}")
        if n not in added:
            added.append(n)
    return " ".join(out), added
