"""Is there enough evidence to answer? A check on the retrieved passages before the model is asked.

A small local model answers almost any question from whatever passages it is given, so "the sources
do not say" has to be decided before generation. Two signals, both measured on XQuAD with the gold
paragraph held out (``python -m bench abstention``), separate answerable from unanswerable questions:

- ``strength``: the best fused z-score, i.e. how far the top hit stands out from the other candidates;
- ``coverage``: the share of the question's keyword terms (question words such as "wann" or "wie
  lange" left out), weighted by their rarity in the index (IDF), that occur in a passage, also inside
  a compound. A passage on the right topic but without the asked-for fact (the same article's other
  paragraphs) scores a high strength but a low coverage.

Each of the first ``passages`` passages scores ``its z-score + coverage_weight * its coverage``; the best
must reach ``min_evidence``. Keyword coverage is only
evidence within one language: when the question's language differs from the best passage's (an English
question over German documents), only ``strength`` counts, against ``min_evidence_cross_lingual``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.config import AnswerabilitySettings
from rag.documents import Passage
from rag.language import Language, detect_language
from rag.text import folded_words, keyword_terms


class TermFrequencies(Protocol):
    """What the check needs of the index (:class:`~rag.store.IndexReader` provides it)."""

    def term_frequencies(self, terms: Iterable[str]) -> tuple[dict[str, int], int]: ...


@dataclass(frozen=True)
class Evidence:
    """How well the passages support answering, and whether that is enough."""

    strength: float
    coverage: float
    cross_lingual: bool
    score: float
    threshold: float

    @property
    def sufficient(self) -> bool:
        """Enough to answer (always, when the applicable threshold is 0: that check is off)."""
        return self.threshold <= 0 or self.score >= self.threshold

    def to_dict(self) -> dict[str, object]:
        return {
            "strength": round(self.strength, 4),
            "coverage": round(self.coverage, 4),
            "cross_lingual": self.cross_lingual,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "sufficient": self.sufficient,
        }


def idf(chunks_with_term: int, chunks: int) -> float:
    """BM25-style inverse document frequency, never below a small positive floor."""
    return max(math.log((chunks + 1) / (chunks_with_term + 0.5)), 0.01)


_MIN_PART = 5
_MIN_HEAD = 3
_FORMS: tuple[Language, ...] = ("de", "en")

# Words that shape a question but name nothing an answer must contain ("Wie lange darf man ...?").
# In a small index they are rare, so IDF alone would weigh them like content words.
_QUESTION_WORDS = """
    wann warum weshalb wieso weswegen wozu womit wofür woran worauf woraus wovon welch welchen welchem
    wem wen wessen lang lange hoch groß oft viel viele wieviele darf dürfen müssen muß soll sollen kann könnte man
    gibt geben gilt gelten heißt bitte genau eigentlich ungefähr bekomme bekommt steht stehen zusteht zustehen
    mir mich mein meine meinem meinen meiner
    how many much long high often does did can could may might must should would please exactly get gets
    me my mine we us our
""".split()
QUESTION_TERMS = frozenset(
    t for form in _FORMS for t in keyword_terms(" ".join(_QUESTION_WORDS), language=form)
)
# More such words, matched as written rather than by stem, since their stems are content words in the
# other language ("wären" -> "war", "worden" -> "word"): the "wo-" question words, and auxiliaries and
# pronouns the stop list lacks. They say nothing in an answer either.
QUESTION_FORMS = frozenset(
    """
    worum worin wogegen wodurch wobei woher wohin wonach worüber worunter wovor worueber
    wurde wurden worden gewesen wäre wären hatten habe haben hätte hätten bist waere waeren haette haetten
    ihm ihn ihnen ihrem ihren ihrer ihres seinem seinen seiner seines
    geht ging gehen handelt handelte behandelt regelt geregelt
    """.split()
)
"""Also the verbs that ask what a text is about ("Worum geht es im Hinweisblatt?", "Was regelt ...?"):
an answer's "Es geht um ..." claims nothing by them either."""
# Words that ask for a name ("Wie lautet der Name ...?"), which a passage holding the answer seldom
# says. Left out only of the check's coverage: in an answer they are words to find ("Im Antrag muss der
# Name stehen"), and a source line "Name des Arbeitgebers: ..." should still be the excerpt for "Wie
# lautet der Name des Arbeitgebers?".
FRAME_FORMS = frozenset(
    """
    lautet lauten lautete lauteten name namen namens nennt nennen nannte nannten genannt
    bezeichnung bezeichnet bezeichnete begriff begriffe begriffs
    named called
    """.split()
)
_CHECK_FORMS = QUESTION_FORMS | FRAME_FORMS


