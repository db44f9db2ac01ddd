"""Grounding: does a written answer add anything the sources say?

The answerability check (:mod:`rag.answerability`) decides before generation from the retrieved
passages alone. Passages on the right topic but without the asked-for fact still pass it when they
share the question's words, and then a small model answers anyway, in one of two ways: it restates the
question as its answer ("Welche Schrift Luthers wurde später entdeckt?" - "Luthers Schrift wurde später
entdeckt [1]."), or it adds words or numbers of its own that no source contains ("Die Person muss
mindestens 21 Jahre alt sein"). Both show in what the answer *adds* to the question: its content words
the question does not contain (names, the asked-for thing) and its numbers.

An answer is grounded when

- no number it states is missing from the sources (an invented number is the costliest error a reader
  can miss; "1.500" and "1500", "01.03.2024" and "1.3.2024", "9:00" and "9", "8" and "acht" are the
  same number), and
- one of its sentences adds a number the sources hold, or adds words of which at least ``min_found``
  (a share) occur in the sources, or the answer is a plain yes or no ("Ja, ...", "No, ...").

Otherwise it is withdrawn: the user gets "not found" and the closest sources instead. The sources are
what the model read: each passage's text with its document name, page and section. Words are compared
only with sources in the answer's language (stemming is per language); numbers with every source. The
check is lexical: it cannot tell a right answer from a wrong one whose words are also in the sources.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.answerability import match_term, passage_terms, question_terms
from rag.citations import SENTENCE_END
from rag.language import Language, detect_language
from rag.text import folded_words

_MARKER = re.compile(r"\s*\[\d{1,3}\]")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_GROUPED = re.compile(r"\d{1,3}(?:[.,]\d{3})+")
_YES_NO_ANSWER = re.compile(r"^\W*(?:ja|nein|doch|yes|no)\b", re.IGNORECASE)
_YES_NO = frozenset({"ja", "nein", "doch", "yes", "no"})
_CHOICE = re.compile(r"\b(?:oder|or)\b", re.IGNORECASE)
# Symbols that stand for a word ("25 %" in the source, "25 Prozent" in the answer).
_SYMBOLS = {"de": {"%": " Prozent ", "€": " Euro "}, "en": {"%": " percent ", "€": " euro "}}
# Words that say a number is what it is; the number itself is the content ("beträgt 30 Tage").
_FILLER = frozenset(
    "betragt betrag betragen lieg liegt liegen belauft amount amounts total totals ca bzw ggf usw etc".split()
)
# "8 Stunden" in an answer, "acht Stunden" in the law: small numbers are found in either spelling.
_NUMBER_WORDS = {
    "0": ("null", "zero"), "1": ("eins", "ein", "eine", "einen", "einem", "einer", "one"),
    "2": ("zwei", "two"), "3": ("drei", "three"), "4": ("vier", "four"), "5": ("funf", "five"),
    "6": ("sechs", "six"), "7": ("sieben", "seven"), "8": ("acht", "eight"), "9": ("neun", "nine"),
    "10": ("zehn", "ten"), "11": ("elf", "eleven"), "12": ("zwolf", "twelve"),
}
_SPELLED = {word: digits for digits, words in _NUMBER_WORDS.items() for word in words}
# In an answer an article is not a number: "ein Tag" states nothing to check, "vier Tage" does.
_SPELLED_IN_ANSWER = {word: digits for word, digits in _SPELLED.items() if digits != "1" or word == "eins"}
# Abbreviations whose full stops would split a sentence and leave letters as words ("z. B.").
_ABBREVIATION = re.compile(r"\b(?:z|d|u|o|s|v|i|e)\.\s?(?:B|h|a|ä|g|S|d|R|e)\.", re.IGNORECASE)


@dataclass(frozen=True)
class Grounding:
    """What an answer adds to its question, and what of that the sources lack."""

    new_terms: tuple[str, ...]
    """Content terms (stemmed) and numbers of the best-grounded sentence that the question lacks."""
    missing: tuple[str, ...]
    """Those of ``new_terms`` that occur in no source, and any number of the answer that does not."""
    grounded: bool

    @property
    def found(self) -> float:
        """Share of ``new_terms`` that occur in the sources (0 when there are none)."""
        if not self.new_terms:
            return 0.0
        return sum(t not in self.missing for t in self.new_terms) / len(self.new_terms)

    def to_dict(self) -> dict[str, object]:
        return {
            "new_terms": list(self.new_terms), "missing": list(self.missing),
            "found": round(self.found, 4), "grounded": self.grounded,
        }


def _readings(number: str) -> set[str]:
    """The values a written number may stand for: itself without grouping or leading zeros ("1.500"
    -> "1500"), a decimal ("0,30" -> "0.3"), and each of its parts ("01.03.2024" -> "1", "3", "2024")."""
    parts = re.split(r"[.,:]", number)
    values = {str(int(p)) for p in parts}
    if _GROUPED.fullmatch(number):
        values.add(str(int("".join(parts))))
    if len(parts) == 2:
        values.add(f"{int(parts[0])}.{parts[1].rstrip('0') or '0'}")
    return values


def _known_numbers(texts: Iterable[str]) -> set[str]:
    known: set[str] = set()
    for text in texts:
        for number in _NUMBER.findall(text):
            known |= _readings(number)
        known |= {_SPELLED[w] for w in folded_words(text) if w in _SPELLED}
    return known


def _number_found(number: str, known: set[str]) -> bool:
    """Whether ``number`` is in ``known`` as a whole, or part by part (a date, a time: "9:00" is 9)."""
    raw = re.split(r"[.,:]", number)
    parts = [str(int(p)) for p in raw]
    decimal = f"{parts[0]}.{raw[1].rstrip('0') or '0'}" if len(raw) == 2 else None
    if _GROUPED.fullmatch(number):  # "2.000" is two thousand (or 2.0), never 2 and 0
        return str(int("".join(raw))) in known or decimal in known
    if decimal in known:
        return True
    return all(p in known for p in parts if p != "0")


def _sentences(answer: str) -> list[str]:
    text = _ABBREVIATION.sub(" ", _MARKER.sub("", answer.replace("\n", " ")))
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def _symbols_spelled(text: str, language: Language) -> str:
    for symbol, word in _SYMBOLS[language].items():
        text = text.replace(symbol, word)
    return text


def _added_words(sentence: str, asked: set[str], language: Language) -> list[str]:
    return sorted(
        t for t in set(question_terms(sentence, language))
        if match_term(t, asked) < 1 and not any(c.isdigit() for c in t)
        and t not in _FILLER and t not in _YES_NO and t not in _SPELLED
    )


def _numbers(sentence: str) -> set[str]:
    """The numbers a sentence states: in digits, and small ones spelled out ("vier" as "4")."""
    spelled = {_SPELLED_IN_ANSWER[w] for w in folded_words(sentence) if w in _SPELLED_IN_ANSWER}
    return set(_NUMBER.findall(sentence)) | spelled


def assess_grounding(
    question: str, answer: str, sources: Sequence[str], language: Language, *, min_found: float
) -> Grounding | None:
    """How well ``answer`` (to ``question``, in ``language``) is grounded in ``sources``.

    ``question`` may hold several phrasings (a follow-up and its standalone rewrite): what any of them
    says is not new. ``sources`` are the texts the model read, labels included. ``None`` when the check
    cannot judge: no source is in the answer's language and every number of the answer is in one.
    """
    same_language = [
        _symbols_spelled(s, language) for s in sources if detect_language(s, default=language) == language
    ]
    asked = passage_terms(_symbols_spelled(question, language), language)
    asked_numbers = _known_numbers([question])
    known = passage_terms(" ".join(same_language), language)
    known_numbers = _known_numbers(sources)
    invented: list[str] = []
    best: tuple[bool, float, tuple[str, ...], tuple[str, ...]] = (False, -1.0, (), ())
    for sentence in _sentences(_symbols_spelled(answer, language)):
        numbers = sorted(n for n in _numbers(sentence) if not _number_found(n, asked_numbers))
        missing_numbers = [n for n in numbers if not _number_found(n, known_numbers)]
        invented += missing_numbers
        words = _added_words(sentence, asked, language) if same_language else []
        missing_words = [t for t in words if match_term(t, known) < 1]
        new = tuple(numbers + words)
        if not new:
            continue
        found = 1 - (len(missing_numbers) + len(missing_words)) / len(new)
        ok = not missing_numbers and (bool(numbers) or (bool(words) and found >= min_found))
        if (ok, found) > best[:2]:
            best = (ok, found, new, tuple(missing_numbers + missing_words))
    ok, _, new_terms, missing = best
    if not same_language and not invented:
        return None
    if not ok and not invented and _question_numbers_known(question, known_numbers):
        # A plain yes or no, or one of the alternatives the question offered ("schriftlich oder mündlich?").
        choice = bool(_CHOICE.search(question)) and _picks(answer, asked, known, language)
        ok = bool(_YES_NO_ANSWER.match(answer)) or choice
    if invented:
        ok = False
        missing = tuple(dict.fromkeys([*missing, *invented]))
    return Grounding(new_terms, missing, ok)


def _picks(answer: str, asked: set[str], known: set[str], language: Language) -> bool:
    """Whether ``answer`` names a word of the question that the sources hold (an answer to "A or B?")."""
    terms = set(question_terms(answer, language))
    return any(match_term(t, asked) >= 1 and match_term(t, known) >= 1 for t in terms)


def _question_numbers_known(question: str, known: set[str]) -> bool:
    """A "yes" must not confirm a number the question brought and no source has ("30 Tage übertragen?")."""
    return all(_number_found(n, known) for n in _NUMBER.findall(question))
