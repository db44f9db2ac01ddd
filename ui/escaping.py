"""Plain text inside Markdown: file names, passages and reasons are shown, never interpreted.

``st.markdown`` would otherwise read a file name like ``<img src=x>.pdf`` or ``[a](javascript:x).md``
as markup. CommonMark lets a backslash escape any ASCII punctuation, which covers HTML, links, images,
emphasis, Streamlit's ``:color[...]`` directives and ``$`` maths.
"""

from __future__ import annotations

import re
import string

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
    """:func:`quote` with each of ``highlights`` (verbatim parts of ``text`` on one line) in bold."""
    text = text.strip()
    if len(text) > limit:
        text = text[:limit].rstrip() + " …"
    # Line breaks of every kind (form feeds from PDFs too) become "\n" before escaping drops controls.
    text = "\n".join(text.splitlines())
    spans = sorted(
        {(at, at + len(h)) for h in highlights if h and "\n" not in h and (at := text.find(h)) >= 0}
    )
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue  # overlapping quotes: the first one is marked
        out.append(escape_markdown(text[pos:start]))
        out.append(f"**{escape_markdown(text[start:end])}**")
        pos = end
    out.append(escape_markdown(text[pos:]))
    lines = "".join(out).splitlines() or [""]
    # Two trailing spaces keep the passage's line breaks (lists, table rows) inside the quote.
    return "\n".join(f"> {line}  " if line.strip() else ">" for line in lines)