def match_term(term: str, passage_terms: set[str]) -> float:
    """1 for the term itself or inside a compound ("taglich" in "werktaglich"), or when a compound's
    first part and its head both occur ("urlaubstag": "urlaub", and "tag" ending "werktag"); 1/2 when
    only a part of it occurs ("urlaub" of "urlaubsantrag"), else 0. German joins words into compounds,
    so a question and its answer often share a word only as part of another."""
    if term in passage_terms:
        return 1.0
    if len(term) >= _MIN_PART and any(term in p for p in passage_terms if len(p) > len(term)):
        return 1.0
    if len(term) <= _MIN_PART:
        return 0.0
    parts = [p for p in passage_terms if _MIN_PART <= len(p) < len(term) and p in term]
    for part in parts:
        if term.startswith(part) and _head_occurs(term[len(part) :], passage_terms):
            return 1.0
    return 0.5 if parts else 0.0


def _head_occurs(rest: str, passage_terms: set[str]) -> bool:
    """Whether a compound's remainder after its first part ends a passage word (compound heads come
    last: "tag" in "werktag"), with a linking "s", "es", "n" or "en" allowed before it."""
    heads = {rest} | {rest[len(link) :] for link in ("s", "es", "n", "en") if rest.startswith(link)}
    return any(len(h) >= _MIN_HEAD and any(p.endswith(h) for p in passage_terms) for h in heads)


def question_terms(question: str, form: Language, *, frame: bool = False) -> set[str]:
    """The question's content terms in ``form``'s stemming: stop words and question words left out, and
    with ``frame`` the words that ask for a name (:data:`FRAME_FORMS`), as the check reads a question."""
    dropped = _CHECK_FORMS if frame else QUESTION_FORMS
    return set(keyword_terms(question, language=form, drop_stop_words=True, drop_words=dropped)) - QUESTION_TERMS


def passage_terms(text: str, form: Language) -> set[str]:
    """What a question term may match in ``text``: its stems in ``form`` and its unstemmed words."""
    return set(folded_words(text)) | set(keyword_terms(text, language=form))


def coverage(question_terms: set[str], passage_terms: set[str], weights: dict[str, float]) -> float:
    """The IDF-weighted share of ``question_terms`` found in ``passage_terms`` (0..1), compounds counted."""
    total = sum(weights.get(t, 0.0) for t in question_terms)
    if total <= 0:
        return 0.0
    return sum(weights.get(t, 0.0) * match_term(t, passage_terms) for t in question_terms) / total


class AnswerabilityCheck:
    """Scores retrieved passages for a question; reads term frequencies through ``frequencies``."""

    def __init__(self, settings: AnswerabilitySettings, frequencies: TermFrequencies) -> None:
        self.settings = settings
        self._frequencies = frequencies

    @property
    def enabled(self) -> bool:
        return self.settings.min_evidence > 0 or self.settings.min_evidence_cross_lingual > 0

    def assess(self, question: str, passages: Sequence[Passage], language: Language) -> Evidence:
        """The evidence ``passages`` (best first, with ``scores["fused"]``) give for ``question``."""
        strength = max((p.scores.get("fused", p.score) for p in passages), default=0.0)
        if not passages:
            return Evidence(0.0, 0.0, False, 0.0, self.settings.min_evidence)
        cross_lingual = detect_language(passages[0].text, default=language) != language
        if cross_lingual:
            return Evidence(strength, 0.0, True, strength, self.settings.min_evidence_cross_lingual)
        forms: list[tuple[Language, set[str], dict[str, float]]] = []
        for form in _FORMS:
            terms = question_terms(question, form, frame=True)
            if terms:
                counts, chunks = self._frequencies.term_frequencies(terms)
                forms.append((form, terms, {t: idf(counts.get(t, 0), chunks) for t in terms}))
        best = (0.0, 0.0, 0.0)  # (score, strength, coverage) of the best-supported passage
        for passage in passages[: self.settings.passages]:
            passage_strength = passage.scores.get("fused", passage.score)
            covered = max(
                (coverage(terms, passage_terms(passage.text, form), weights) for form, terms, weights in forms),
                default=0.0,
            )
            score = passage_strength + self.settings.coverage_weight * covered
            if score > best[0]:
                best = (score, passage_strength, covered)
        return Evidence(best[1], best[2], False, best[0], self.settings.min_evidence)


