"""Grounding: does a written answer add anything the sources say?

The answerability check (:mod:`rag.answerability`) decides before generation from the retrieved
passages alone. Passages on the right topic but without the asked-for fact still pass it when they
share the question's words, and then a small model answers anyway, in one of two ways: it restates the
question as its answer ("Welche Schrift Luthers wurde später entdeckt?" - "Luthers Schrift wurde später
entdeckt [1]."), or it adds words of its own that no source contains ("Newcastle hat zwei
Universitäten"). Both show in the answer's *new terms*: its content words that the question does not
contain (names, numbers, the asked-for thing). An answer is grounded when one of its sentences has new
terms, at least ``min_found`` of them (a share) occur in the sources the model read, and so does every
number among them (an invented number is the costliest error a reader can miss); otherwise it is
withdrawn and the user gets "not found" and the closest sources instead.

A yes/no question answered "Ja, ..." / "No, ..." counts as answered even without new terms found in the
sources (but not with an invented number). The check
is lexical: it cannot tell a right answer from a wrong one that is also in the sources, and it only
looks at sources in the answer's language (an English answer over German documents is not checked).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answerability import match_term, passage_terms, question_terms
from rag.citations import SENTENCE_END
from rag.language import Language, detect_language

_MARKER = re.compile(r"\s*\[\d{1,3}\]")
_YES_NO_QUESTION = re.compile(
    r"^\s*(?:ist|sind|war|waren|wird|werden|wurde|wurden|hat|haben|hatte|hatten|gibt|gab|kann|können|"
    r"darf|dürfen|muss|müssen|soll|sollen|sollte|gilt|zählt|brauche|braucht|"
    r"is|are|was|were|will|would|has|have|had|does|do|did|can|could|may|must|should|shall)\b",
    re.IGNORECASE,
)
_YES_NO_ANSWER = re.compile(r"^\s*(?:ja|nein|doch|yes|no)\b", re.IGNORECASE)
# "8 Stunden" in an answer, "acht Stunden" in the law: small numbers are found in either spelling.
_NUMBER_WORDS = {
    str(n): words
    for n, words in enumerate(
        [
            ("null", "zero"), ("eins", "one"), ("zwei", "two"), ("drei", "three"), ("vier", "four"),
            ("funf", "five"), ("sech", "six"), ("sieb", "seven"), ("acht", "eight"), ("neun", "nine"),
            ("zehn", "ten"), ("elf", "eleven"), ("zwolf", "twelv"),
        ]
    )
}


@dataclass(frozen=True)
class Grounding:
    """What the best-grounded sentence of an answer adds to the question, and what of that the sources
    lack."""

    new_terms: tuple[str, ...]
    """Its content terms that the question does not contain (stemmed)."""
    missing: tuple[str, ...]
    """Those of ``new_terms`` that occur in no source."""
    grounded: bool

    @property
    def found(self) -> float:
        """Share of ``new_terms`` that occur in the sources (0 when there are none)."""
        return 1 - len(self.missing) / len(self.new_terms) if self.new_terms else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "new_terms": list(self.new_terms), "missing": list(self.missing),
            "found": round(self.found, 4), "grounded": self.grounded,
        }


def _sentences(answer: str) -> list[str]:
    text = _MARKER.sub("", answer.replace("\n", " "))
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def _found(term: str, known: set[str]) -> bool:
    if match_term(term, known) >= 1:
        return True
    spelled = [*_NUMBER_WORDS.get(term, ()), *(n for n, words in _NUMBER_WORDS.items() if term in words)]
    return any(s in known for s in spelled)


def assess_grounding(
    question: str, answer: str, sources: Sequence[str], language: Language, *, min_found: float
) -> Grounding | None:
    """How well ``answer`` (to ``question``, in ``language``) is grounded in ``sources``.

    ``None`` when the check does not apply: no source is in the answer's language.
    """
    same_language = [s for s in sources if detect_language(s, default=language) == language]
    if not same_language:
        return None
    asked = passage_terms(question, language)
    known = passage_terms(" ".join(same_language), language)
    best: tuple[bool, float, Grounding] = (False, -1.0, Grounding((), (), False))
    any_invented = False
    for sentence in _sentences(answer):
        new = tuple(sorted({t for t in question_terms(sentence, language) if match_term(t, asked) < 1}))
        if not new:
            continue
        missing = tuple(t for t in new if not _found(t, known))
        invented_number = any(any(c.isdigit() for c in t) for t in missing)
        any_invented = any_invented or invented_number
        candidate = Grounding(new, missing, False)
        ok = not invented_number and candidate.found >= min_found
        if (ok, candidate.found) > best[:2]:
            best = (ok, candidate.found, Grounding(new, missing, ok))
    grounding = best[2]
    yes_or_no = _YES_NO_QUESTION.match(question) and _YES_NO_ANSWER.match(answer)
    if not grounding.grounded and yes_or_no and not any_invented:
        return Grounding(grounding.new_terms, grounding.missing, True)
    return grounding
