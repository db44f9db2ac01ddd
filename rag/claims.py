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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.citations import MARKER, SENTENCE_END
from rag.numbers import missing_numbers
from rag.text import keyword_terms

# "... Werktage. [1]": a marker after the full stop belongs to the sentence before it.
_TRAILING_MARKERS = re.compile(r"(?<!\.)([.!?])((?:\s*\[\d{1,3}\](?!\())+)")
# A move needs more than a verification: most of the claim's terms in one sentence of the new source,
# well ahead of the rest (measured on XQuAD answers: most moves then land on the source with the answer).
_MOVE_SUPPORT = 0.75
_MOVE_MARGIN = 0.2
_INLINE_QUOTE = re.compile(r"[„\"“»]([^„\"“”»«]{12,400})[“”\"«]")
QUOTE_CHARS = str.maketrans({c: '"' for c in "„“”«»‚‘’'"})
"""Every kind of quotation mark, mapped to one (how quotes are compared)."""
LINE_HYPHEN = re.compile(r"(?<=\w)-[^\S\n]*\n\s*(?=\w)")
"""A word hyphenated across a line ("Werk-\\ntage"): removed, the word is whole again."""
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
    text = LINE_HYPHEN.sub("", text)
    return " ".join(text.translate(QUOTE_CHARS).split()).casefold()


# A full stop that ends no sentence: "am 1. März", "S. 12", "Abs. 2", "Nr. 5", "z. B. 3", "2. Die …" in a list.
_DAY_END = re.compile(r"\b\d{1,2}\.$")
_MONTH_START = re.compile(r"(?:Jan|Feb|Mär|Mar|Apr|Mai|May|Jun|Jul|Aug|Sep|Okt|Oct|Nov|Dez|Dec)[a-zä]*\b")
_ENUMERATOR = re.compile(r"\d{1,3}\.")  # "1." of a numbered list: its item follows
# A list item's mark is not part of its claim (nor a number it states): "- …", "2. …", but not "3. März".
_BULLET = re.compile(r"^(?:[-*+•]|\d{1,3}\.(?!\s*" + _MONTH_START.pattern + r"))(?:\s+|$)")
_ABBREVIATION_END = re.compile(r"\b(?:S|Abs|Nr|Art|Ziff|Kap|Bd|Tz|Rn|vgl|ca|z\.\s?B)\.$", re.IGNORECASE)


def _continues(previous: str, piece: str) -> bool:
    return bool(
        _ENUMERATOR.fullmatch(previous.strip())
        or (_DAY_END.search(previous) and _MONTH_START.match(piece))
        or (_ABBREVIATION_END.search(previous) and piece[:1].isdigit())
    )


