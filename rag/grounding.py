"""Grounding: does a written answer add anything the sources say?

The answerability check (:mod:`rag.answerability`) decides before generation from the retrieved
passages alone. Passages on the right topic but without the asked-for fact still pass it when they
share the question's words, and then a small model answers anyway, in one of two ways: it restates the
question as its answer ("Welche Schrift Luthers wurde später entdeckt?" - "Luthers Schrift wurde später
entdeckt [1]."), or it adds words or numbers of its own that no source contains ("Die Person muss
mindestens 21 Jahre alt sein"). Both show in what the answer *adds* to the question: its content words
the question does not contain (names, the asked-for thing) and its numbers.

An answer is grounded when one of its sentences

- states no number the sources lack (numbers are compared by value, :mod:`rag.numbers`: "1.500" and
  "1500", "01.03.2024" and "1. März 2024", "9:00" and "9", "vier" and "4" are the same), and
- adds a number the sources hold, or adds words of which at least ``min_found`` (a share) occur in the
  sources.

A plain yes or no ("Ja, ...", "No, ...") also stands, and so does naming one of the alternatives an
"A oder B?" question offers when the sources name it, unless the answer states a number the sources
lack, or its "yes" confirms one the question brought. Otherwise the answer is withdrawn: the user gets
"not found" and the closest sources instead. A sentence with a number the sources lack does not
withdraw an answer that another sentence grounds; :mod:`rag.claims` marks that sentence unverified.

What the model read is each passage's text and its label (document name, page, section): words count
from both, a number from a label only where the answer refers to it as one ("§ 3", "Seite 12"). Words are
compared only with sources in the answer's language (stemming is per language), numbers with every
source. The check is lexical: it cannot tell a right answer from a wrong one whose words are also in the
sources.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answerability import match_term, passage_terms, question_terms
from rag.citations import MARKER
from rag.claims import split_sentences
from rag.language import Language, detect_language
from rag.numbers import known_readings, numbers_in
from rag.text import keyword_terms

# A markdown link "[text](address)": the address may hold balanced parentheses, and a title ("...",
# '...' or (...)) may follow it, as CommonMark allows. A title is prose the user reads, so it stays.
_LINK = re.compile(
    r"\[([^\[\]\n]*)\]\(\s*+((?:[^()\s]|\([^()\s]*\))*)"
    r"(?:\s+(?:\"([^\"\n]*)\"|'([^'\n]*)'|\(([^()\n]*)\)))?\s*\)"
)
# What makes a link's parenthesis an address (a scheme, path, file name, anchor or query); anything else
# in it is prose the user reads ("[3](zusätzlich-30-Tage)").
_ADDRESS = re.compile(r"[/.#@:%?=]")
# Where a citation marker stands: before anything but a word ("[30](url) Werktage" states a number).
_AT_MARKER = re.compile(r"[^\S\n]*(?:[^\w\s]|$)", re.MULTILINE)
_YES = re.compile(r"^\W*(?:ja|yes|doch(?=\s*[,.!]))\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(?:nein|no)\b", re.IGNORECASE)
_YES_NO = frozenset({"ja", "nein", "doch", "yes", "no"})
_ALTERNATIVES = re.compile(r"([^\W\d_]+)\s+(?:oder|or)\s+([^\W\d_]+)", re.IGNORECASE)
# Where an answer points at a label: "§ 3", "Seite 12", "Abschnitt 4.2".
_REFERENCE = re.compile(
    r"(?:§§?|Seite|S\.|page|p\.|Folie|slide|Blatt|sheet|Abs\.|Absatz|Abschnitt|section|Kapitel|chapter|Nr\.)"
    r"\s*(\d{1,30}(?:[.,:]\d{1,30})*)",
    re.IGNORECASE,
)
# Symbols that stand for a word ("25 %" in the source, "25 Prozent" in the answer).
_SYMBOLS = {"de": {"%": " Prozent ", "€": " Euro "}, "en": {"%": " percent ", "€": " euro "}}
# Words that say a number is what it is; the number itself is the content ("beträgt 30 Tage").
_FILLER = frozenset(
    "betragt betrag betragen lieg liegt liegen belauft amount amounts total totals ca bzw ggf usw etc".split()
)
# Abbreviations whose full stops would split a sentence and leave letters as words ("z. B.").
_ABBREVIATION = re.compile(
    r"\b(?:z\.\s?B|d\.\s?h|u\.\s?a|o\.\s?ä|s\.\s?o|s\.\s?u|v\.\s?a|i\.\s?d\.\s?R|e\.\s?g|i\.\s?e)\.", re.IGNORECASE
)


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


def _sentences(answer: str, language: Language) -> list[str]:
    # A link states its text and title, not its address (whose digits and words are in no source), and
    # "[3](url)" nothing; before symbols are spelled out, or a "%20" in an address would break the link.
    unlinked = _LINK.sub(_link_text, answer)
    return split_sentences(_ABBREVIATION.sub(" ", MARKER.sub("", _symbols_spelled(unlinked, language))))


def _link_text(link: re.Match[str]) -> str:
    """What the user reads of a link: its text (nothing for "[3](url)" where a citation would stand),
    an address that is no address, and its title."""
    text = link.group(1)
    if re.fullmatch(r"\s*\d{1,3}\s*", text) and _AT_MARKER.match(link.string, link.end()):
        text = ""
    address = "" if _ADDRESS.search(link.group(2)) else link.group(2)
    title = link.group(3) or link.group(4) or link.group(5) or ""
    return " ".join(part for part in (text, address, title) if part)


def _symbols_spelled(text: str, language: Language) -> str:
    for symbol, word in _SYMBOLS[language].items():
        text = text.replace(symbol, word)
    return text


def _added_words(sentence: str, asked: set[str], language: Language, numbers: set[str]) -> list[str]:
    """Content terms of ``sentence`` that ``asked`` lacks; ``numbers`` (spelled ones, stemmed) are
    checked as numbers instead."""
    return sorted(
        t for t in set(question_terms(sentence, language))
        if match_term(t, asked) < 1 and not any(c.isdigit() for c in t)
        and t not in _FILLER and t not in _YES_NO and t not in numbers
    )


def _picks(answer: str, question: str, known: set[str], language: Language) -> bool:
    """Whether ``answer`` names an alternative of an "A oder B?" question that the sources name."""
    answer_terms = passage_terms(answer, language)
    for pair in _ALTERNATIVES.findall(question):
        for alternative in pair:
            terms = question_terms(alternative, language)
            if terms and all(match_term(t, answer_terms) >= 1 and match_term(t, known) >= 1 for t in terms):
                return True
    return False


def assess_grounding(
    question: str,
    answer: str,
    sources: Sequence[str],
    language: Language,
    *,
    min_found: float,
    labels: Sequence[str] = (),
) -> Grounding | None:
    """How well ``answer`` (to ``question``, in ``language``) is grounded in ``sources``.

    ``question`` may hold several phrasings (a follow-up and its standalone rewrite): what any of them
    says is not new. ``labels`` are the sources' document names, pages and sections. ``None`` when the
    check cannot judge: no source is in the answer's language and every number of the answer is in one.
    """
    same_language = [
        _symbols_spelled(s, language) for s in sources if detect_language(s, default=language) == language
    ]
    asked = passage_terms(_symbols_spelled(question, language), language)
    asked_numbers = known_readings([question])
    known = passage_terms(" ".join([*same_language, *labels]), language)
    known_numbers = known_readings(sources)
    label_numbers = known_readings(labels)
    best: tuple[bool, float, tuple[str, ...], tuple[str, ...]] = (False, -1.0, (), ())
    invented: list[str] = []
    for sentence in _sentences(answer, language):
        referenced = {m.group(1) for m in _REFERENCE.finditer(sentence)}
        stated = numbers_in(sentence)
        numbers = sorted(n for n, values in stated.items() if not values & asked_numbers)
        spelled_out = " ".join(n for n in stated if not any(c.isdigit() for c in n))  # "vier", not "4"
        spelled = set(keyword_terms(spelled_out, language=language))
        missing_numbers = [
            n for n in numbers
            if not stated[n] & known_numbers and not (n in referenced and stated[n] & label_numbers)
        ]
        invented += missing_numbers
        words = _added_words(sentence, asked, language, spelled) if same_language else []
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
    if not ok and not invented:
        if _YES.match(answer):  # a "yes" must not confirm a number no source has ("30 Tage übertragen?")
            ok = not [n for n, values in numbers_in(question).items() if not values & known_numbers]
        else:
            ok = bool(_NO.match(answer)) or _picks(answer, question, known, language)
    if not ok and invented:
        missing = tuple(dict.fromkeys([*missing, *invented]))
    return Grounding(new_terms, missing, ok)
