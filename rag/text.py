"""Keyword normalisation for German and English documents and queries.

Words are lower-cased, stemmed with the Snowball stemmer of the text's language (a chunk's language is
guessed from its function words), then umlauts and ß are folded (``ä -> a``... after stemming,
``ae -> a``), so "Kündigung", "Kuendigung" and "kundigung" meet in one term. A query is stemmed both ways
and searched for either form, so it finds German and English chunks alike (and names across languages).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from functools import lru_cache

import Stemmer

from rag.language import Language, detect_language

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss"})
_DIGRAPHS = (("ae", "a"), ("oe", "o"), ("ue", "u"))

STOP_WORDS = frozenset(
    """
    aber alle allem allen aller alles als also am an ander andere anderem anderen anderer anderes auch auf
    aus bei bin bis bist da damit dann das dass dein deine dem den der des dessen deshalb die dies diese
    dieser dieses doch dort du durch ein eine einem einen einer eines er es etwas euch euer für gegen hat
    hatte hier hin ich ihr ihre im in ist ja jede jedem jeden jeder jedes kann kein keine können mit muss
    nach nicht noch nun nur ob oder ohne sehr sein seine sich sie sind so soll über um und uns unser unter
    vom von vor war waren was welche welcher welches wenn wer werden wie wieviel wird wir wo zu zum zur
    a an and are as at be by can do does for from had has have how i if in into is it its of on or that the
    their there these this to was were what when where which who whom why will with you your
    """.split()
)


_SNOWBALL = {"de": "german", "en": "english"}


@lru_cache(maxsize=2)
def _stemmer(language: Language) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(_SNOWBALL[language])


def _fold(term: str) -> str:
    term = term.translate(_FOLD)
    for digraph, plain in _DIGRAPHS:
        term = term.replace(digraph, plain)
    return term


def keyword_terms(
    text: str, *, language: Language = "de", drop_stop_words: bool = False, drop_words: Collection[str] = ()
) -> list[str]:
    """Split ``text`` into normalised keyword terms, stemmed for ``language``; ``drop_words`` (lower-case
    words, as written) are left out before stemming, like the stop words."""
    words = _WORD.findall(unicodedata.normalize("NFC", text).lower())
    if drop_stop_words:
        words = [w for w in words if w not in STOP_WORDS]
    if drop_words:
        words = [w for w in words if w not in drop_words]
    stems = _stemmer(language).stemWords(words)
    return [_fold(s) for s in stems if s]


def folded_words(text: str) -> list[str]:
    """The words of ``text`` lower-cased and umlaut-folded like keyword terms, but not stemmed."""
    return [_fold(w) for w in _WORD.findall(unicodedata.normalize("NFC", text).lower())]


def keyword_document(text: str, language: Language | None = None) -> str:
    """The form of a chunk's text that goes into the keyword index (stemmed for its language)."""
    return " ".join(keyword_terms(text, language=language or detect_language(text)))


def keyword_query_terms(text: str) -> tuple[list[str], list[str]]:
    """The query's terms in German and in English stemming, stop words dropped, repeats kept."""
    return (
        keyword_terms(text, language="de", drop_stop_words=True),
        keyword_terms(text, language="en", drop_stop_words=True),
    )


def keyword_query(text: str, skip: Collection[str] = ()) -> str | None:
    """An FTS5 ``OR`` query for ``text`` in German and English stemming; ``None`` when nothing is left.

    A term repeated in the question is repeated in the query (BM25 then weighs it more, as it should for
    a long question); the English form of a word is added only where it differs from the German one.
    Terms in ``skip`` are left out unless nothing else would remain.
    """
    german, english = keyword_query_terms(text)
    seen = set(german)
    terms = german + [t for t in english if t not in seen]
    if not terms:
        terms = keyword_terms(text)
    terms = [t for t in terms if t]
    terms = [t for t in terms if t not in skip] or terms
    if not terms:
        return None
    return " OR ".join(f'"{t}"' for t in terms)
