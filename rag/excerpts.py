"""Tight sources: the sentences of a passage that bear on the question, within a character budget.

Every source token costs prompt-reading time before the first answer token (30-50 tokens/s for the 1.5B
default on 2 cores), and a small model answers better from fewer distracting sentences. The passage is
split into sentences; those sharing the most of the question's content terms (compounds counted, as in
:mod:`rag.answerability`) are kept, ties going to the earlier one, until ``max_chars`` is reached. They
stay in document order, gaps marked with "…". The model sees the excerpt; the user, the quote check and
the citation mapping keep the whole passage.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.answerability import coverage, passage_terms, question_terms
from rag.claims import split_sentences

GAP = " … "


def budget(chars: int | Sequence[int], rank: int) -> int:
    """The characters the source at ``rank`` (0 = the best) may take: its own entry of ``chars``, or the
    last one for ranks beyond the list (a single number holds for every source)."""
    if isinstance(chars, int):
        return chars
    return chars[min(rank, len(chars) - 1)] if chars else 0


def excerpt(question: str, text: str, max_chars: int) -> str:
    """``text`` cut to its sentences most relevant to ``question``, about ``max_chars`` long (0: all of it).

    The best sentence is always kept whole, even when it alone is longer than ``max_chars``.
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    sentences = split_sentences(text)
    if len(sentences) <= 1:
        return text
    terms = question_terms(question, "de") | question_terms(question, "en")
    weights = dict.fromkeys(terms, 1.0)

    def relevance(sentence: str) -> float:
        return coverage(terms, passage_terms(sentence, "de") | passage_terms(sentence, "en"), weights)

    order = sorted(range(len(sentences)), key=lambda i: (-relevance(sentences[i]), i))
    kept: list[int] = []
    used = 0
    for i in order:
        cost = len(sentences[i]) + (len(GAP) if kept else 0)
        if kept and used + cost > max_chars:
            continue
        kept.append(i)
        used += cost
    kept.sort()
    parts: list[str] = []
    for n, i in enumerate(kept):
        if n and i != kept[n - 1] + 1:
            parts.append("…")
        parts.append(sentences[i])
    if kept[0] > 0:
        parts.insert(0, "…")
    if kept[-1] < len(sentences) - 1:
        parts.append("…")
    return " ".join(parts)
