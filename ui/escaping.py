"""Plain text inside Markdown: file names, passages and reasons are shown, never interpreted.

``st.markdown`` would otherwise read a file name like ``<img src=x>.pdf`` or ``[a](javascript:x).md``
as markup. CommonMark lets a backslash escape any ASCII punctuation, which covers HTML, links, images,
emphasis, Streamlit's ``:color[...]`` directives and ``$`` maths.
"""

from __future__ import annotations

import re
import string
import unicodedata
from functools import lru_cache

from rag.claims import LINE_HYPHEN, QUOTE_CHARS, find_quote, normalise_quote

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def escape_markdown(text: str) -> str:
    """``text`` as Markdown that renders literally: punctuation escaped, control characters removed."""
    return _PUNCTUATION.sub(r"\\\1", _CONTROL.sub("", text))


def escape_inline(text: str) -> str:
    """Like :func:`escape_markdown`, on one line (for labels, list items and table cells)."""
    return escape_markdown(" ".join(text.split()))


def quote(text: str, limit: int = 1500) -> str:
    """A Markdown block quote of ``text`` shown literally, cut at ``limit`` characters."""
    return quote_highlighted(text, [], limit)


def quote_highlighted(text: str, highlights: list[str], limit: int = 1500) -> str:
    """:func:`quote` with each of ``highlights`` (verbatim parts of ``text``) in bold.

    A highlight is found however the passage wraps it over lines, and one cut short with "…" by the part
    before the "…". When the passage is longer than ``limit`` and its first highlight lies past the cut,
    the part of the passage around that highlight is shown instead of the beginning.
    """
    text = "\n".join(text.strip().splitlines())  # form feeds and other breaks from PDFs become "\n"
    if len(text) > limit:
        start = 0
        first = min((span for h in highlights if (span := _find(text, h))), default=None)
        if first is not None and first[1] > limit:
            # Some context before the quote, at a word break; never so much that the quote's end is cut.
            start = max(first[0] - limit // 4, first[1] - limit, 0)
            word = _WORD_START.search(text, start)
            start = min(word.start(), first[0]) if word else first[0]
        end = start + limit
        text = ("… " if start else "") + text[start:end].strip() + (" …" if end < len(text) else "")
    spans = sorted({_whole_words(text, span) for h in highlights if (span := _find(text, h))})
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue  # overlapping quotes: the first one is marked
        out.append(escape_markdown(text[pos:start]))
        out.append(_bold(text[start:end]))
        pos = end
    out.append(escape_markdown(text[pos:]))
    # Indentation is dropped: four leading spaces would turn a line into a code block.
    lines = [line.lstrip() for line in "".join(out).splitlines()] or [""]
    # Two trailing spaces keep the passage's line breaks (lists, table rows) inside the quote.
    return "\n".join(f"> {line}  " if line.strip() else ">" for line in lines)


_CUT = re.compile(r"\s*…$")
_WORD_START = re.compile(r"(?<=\s)\S")


def _whole_words(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """``span`` widened to whitespace on both sides: a ``**`` between a letter and punctuation
    ("Werktage.**Danach") neither opens nor closes bold in CommonMark."""
    start, end = span
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


def _find(text: str, highlight: str) -> tuple[int, int] | None:
    """Where ``highlight`` stands in ``text``, compared as the claim check compares quotes
    (:func:`~rag.claims.normalise_quote`: any whitespace, words hyphenated over a line, ligatures,
    quotation marks and case); a quote cut with "…" is found by the part before it."""
    cut = bool(_CUT.search(highlight))
    wanted = normalise_quote(_CUT.sub("", highlight))
    if not wanted:
        return None
    folded, origin = _normalised(text)
    at = find_quote(wanted, folded, cut=cut)
    if at >= 0:
        return origin[at], origin[at + len(wanted) - 1] + 1
    # A quote picked from the passage reads its line breaks as spaces ("Werk- tage"), where the normal
    # form joins the word: it stands in the passage as written, any whitespace for any other.
    words = _CUT.sub("", highlight).split()
    before = r"(?<![^\W\d_])" if words[0][0].isalpha() else ""
    after = r"(?![^\W\d_])" if words[-1][-1].isalpha() and not cut else ""
    match = re.search(before + r"\s+".join(map(re.escape, words)) + after, text)
    return (match.start(), match.end()) if match else None


@lru_cache(maxsize=64)  # a passage is searched once per quote, and again on every rerun of the page
def _normalised(text: str) -> tuple[str, tuple[int, ...]]:
    """``text`` in :func:`~rag.claims.normalise_quote`'s form, with the index in ``text`` of each of its
    characters (a ligature or "ß" becomes two characters of one origin), step by step as it does."""
    # NFKC, a letter with its combining marks at a time (so they compose), soft hyphens dropped.
    chars: list[str] = []
    origin: list[int] = []
    i = 0
    while i < len(text):
        j = i + 1
        # Combining marks, and whatever else composes with what came before (Hangul jamo).
        while j < len(text) and (
            unicodedata.combining(text[j])
            or len(unicodedata.normalize("NFC", text[i : j + 1])) <= len(unicodedata.normalize("NFC", text[i:j]))
        ):
            j += 1
        for part in unicodedata.normalize("NFKC", text[i:j]).replace("\u00ad", ""):
            chars.append(part)
            origin.append(i)
        i = j
    nfkc = "".join(chars)
    joined = {k for m in LINE_HYPHEN.finditer(nfkc) for k in range(m.start(), m.end())}
    folded: list[str] = []
    folded_origin: list[int] = []
    for k, char in enumerate(nfkc):
        if k in joined:
            continue
        for part in char.translate(QUOTE_CHARS).casefold():
            if part.isspace():
                if not folded or folded[-1] == " ":
                    continue
                part = " "
            folded.append(part)
            folded_origin.append(origin[k])
    return "".join(folded), tuple(folded_origin)


def _bold(part: str) -> str:
    """``part`` in bold, line by line: emphasis cannot span the lines of a block quote, and a ``**`` next
    to a space would not open or close it."""
    lines = []
    for line in part.split("\n"):
        core = line.strip()
        if not core:
            lines.append(line)
            continue
        lead, trail = line[: len(line) - len(line.lstrip())], line[len(line.rstrip()) :]
        lines.append(f"{lead}**{escape_markdown(core)}**{trail}")
    return "\n".join(lines)
