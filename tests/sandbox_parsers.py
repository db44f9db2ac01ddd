"""Parsers that misbehave on purpose, for the sandbox tests; module-level so the child can import them.

Each behaves like :func:`ingest.parsing.parse_file` unless the file's name contains its trigger word.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ingest.parsing import Element, ParsedDocument, parse_file


def _doc(path: Path, text: str) -> ParsedDocument:
    return ParsedDocument(path, path.stem, "txt", "page", [Element(text, "text", None, None)])


def whoami(path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None) -> ParsedDocument:
    """A document whose text is the parsing process's pid."""
    return _doc(path, f"pid {os.getpid()}")


def misbehaving(
    path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
) -> ParsedDocument:
    """Hangs, spins, crashes, exits, blows up its memory or floods the reply, by the file's name."""
    name = path.name
    if "hang" in name:
        time.sleep(3600)
    if "spin" in name:
        while True:
            pass
    if "segfault" in name:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "abort" in name:
        os.abort()
    if "exit" in name:
        os._exit(3)
    if "blowup" in name:
        hog = []
        while True:
            hog.append(bytearray(512 * 1024 * 1024))
    if "flood" in name:
        return _doc(path, "Wort " * 2_000_000)
    if "chatty" in name:
        print("parser noise on stdout " * 1000)
        os.write(1, b"raw noise on fd 1\n")
    if "phones-home" in name:
        import socket

        with socket.socket() as sock, __import__("contextlib").suppress(OSError):
            sock.settimeout(0.2)
            sock.connect(("192.0.2.10", 9))
    if "raises" in name:
        raise RuntimeError("the parser library failed\nwith a second line")
    return parse_file(path, max_pdf_pages=max_pdf_pages, ocr_languages=ocr_languages)



def waits_for_embedding(
    path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
) -> ParsedDocument:
    """For a file named ``*last*``: waits up to 10 s for ``embedding-now`` beside it (an embedder at
    work), and writes into ``<name>.parsed`` whether it saw one."""
    if "last" in path.name:
        flag = path.with_name("embedding-now")
        deadline = time.monotonic() + 10
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        path.with_name(path.name + ".parsed").write_text("during" if flag.exists() else "alone")
    return parse_file(path, max_pdf_pages=max_pdf_pages, ocr_languages=ocr_languages)
