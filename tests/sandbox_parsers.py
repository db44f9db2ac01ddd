"""Parsers that misbehave on purpose, for the sandbox tests; module-level so the child can import them.

Each behaves like :func:`ingest.parsing.parse_file` unless the file's name contains its trigger word.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ingest.parsing import Element, ParsedDocument, parse_file
from rag.errors import DocumentError


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


def _wait_for(flag: Path, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return flag.exists()


def two_parts(
    path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
) -> Iterator[ParsedDocument]:
    """A document in two parts, the second only once ``<stem>.go`` exists beside the file (up to 30 s);
    ``fails`` in the name: an error instead of the second part."""
    yield _doc(path, "Seite eins: Der Urlaub beträgt 24 Werktage.")
    _wait_for(path.with_suffix(".go"))
    if "fails" in path.name:
        raise DocumentError(str(path), "page 2 is damaged")
    yield replace(_doc(path, "Seite zwei: Die Kündigungsfrist beträgt vier Wochen."), title="Zwei Seiten")


def _sections(first: int, count: int, page: int) -> list[Element]:
    elements = []
    for n in range(first, first + count):
        heading = f"§ {n} Regel {n}"
        elements.append(Element(heading, "title", page, heading))
        text = f"Regel {n}: Der Antrag Nummer {n} ist binnen {n} Tagen zu stellen."
        elements.append(Element(text, "text", page, heading))
    return elements


def waits_for_its_first_pages_embedded(
    path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
) -> Iterator[ParsedDocument]:
    """A long document: 80 sections on page 1, then (once ``embedded`` exists beside the file, which an
    embedder at work writes, or after 30 s) 10 more on page 2. Writes into ``<name>.parsed`` whether page
    1 was embedded before page 2 was read; ``fails`` in the name: an error instead of page 2."""
    yield ParsedDocument(path, path.stem, "txt", "page", _sections(1, 80, 1))
    embedded = _wait_for(path.with_name("embedded"))
    path.with_name(path.name + ".parsed").write_text("during" if embedded else "after")
    if "fails" in path.name:
        raise DocumentError(str(path), "page 2 is damaged")
    yield ParsedDocument(path, "Ein langes Regelwerk", "txt", "page", _sections(81, 10, 2))


def speaks_out_of_turn(
    path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
) -> ParsedDocument:
    """For a file named ``*forger*``: answers, then (0.2 s later, the child idle) writes a forged part on
    the reply pipe, as a compromised child could, hoping it is taken for the next file's."""
    if "forger" in path.name:
        import gc
        import io
        import json
        import stat
        import threading

        pipe = next(
            o for o in gc.get_objects()
            if isinstance(o, io.BufferedWriter) and not o.closed and o.fileno() > 2
            and stat.S_ISFIFO(os.fstat(o.fileno()).st_mode)
        )
        forged = {"title": "Gefälscht", "kind": "txt", "page_label": "page", "metadata": {},
                  "elements": [["GEFÄLSCHT: Das Gehalt der Geschäftsführung", "text", None, None]]}

        def forge() -> None:
            time.sleep(0.2)
            pipe.write(json.dumps({"part": forged}).encode() + b"\n")
            pipe.flush()

        threading.Thread(target=forge).start()
    return parse_file(path, max_pdf_pages=max_pdf_pages, ocr_languages=ocr_languages)
