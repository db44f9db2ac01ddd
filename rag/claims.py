"""Claims: each sentence of an answer with its citation and a quote from the cited source, checked.

The quote is extracted, not generated: the cited source's sentence that shares the most keyword terms
with the claim (a small model asked for quotes inline tends to paraphrase them). A quote the model did
write inline („...“ or "...") is checked first, and the extracted one tried when it fails.
``verified`` means the quote is found verbatim in the cited source (after normalising whitespace,
hyphenation and quotation marks) and carries at least ``min_support`` of the claim's terms; for an
inline quote, the claim's words outside it must be said where it stands (for a claim that is little
more than its quote: any number it states). A fabricated quote, or a citation of a source that does
not say the claim's words, is never shown as verified; the check is lexical, so it cannot tell a
paraphrase that changes the meaning from one that keeps it, except for numbers: a claim stating a number
its cited source lacks (compared by value, :mod:`rag.numbers`) is never verified.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from rag.citations import SENTENCE_END
from rag.numbers import missing_numbers
from rag.text import keyword_terms

# "... Werktage. [1]": a marker after the full stop belongs to the sentence before it.
_TRAILING_MARKERS = re.compile(r"([.!?])((?:\s*\[\d{1,3}\])+)")
_MARKER = re.compile(r"\s*\[(\d{1,3})\]")
_INLINE_QUOTE = re.compile(r"[„\"“»]([^„\"“”»«]{12,400})[“”\"«]")
_QUOTE_CHARS = str.maketrans({c: '"' for c in "„“”«»‚‘’'"})
_MAX_QUOTE_CHARS = 240
_MIN_CLAIM_TERMS = 3


@dataclass(frozen=True)
class Claim:
    """One sentence of an answer. ``citation`` is its first source number (or None)."""

    text: str
    citation: int | None
    quote: str | None
    verified: bool

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "citation": self.citation, "quote": self.quote, "verified": self.verified}


def normalise_quote(text: str) -> str:
    """The form quotes are compared in: NFKC, one kind of quotation mark, words hyphenated across a
    line joined, soft hyphens gone, whitespace collapsed, case folded."""
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "")
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text)
    return " ".join(text.translate(_QUOTE_CHARS).split()).casefold()


# A full stop that ends no sentence: "am 1. März", "S. 12", "Abs. 2", "Nr. 5", "z. B. 3".
_DAY_END = re.compile(r"\b\d{1,2}\.$")
_MONTH_START = re.compile(r"(?:Jan|Feb|Mär|Mar|Apr|Mai|May|Jun|Jul|Aug|Sep|Okt|Oct|Nov|Dez|Dec)[a-zä]*\b")
_ABBREVIATION_END = re.compile(r"\b(?:S|Abs|Nr|Art|Ziff|Kap|Bd|Tz|Rn|vgl|ca|z\.\s?B)\.$", re.IGNORECASE)


def _continues(previous: str, piece: str) -> bool:
    return bool(
        (_DAY_END.search(previous) and _MONTH_START.match(piece))
        or (_ABBREVIATION_END.search(previous) and piece[:1].isdigit())
    )


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer or a source, in order (blank ones left out)."""
    pieces = SENTENCE_END.split(text.replace("\n", " "))
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _continues(sentences[-1], piece):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [s.strip() for s in sentences if s.strip()]


def _support(claim_terms: set[str], quote: str) -> float:
    if not claim_terms:
        return 0.0
    return len(claim_terms & set(keyword_terms(quote))) / len(claim_terms)


def _best_quote(claim_terms: set[str], source: str) -> tuple[str | None, float]:
    best, best_support = None, 0.0
    for sentence in split_sentences(source):
        support = _support(claim_terms, sentence)
        if support > best_support:
            best, best_support = sentence, support
    if best is not None and len(best) > _MAX_QUOTE_CHARS:
        best = best[:_MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
    return best, best_support


def _context(quote: str, source: str) -> str | None:
    """The sentences of ``source`` the quote stands in, with the quote; None when it is not there verbatim."""
    wanted = normalise_quote(quote)
    if wanted not in normalise_quote(source):
        return None
    around = []
    for sentence in split_sentences(source):
        normalised = normalise_quote(sentence)
        if wanted in normalised or normalised in wanted:
            around.append(sentence)
    return " ".join([quote, *around])


def extract_claims(answer: str, sources: Sequence[str], *, min_support: float = 0.5) -> list[Claim]:
    """Split ``answer`` (markers already normalised to ``[n]``) into claims with checked quotes.

    ``sources[n - 1]`` is the text of source n. Citation numbers no source has are dropped.
    """
    claims = []
    for sentence in split_sentences(_TRAILING_MARKERS.sub(r"\2\1", answer)):
        numbers = [int(n) for n in _MARKER.findall(sentence) if 1 <= int(n) <= len(sources)]
        text = _MARKER.sub("", sentence).strip()
        if not text:
            continue
        terms = set(keyword_terms(text, drop_stop_words=True))
        inline = _INLINE_QUOTE.search(text)
        written = inline.group(1).strip() if inline else None
        # With a quote written into the claim, the claim's words outside it are what must be supported:
        # a model copying any sentence of the source does not verify an unrelated claim. A claim that is
        # little more than its quote ("Es heißt: „…“") is verified by finding the quote, but any number
        # it states outside the quote must be there too ("Es sind 30 Tage [1] „… 24 Werktage“" is not).
        said, short = terms, False
        if inline is not None:
            outside = set(keyword_terms(text[: inline.start()] + text[inline.end():], drop_stop_words=True))
            said, short = outside, len(outside) < _MIN_CLAIM_TERMS
        best: tuple[int | None, str | None, bool, float] = (numbers[0] if numbers else None, written, False, 0.0)
        for n in dict.fromkeys(numbers):
            source = sources[n - 1]
            candidates = []
            if written:
                context = _context(written, source)
                if context is None:
                    support = 0.0
                elif short:
                    stated = {t for t in said if any(c.isdigit() for c in t)}
                    support = 1.0 if stated <= set(keyword_terms(context)) else 0.0
                else:
                    support = _support(said, context)
                candidates.append((written, context is not None and support >= min_support, support))
            if not short:  # a short claim has nothing of its own to find a sentence for
                extracted, support = _best_quote(said, source)
                candidates.append((extracted, extracted is not None and support >= min_support, support))
            for quote, verified, support in candidates:
                if (verified, support) > (best[2], best[3]):
                    best = (n, quote, verified, support)
        citation, quote, verified, _ = best
        if verified and citation is not None and missing_numbers(text, [sources[citation - 1]]):
            # "Der Urlaub beträgt 30 Werktage [1]" shares most words with "... 24 Werktage": not verified.
            verified = False
        if not verified and written:
            quote = written  # what the model claimed to quote, shown as unverified
        claims.append(Claim(text, citation, quote, verified))
    return claims