def sentence_spans(text: str, *, lines: bool = False) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, in order, whitespace around it left out.

    With ``lines`` a line break also ends a sentence (an answer's list items); without, it is a space
    (a source's text wraps lines mid-sentence).
    """
    flat = text.replace("\n", " ")
    segments = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)] if lines else [(0, len(text))]
    spans: list[tuple[int, int]] = []
    for first, stop in segments:
        start, mine = first, len(spans)
        ends = [(m.start(), m.end()) for m in SENTENCE_END.finditer(flat, first, stop)] + [(stop, stop)]
        for end, after in ends:
            piece = flat[start:end]
            if len(spans) > mine and _continues(flat[spans[-1][0]:spans[-1][1]], piece):
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
            start = after
    trimmed = []
    for start, end in spans:
        piece = flat[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            trimmed.append((start + lead, start + len(piece.rstrip())))
    return trimmed


def split_sentences(text: str, *, lines: bool = False) -> list[str]:
    """Sentences of an answer or a source, in order (blank ones left out); ``lines`` as for
    :func:`sentence_spans`."""
    flat = text.replace("\n", " ")
    return [flat[start:end] for start, end in sentence_spans(text, lines=lines)]


def _markers_before_stop(text: str) -> str:
    """"… Werktage. [1]" becomes "… Werktage [1].": a marker after the full stop belongs to the
    sentence before it (whitespace before it, a line break too, becomes one space)."""
    return _TRAILING_MARKERS.sub(lambda m: " " + " ".join(m.group(2).split()) + m.group(1), text)


def _support(claim_terms: set[str], quote: str) -> float:
    if not claim_terms:
        return 0.0
    return len(claim_terms & set(keyword_terms(quote))) / len(claim_terms)


# Rows of a table as the parsers write them: blank lines between rows, or Markdown "| … |" lines.
_TABLE_ROWS = re.compile(r"\n[ \t]*\n|\n[ \t]*\|")


def _quote_candidates(source: str) -> Iterator[str]:
    """Each sentence of ``source``; a long table's rows first (rows end without a full stop, so a
    table runs together as one "sentence", and the row is the quote). A long sentence merely wrapped
    over lines stays whole: a line of it could drop a qualifier on the next one."""
    flat = source.replace("\n", " ")
    for start, end in sentence_spans(source):
        if end - start > _MAX_QUOTE_CHARS and _TABLE_ROWS.search(source[start:end]):
            yield from split_sentences(source[start:end], lines=True)
        yield flat[start:end]


def _best_quote(claim_terms: set[str], source: str) -> tuple[str | None, float]:
    best, best_support = None, 0.0
    for sentence in _quote_candidates(source):
        support = _support(claim_terms, sentence)
        if support > best_support:
            best, best_support = sentence, support
    if best is not None and len(best) > _MAX_QUOTE_CHARS:
        best = best[:_MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
    return best, best_support


def find_quote(wanted: str, text: str, *, cut: bool = False) -> int:
    """Where ``wanted`` stands in ``text`` (both :func:`normalise_quote`-d) as whole words, or -1: "zulässig
    ohne Zustimmung" is not found in "unzulässig ohne Zustimmung", which says the opposite. A quote
    ``cut`` short ("…") may end inside a word."""
    if not wanted:
        return -1
    # Only a letter must not continue a letter, nor a digit a number: "Zustimmung¹" (a footnote),
    # "24Werktage" and "Werktage.Danach" still hold their quotes, "1" is not found in "1.000".
    before = {"letter": r"(?<![^\W\d_])", "digit": r"(?<![\d.,])"}.get(_kind(wanted[0]), "")
    after = {"letter": r"(?![^\W\d_])", "digit": r"(?!\d|[.,]\d)"}.get(_kind(wanted[-1]), "")
    match = re.search(before + re.escape(wanted) + ("" if cut else after), text)
    return match.start() if match else -1


def _kind(char: str) -> str:
    return "digit" if char.isdigit() else "letter" if char.isalpha() else "other"


def _context(quote: str, source: str) -> str | None:
    """The sentences of ``source`` the quote stands in, with the quote; None when it is not there verbatim."""
    wanted = normalise_quote(quote)
    if find_quote(wanted, normalise_quote(source)) < 0:
        return None
    around = []
    for sentence in split_sentences(source):
        normalised = normalise_quote(sentence)
        if find_quote(wanted, normalised) >= 0 or normalised in wanted:
            around.append(sentence)
    return " ".join([quote, *around])


@dataclass(frozen=True)
class _Reading:
    """What a claim says, as the check needs it."""

    text: str
    said: set[str]
    """The terms a quote must support: the claim's, or with an inline quote, those outside it."""
    written: str | None
    """The quote the model wrote inline, if any."""
    short: bool
    """Little more than its inline quote: found quote plus any number stated outside it verify it."""


def _read(text: str) -> _Reading:
    terms = set(keyword_terms(text, drop_stop_words=True))
    inline = _INLINE_QUOTE.search(text)
    if inline is None:
        return _Reading(text, terms, None, False)
    # With a quote written into the claim, the claim's words outside it are what must be supported:
    # a model copying any sentence of the source does not verify an unrelated claim. A claim that is
    # little more than its quote ("Es heißt: „…“") is verified by finding the quote, but any number
    # it states outside the quote must be there too ("Es sind 30 Tage [1] „… 24 Werktage“" is not).
    outside = set(keyword_terms(text[: inline.start()] + text[inline.end():], drop_stop_words=True))
    return _Reading(text, outside, inline.group(1).strip(), len(outside) < _MIN_CLAIM_TERMS)


def _check(claim: _Reading, source: str, min_support: float) -> tuple[str | None, bool, float]:
    """The best quote for ``claim`` from ``source``, whether it verifies the claim, and its support."""
    best: tuple[str | None, bool, float] = (None, False, 0.0)
    candidates: list[tuple[str | None, bool, float]] = []
    if claim.written:
        context = _context(claim.written, source)
        if context is None:
            support = 0.0
        elif claim.short:
            stated = {t for t in claim.said if any(c.isdigit() for c in t)}
            support = 1.0 if stated <= set(keyword_terms(context)) else 0.0
        else:
            support = _support(claim.said, context)
        candidates.append((claim.written, context is not None and support >= min_support, support))
    if not claim.short:  # a short claim has nothing of its own to find a sentence for
        extracted, support = _best_quote(claim.said, source)
        candidates.append((extracted, extracted is not None and support >= min_support, support))
    for quote, verified, support in candidates:
        if (verified, support) > (best[1], best[2]):
            best = (quote, verified, support)
    found, verified, support = best
    if verified and missing_numbers(claim.text, [source]):
        # "Der Urlaub beträgt 30 Werktage [1]" shares most words with "... 24 Werktage": not verified.
        verified = False
    return found, verified, support


def _claim_text(sentence: str) -> str:
    """The sentence without its markers and list mark; empty when nothing is left to claim."""
    text = _BULLET.sub("", MARKER.sub("", sentence).strip())
    return text if re.search(r"\w", text) else ""


def cited_numbers(text: str, n_sources: int) -> list[int]:
    """The source numbers ``text`` cites as ``[n]`` (1..``n_sources``; not a link "[n](url)"), in order."""
    return list(dict.fromkeys(int(n) for n in MARKER.findall(text) if 1 <= int(n) <= n_sources))


def extract_claims(answer: str, sources: Sequence[str], *, min_support: float = 0.5) -> list[Claim]:
    """Split ``answer`` (markers already normalised to ``[n]``) into claims with checked quotes.

    ``sources[n - 1]`` is the text of source n. Citation numbers no source has are dropped.
    """
    claims = []
    for sentence in split_sentences(_markers_before_stop(answer), lines=True):
        numbers = cited_numbers(sentence, len(sources))
        text = _claim_text(sentence)
        if not text:
            continue
        claim = _read(text)
        best: tuple[int | None, str | None, bool, float] = (numbers[0] if numbers else None, claim.written, False, 0.0)
        for n in numbers:
            quote, verified, support = _check(claim, sources[n - 1], min_support)
            if (verified, support) > (best[2], best[3]):
                best = (n, quote, verified, support)
        citation, quote, verified, _ = best
        if not verified and claim.written:
            quote = claim.written  # what the model claimed to quote, shown as unverified
        claims.append(Claim(text, citation, quote, verified))
    return claims


@dataclass(frozen=True)
class CitationFix:
    """A sentence whose citation pointed at sources that do not say it, moved to those that do."""

    sentence: str
    """The sentence, without markers."""
    cited: tuple[int, ...]
    """The source numbers the model wrote."""
    sources: tuple[int, ...]
    """The source numbers it cites now (several when they say it equally well)."""

    def to_dict(self) -> dict[str, object]:
        return {"sentence": self.sentence, "cited": list(self.cited), "sources": list(self.sources)}


def fix_citations(answer: str, sources: Sequence[str], *, min_support: float = 0.5) -> tuple[str, list[CitationFix]]:
    """Re-point each cited sentence that none of its cited sources verifies to the sources that do.

    Small models often cite a neighbour of the source that holds the value ("12,41 € [3]" where sources
    1 and 2 have 12,41). A sentence moves only when another source verifies it as :func:`extract_claims`
    would (quote found, every number it states) from a sentence holding at least three quarters of the
    claim's terms (``_MOVE_SUPPORT``), with a lead of ``_MOVE_MARGIN`` over the cited sources and every
    other one (sources that say it equally well are all cited), and only when the sentence has at least
    ``_MIN_CLAIM_TERMS`` terms to tell sources apart; otherwise it keeps its citation and is shown
    unverified. Uncited sentences are left to :func:`rag.citations.attribute_uncited`.

    Returns the answer with the markers of moved sentences replaced (and a marker after a full stop
    moved before it, as in the claims), or ``answer`` unchanged when nothing moved; and what moved.
    """
    text = _markers_before_stop(answer)
    fixes: list[CitationFix] = []
    out, last = [], 0
    for start, end in sentence_spans(text, lines=True):
        sentence = text[start:end]
        numbers = cited_numbers(sentence, len(sources))
        claim_text = _claim_text(sentence)
        if not numbers or not claim_text:
            continue
        claim = _read(claim_text)
        if len(claim.said) < _MIN_CLAIM_TERMS:
            continue  # "Hausordnung [2]" in a list of references: too little to tell sources apart
        # Most sentences are said by a source they cite: only then is every other source checked.
        checked = {n: _check(claim, sources[n - 1], min_support) for n in numbers}
        if any(ok for _, ok, _ in checked.values()):
            continue
        checked |= {n: _check(claim, source, min_support) for n, source in enumerate(sources, 1) if n not in checked}
        verified = {n: support for n, (_, ok, support) in checked.items() if ok and n not in numbers}
        if not verified:
            continue
        best = max(verified.values())
        # Every source that says it best is cited (the same text in two documents, a table and its copy).
        winners = tuple(n for n in sorted(verified) if verified[n] >= best - 1e-9)
        # Only a clear lead over what the model cited and over every other source.
        rivals = [support for n, (_, _, support) in checked.items() if n not in winners]
        if best < _MOVE_SUPPORT or best - max(rivals, default=0.0) < _MOVE_MARGIN - 1e-9:
            continue
        # The first marker becomes the new ones (its spacing kept), the others go.
        first = MARKER.search(sentence)
        assert first is not None  # the sentence cites a source
        spacing = first.group(0)[: first.group(0).index("[")]
        new_markers = spacing + "".join(f"[{n}]" for n in winners)
        fixed = sentence[: first.start()] + new_markers + MARKER.sub("", sentence[first.end() :])
        out += [text[last:start], fixed]
        last = end
        fixes.append(CitationFix(claim_text, tuple(numbers), winners))
    if not fixes:
        return answer, fixes
    out.append(text[last:])
    return "".join(out), fixes
