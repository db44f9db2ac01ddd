"""Turn one file into text elements in reading order, with page numbers and section headings.

PDFs are read with pypdfium2 (exact pages, fast); Markdown, plain text, CSV, XLSX, HTML and e-mail with
small parsers of our own (faster than unstructured and they keep list numbers, table headers and front
matter); DOCX, PPTX and Outlook MSG through unstructured's ``fast`` partitioners. Every failure becomes a
:class:`~rag.errors.DocumentError` whose reason is plain words.
"""

from __future__ import annotations

import csv
import datetime as dt
import email
import io
import itertools
import os
import re
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from rag.errors import DocumentError

SUPPORTED_KINDS: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".eml": "eml",
    ".msg": "msg",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".tif": "image",
    ".tiff": "image",
}
_PAGE_LABELS = {"pptx": "slide", "xlsx": "sheet"}


@dataclass(frozen=True)
class Element:
    """One block of text in reading order.

    Attributes:
        text: The block's text, whitespace-normalised, never empty.
        kind: ``"title"``, ``"text"``, ``"list"``, ``"table"`` or ``"code"``.
        page: 1-based page, slide or sheet number where the format has one.
        heading: The nearest section heading above (a ``"title"`` element's heading is its own text).
    """

    text: str
    kind: str
    page: int | None
    heading: str | None


@dataclass(frozen=True)
class ParsedDocument:
    """A file's text as elements, with what the index shows about the file."""

    path: Path
    title: str
    kind: str
    page_label: str
    elements: list[Element]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class _Parsed:
    elements: list[Element]
    title: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def parse_file(
    path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
) -> ParsedDocument:
    """Extract the text of ``path`` as elements in reading order.

    Args:
        path: A file whose extension is a key of :data:`SUPPORTED_KINDS`.
        max_pdf_pages: Refuse PDFs with more pages than this (None: no limit).
        ocr_languages: Tesseract languages (``"deu+eng"``) for PDF pages without a text layer and for
            image files; None turns OCR off (such pages are then skipped, such files refused).

    Returns:
        The parsed document; its ``title`` falls back to the file stem.

    Raises:
        DocumentError: the type is unsupported, the file is empty, damaged, password-protected, has no
            text layer, or no text could be found. ``reason`` is plain words.
    """
    return merge_parts(stream_file(path, max_pdf_pages=max_pdf_pages, ocr_languages=ocr_languages))


def stream_file(
    path: Path, *, max_pdf_pages: int | None = None, ocr_languages: str | None = None
) -> Iterator[ParsedDocument]:
    """:func:`parse_file` in parts, so that a large file's first pages can be chunked and embedded while
    the rest is still being read.

    PDFs and images come page by page, each page as soon as it is final (a PDF page waits for the
    ``_RUNNING_WINDOW`` pages after it, whose edges show its running headers), then a last part without
    elements; other files come as one part. Each part holds the next elements; the last part's ``title``
    and ``metadata`` are the document's (earlier parts carry the file stem and none). :func:`merge_parts`
    joins them.

    Raises:
        DocumentError: as :func:`parse_file`, possibly after some parts were yielded; those parts are
            then not a document and must be dropped.
    """
    path = Path(path)
    kind = SUPPORTED_KINDS.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(str(path), f"unsupported file type '{path.suffix or path.name}'")

    def part(elements: list[Element], parsed: _Parsed | None = None) -> ParsedDocument:
        title = " ".join(((parsed.title if parsed else None) or "").split()) or path.stem
        return ParsedDocument(
            path=path, title=title, kind=kind, page_label=_PAGE_LABELS.get(kind, "page"), elements=elements,
            metadata=parsed.metadata if parsed else {},
        )

    found = False
    try:
        if path.stat().st_size == 0:
            raise DocumentError(str(path), "the file is empty")
        if kind == "pdf" and max_pdf_pages is not None:
            _check_pdf_pages(path, max_pdf_pages)
        if kind not in ("pdf", "image"):
            parsed = _PARSERS[kind](path)
            elements = [e for e in parsed.elements if e.text.strip()]
            if not elements:
                raise DocumentError(str(path), "no text found")
            yield part(elements, parsed)
            return
        last = _Parsed([])
        for last in _stream_pdf(path, ocr_languages) if kind == "pdf" else _stream_image(path, ocr_languages):
            elements = [e for e in last.elements if e.text.strip()]
            if elements:
                found = True
                yield part(elements)
    except DocumentError:
        raise
    except OSError as e:
        raise DocumentError(str(path), f"cannot read the file ({e.strerror or type(e).__name__})") from e
    except Exception as e:
        raise DocumentError(str(path), f"damaged or unreadable {kind.upper()} file ({_describe(e)})") from e
    if not found:
        raise DocumentError(str(path), "no text found")
    yield part([], last)


def merge_parts(parts: Iterable[ParsedDocument]) -> ParsedDocument:
    """One document from the parts :func:`stream_file` yields: their elements in order, the last part's
    title and metadata.

    Raises:
        ValueError: there are no parts.
    """
    elements: list[Element] = []
    last: ParsedDocument | None = None
    for last in parts:
        elements.extend(last.elements)
    if last is None:
        raise ValueError("no parts to merge")
    return replace(last, elements=elements)


def _describe(error: Exception) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    return f"{name}: {message[:200]}" if message else name


# -- text helpers --------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufeff\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u3000]+")
_BULLET = re.compile(r"^\s*(?:[-*+•◦▪‣–]|\d{1,3}[.)]|[a-zA-Z][.)]|\(\d{1,3}[a-z]?\))\s+")
_SYMBOL_BULLET = re.compile(r"^\s*[-*+•◦▪‣–]\s+")


def _canonical(text: str) -> str:
    """NFC, no soft hyphens, ``\n`` line breaks."""
    return unicodedata.normalize("NFC", text).replace("\u00ad", "").replace("\r\n", "\n").replace("\r", "\n")


def _normalize(text: str) -> str:
    """NFC, no control characters or soft hyphens, single spaces, no blank lines inside."""
    text = _canonical(text)
    lines = (_SPACES.sub(" ", _CONTROL.sub(" ", line)).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _join_lines(lines: Sequence[str]) -> str:
    """Join hard-wrapped lines with spaces, keeping a line break before each list item.

    A wrapped line may start with "31. Dezember": a numbered marker only starts an item inside a list or
    after a line that ended a clause.
    """
    out = ""
    in_list = False
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if not out:
            out, in_list = line, bool(_BULLET.match(line))
        elif _SYMBOL_BULLET.match(line) or (
            _BULLET.match(line) and (in_list or out.endswith((".", ",", ";", ":", "!", "?", ")")))
        ):
            out, in_list = out + "\n" + line, True
        else:
            out += " " + line
    return out


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise DocumentError(str(path), "this looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy German files are mostly Windows-1252; replacement keeps a stray byte from failing a file.
        return data.decode("cp1252", errors="replace")


def _paragraph_elements(text: str) -> list[Element]:
    """Blank-line-separated paragraphs of plain text as elements."""
    elements = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        joined = _normalize(_join_lines(block.split("\n")))
        if joined:
            elements.append(Element(joined, "list" if _BULLET.match(joined) else "text", None, None))
    return elements


# -- tables (CSV, XLSX, tables inside DOCX/HTML) ---------------------------------------------------------


def _row_texts(rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows as ``"Header: value; Header: value"`` lines, so that every row reads on its own.

    The first row with at least two filled cells is the header when none of its cells is a number.
    A row with a single filled cell is kept as plain text.
    """
    header: list[str] | None = None
    header_used = False
    out = []
    for raw in rows:
        cells = [_normalize(c).replace("\n", " ") for c in raw]
        filled = [c for c in cells if c]
        if not filled:
            continue
        if header is None and len(filled) >= 2 and not any(_looks_numeric(c) for c in filled):
            header = cells
            continue
        if len(filled) == 1 or header is None:
            out.append("; ".join(filled))
            continue
        header_used = True
        parts = []
        for i, cell in enumerate(cells):
            if not cell:
                continue
            label = header[i] if i < len(header) and header[i] else ""
            parts.append(f"{label}: {cell}" if label else cell)
        out.append("; ".join(parts))
    if header is not None and not header_used:  # a header row with no rows under it is text too
        out.append("; ".join(c for c in header if c))
    return out


def _looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,]+ ?[%€$]?", text.strip()))


class _TableHTML(HTMLParser):
    """Collects the cell texts of ``<tr>`` rows from a table's HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


# -- HTML ---------------------------------------------------------------------------------------------

# Never text: code, styles, embedded graphics, the <head> (its <title> is read apart), and page chrome:
# navigation menus and form controls (unstructured drops these too).
_HTML_HIDDEN = frozenset(
    "script style template svg math iframe object select head nav button textarea label audio video noframes "
    "plaintext".split()
)
# Tags that end the running block of text: each block becomes one element.
_HTML_BLOCKS = frozenset(
    "p div section article main header footer aside ul ol dl dt dd blockquote form fieldset figure "
    "figcaption address hr details summary caption center body html legend hgroup dialog menu listing xmp tr "
    "td th".split()
)
# Elements whose text has a kind of its own until they end, whatever blocks they contain.
_HTML_HEADINGS = frozenset(f"h{n}" for n in range(1, 7))
_HTML_CONTAINERS = {"li": "list", "pre": "code", **dict.fromkeys(_HTML_HEADINGS, "title")}
# A <br> inside a block, kept apart from the source's own line breaks (which are only spaces in HTML).
_HTML_BREAK = "\u2028"
# libxml2 ends the document at </html>: text after it (two pages pasted together) would be lost.
_HTML_END = re.compile(r"</html\s*>", re.IGNORECASE)
_MAX_SPAN = 100


def _span(value: str | None) -> int:
    """A ``colspan``/``rowspan`` attribute as a count (1 when missing or odd; at most ``_MAX_SPAN``)."""
    value = (value or "").strip()
    return min(int(value), _MAX_SPAN) if value.isdigit() and int(value) > 0 else 1


class _PageHTML:
    """An HTML page as elements: headings as titles, list items, tables (row by row), ``<pre>`` as code,
    every other run of text up to a block boundary as one paragraph.

    libxml2's HTML parser (through lxml) builds the tree, closing what pages leave open (``</head>``,
    ``</p>``, ``</td>``) as browsers do, in linear time on any input; a walk over it collects the text.
    The same text as unstructured's ``partition_html`` at a fraction of the time (61 pages: ~30x).
    """

    def __init__(self) -> None:
        self.elements: list[Element] = []
        self.page_title = ""
        self._heading: str | None = None
        self._hidden = 0  # depth inside _HTML_HIDDEN tags
        self._text: list[str] = []
        self._containers: list[tuple[str, str]] = []  # (tag, kind) of open containers, innermost last
        # libxml2 closes a heading before a <p> inside it (<h3><p>Frage</p></h3>): that <p> is the heading.
        self._empty_heading = False
        self._rows: list[list[str]] | None = None  # the open table's rows
        self._cell: list[str] | None = None
        self._span = (1, 1)  # (columns, rows) the open cell spans
        self._next_span = (1, 1)  # ... and the cell being opened
        self._from_above: dict[int, tuple[str, int]] = {}  # column -> (text, rows left) of rowspans
        self._foot: list[list[str]] = []  # <tfoot> rows, which come last whatever their place
        self._in_foot = False
        self._in_row = False
        self._nested = 0  # tables inside the open table's cells: their text joins that cell

    def read(self, html: str) -> None:
        """Collect the elements of ``html`` (a whole page)."""
        from lxml import etree
        from lxml import html as lxml_html

        if not html.strip():
            return
        # Bytes with the encoding given: a str that declares an encoding is refused, and a <meta
        # charset> must not re-decode text that is already decoded. huge_tree: a text node over 10 MB
        # (an inline image) or nesting deeper than 256 would otherwise silently end the page there.
        data = _HTML_END.sub("", html).encode("utf-8", "replace")
        parser = lxml_html.HTMLParser(
            encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True, huge_tree=True
        )
        try:
            root = lxml_html.document_fromstring(data, parser=parser)
        except etree.ParserError:  # nothing but markup without content
            return
        title = root.find("head/title")
        if title is not None:
            self.page_title = " ".join(title.text_content().split())
        for event, node in etree.iterwalk(root, events=("start", "end")):
            tag = node.tag.lower() if isinstance(node.tag, str) else ""
            if event == "start":
                if tag in ("td", "th"):
                    self._next_span = (_span(node.get("colspan")), _span(node.get("rowspan")))
                self._start(tag)
                if node.text:
                    self._data(node.text)
            else:
                self._end(tag)
                if node.tail:
                    self._data(node.tail)
        self._flush()

    def _start(self, tag: str) -> None:
        if tag in _HTML_HIDDEN or self._hidden:
            self._hidden += 1
            return
        empty_heading, self._empty_heading = self._empty_heading, False
        if tag == "br":
            self._data(_HTML_BREAK)
        elif self._rows is not None:
            self._table_tag(tag, start=True)
        elif tag in _HTML_CONTAINERS or (tag == "p" and empty_heading):
            self._flush()
            self._containers.append((tag, _HTML_CONTAINERS.get(tag, "title")))
        elif tag == "table":
            self._flush()
            self._rows = []
        elif tag in _HTML_BLOCKS:
            self._flush()

    def _end(self, tag: str) -> None:
        if self._hidden:
            self._hidden -= 1
            return
        if self._rows is not None:
            self._table_tag(tag, start=False)
        elif self._containers and self._containers[-1][0] == tag:
            count = len(self.elements)
            self._flush()
            self._containers.pop()
            self._empty_heading = tag in _HTML_HEADINGS and len(self.elements) == count
        elif tag in _HTML_BLOCKS:
            self._flush()

    def _data(self, data: str) -> None:
        if self._hidden:
            return
        if data.strip():
            self._empty_heading = False
        if self._rows is None:
            self._text.append(data)
        elif self._cell is not None:
            self._cell.append(data)
        elif data.strip(_HTML_BREAK + " \t\r\n"):
            if self._in_row:  # text between a row's cells is a cell of its own
                self._cell = [data]
            else:  # text between rows, a row of its own
                self._rows.append([" ".join(data.split())])

    def _table_tag(self, tag: str, *, start: bool) -> None:
        """A tag inside an open table: rows and cells, nested tables, any other tag as a space."""
        if tag == "table":
            if start:
                self._nested += 1
            elif self._nested:
                self._nested -= 1
            else:
                self._end_table()
            return
        if tag == "tfoot" and not self._nested:
            self._end_cell()
            self._in_foot = start
            return
        if self._nested or tag not in ("tr", "td", "th"):
            if self._cell is not None:
                # Every tag separates words in a cell, as in unstructured: pages put alternatives in
                # adjacent spans ("<span>Befehl</span><span>Strg</span>") more often than parts of a word.
                self._cell.append(" ")
            return
        self._end_cell()
        if tag == "tr":
            if not start:
                self._fill_from_above()
            self._in_row = start
            if start:
                self._table_rows().append([])
        elif start:
            self._cell, self._span = [], self._next_span

    def _table_rows(self) -> list[list[str]]:
        assert self._rows is not None
        return self._foot if self._in_foot else self._rows

    def _fill_from_above(self) -> None:
        """Put the cells of rowspans from rows above into the current row, where their columns come."""
        rows = self._table_rows()
        if not rows:
            return
        row = rows[-1]
        while len(row) in self._from_above:
            text, left = self._from_above.pop(len(row))
            if left > 1:
                self._from_above[len(row)] = (text, left - 1)
            row.append(text)

    def _end_cell(self) -> None:
        if self._cell is not None and self._rows is not None:
            rows = self._table_rows()
            if not rows:
                rows.append([])
            self._fill_from_above()
            text = " ".join("".join(self._cell).split())
            columns, span_rows = self._span
            # A spanning cell fills each column (and row) it spans, so the cells after it keep their
            # headers.
            if span_rows > 1:
                for column in range(len(rows[-1]), len(rows[-1]) + columns):
                    self._from_above[column] = (text, span_rows - 1)
            rows[-1].extend([text] * columns)
        self._cell, self._span = None, (1, 1)

    def _end_table(self) -> None:
        self._end_cell()
        self._fill_from_above()
        rows = (self._rows or []) + self._foot
        self._rows, self._nested, self._in_row, self._in_foot = None, 0, False, False
        self._foot, self._from_above = [], {}
        text = "\n".join(_row_texts(rows))
        if text:
            self.elements.append(Element(text, "table", None, self._heading))

    def _flush(self) -> None:
        raw, self._text = "".join(self._text), []
        kind = self._containers[-1][1] if self._containers else "text"
        if kind == "code":
            text = _normalize_code(raw.replace(_HTML_BREAK, "\n"))
        else:
            text = _normalize("\n".join(" ".join(line.split()) for line in raw.split(_HTML_BREAK)))
        if not text:
            return
        if kind == "title":
            text = text.replace("\n", " ")
            self._heading = text
        elif kind == "text" and _BULLET.match(text):
            kind = "list"
        self.elements.append(Element(text, kind, None, self._heading))


def _normalize_code(text: str) -> str:
    """Like :func:`_normalize` but keeping each line's indentation (code, ``<pre>`` blocks)."""
    lines = [_CONTROL.sub(" ", line).rstrip() for line in _canonical(text).split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines).rstrip()


def _parse_html(path: Path) -> _Parsed:
    page = _PageHTML()
    page.read(_read_text(path))
    title = next((e.text for e in page.elements if e.kind == "title"), None)
    return _Parsed(page.elements, title or page.page_title or None)


# -- PDF ----------------------------------------------------------------------------------------------

_PDF_TERMINAL = tuple(".!?:")
_NUMBERED_HEADING = re.compile(r"\d{1,2}(?:\.\d{1,2})*\.?\s+[^\W\d_]")
_PAGE_NUMBER = re.compile(r"[-–\s]*(?:seite|page|s\.)?\s*\d+(?:\s*(?:von|of|/)\s*\d+)?[-–\s]*", re.IGNORECASE)


@dataclass(frozen=True)
class _PdfLine:
    text: str
    # pdfium returns symbol-font glyphs (circled numbers, check boxes) as control characters; a line that
    # starts with one starts a new item.
    marker: bool
    # Length of the last physical line: pdfium joins a hyphenated word's two lines into one.
    tail: int
    joined: bool


def _check_pdf_pages(path: Path, limit: int) -> None:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError:
        return  # the parser reports damaged and encrypted files with their own reason
    try:
        if len(pdf) > limit:
            raise DocumentError(str(path), f"too many pages: {len(pdf)} > {limit}")
    finally:
        pdf.close()


def _stream_pdf(path: Path, ocr_languages: str | None = None) -> Iterator[_Parsed]:
    """A PDF's elements page by page (see :func:`stream_file`); the last part has the title and metadata."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise DocumentError(str(path), "password-protected PDF") from e
        raise DocumentError(str(path), "damaged PDF (it cannot be opened)") from e
    running, layout = _RunningLines(), _PdfLayout()
    first_title: str | None = None
    scanned: list[int] = []
    any_lines = False

    def elements_of(pages: list[list[_PdfLine]]) -> list[Element]:
        nonlocal first_title
        elements = [e for lines in pages for e in layout.page(lines)]
        if first_title is None:
            first_title = next((e.text for e in elements if e.kind == "title" and e.page == 1), None)
        return elements

    try:
        info = pdf.get_metadata_dict(skip_empty=True)
        count = len(pdf)
        for index in range(count):
            page = pdf[index]
            try:
                textpage = page.get_textpage()
                try:
                    lines = _pdf_lines(textpage.get_text_range())
                finally:
                    textpage.close()
                if not lines:
                    scanned.append(index + 1)
                    if ocr_languages:
                        lines = _pdf_lines(_ocr_pdf_page(page, ocr_languages, f"{path} (page {index + 1})"))
            finally:
                page.close()
            any_lines = any_lines or bool(lines)
            ready = running.add(lines)
            if ready:
                yield _Parsed(elements_of(ready))
    finally:
        pdf.close()
    if not count:
        raise DocumentError(str(path), "the PDF has no pages")
    if not any_lines:
        if scanned and not ocr_languages:
            raise DocumentError(str(path), "scanned pages without a text layer, and OCR is disabled")
        raise DocumentError(str(path), "no text found (not even by OCR)" if scanned else "no text found")
    elements = elements_of(running.finish())
    metadata = {k.lower(): str(v).strip() for k, v in info.items() if k in ("Author", "Subject", "Keywords")}
    if scanned:
        metadata["ocr_pages" if ocr_languages else "pages_without_text"] = _page_list(scanned)
    title = str(info.get("Title", "")).strip()
    if not _is_real_title(title):
        title = first_title or ""
    yield _Parsed(elements, title, {k: v for k, v in metadata.items() if v})


def _ocr_pdf_page(page: Any, languages: str, where: str) -> str:
    """Render one PDF page at the OCR resolution and read it with tesseract."""
    from ingest.ocr import MAX_PIXELS, RENDER_DPI, recognise

    width, height = page.get_size()
    scale = RENDER_DPI / 72
    if width * height * scale * scale > MAX_PIXELS:
        scale = (MAX_PIXELS / (width * height)) ** 0.5
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        image = bitmap.to_pil()
    finally:
        bitmap.close()
    return recognise(image, languages, where)


def _page_list(pages: Sequence[int]) -> str:
    """``1-3, 7`` for pages 1, 2, 3 and 7."""
    spans: list[list[int]] = []
    for n in pages:
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def _stream_image(path: Path, ocr_languages: str | None) -> Iterator[_Parsed]:
    """An image file (scan or photo of a document): each frame is a page, read by OCR, yielded when read."""
    from ingest.ocr import image_pages, recognise

    if not ocr_languages:
        raise DocumentError(str(path), "an image needs OCR, and OCR is disabled")
    layout = _PdfLayout()
    pages = 0
    for pages, image in enumerate(image_pages(path), start=1):
        yield _Parsed(layout.page(_pdf_lines(recognise(image, ocr_languages, f"{path} (page {pages})"))))
    if not layout.found:
        raise DocumentError(str(path), "no text found (not even by OCR)")
    yield _Parsed([], None, {"ocr_pages": _page_list(range(1, pages + 1))})


def _pdf_lines(raw: str) -> list[_PdfLine]:
    # pdfium marks a hyphen it removed at a line break with U+FFFE and joins the word's two lines.
    text = raw.replace("\ufffe\r\n", "\ufffe").replace("\u00ad\r\n", "\ufffe")
    separator = "\r\n" if "\r\n" in text else "\n"
    lines = []
    for line in text.split(separator):
        segments = [_pdf_clean(segment) for segment in line.split("\ufffe")]
        clean = "".join(segments).strip()
        if clean:
            marker = bool(re.match(r"\s*[\x00-\x08\x0b-\x1f]", line))
            lines.append(_PdfLine(clean, marker, len(segments[-1].strip()), len(segments) > 1))
    return lines


def _pdf_clean(text: str) -> str:
    text = _SPACES.sub(" ", _CONTROL.sub(" ", unicodedata.normalize("NFC", text)).replace("\n", " "))
    return re.sub(" {2,}", " ", text)


def _line_width(lines: Sequence[_PdfLine]) -> int:
    """The length of a full line of body text on a page (90th percentile of unjoined lines)."""
    lengths = sorted(len(line.text) for line in lines if not line.joined) or [line.tail for line in lines]
    return lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0


# Pages on each side of a page whose top and bottom lines are compared with its own: running headers that
# change with the chapter are found, and a page is final after this many more pages (bounded memory).
_RUNNING_WINDOW = 16
_EDGE_LINES = 3


def _edge_key(line: _PdfLine) -> str:
    return re.sub(r"\d+", "#", line.text.lower())


class _RunningLines:
    """Removes running headers/footers and bare page numbers from the top and bottom of each page.

    A line among a page's first or last ``_EDGE_LINES`` is running when (digits aside) it is at an edge of
    at least half the pages (and at least 3) within ``_RUNNING_WINDOW`` pages before and after; for a
    document of up to ``_RUNNING_WINDOW + 1`` pages that window is the whole document.
    """

    def __init__(self) -> None:
        self._keys: deque[frozenset[str]] = deque()  # of the pages from index ``_first`` on
        self._first = 0
        self._waiting: deque[tuple[int, list[_PdfLine]]] = deque()
        self._seen = 0

    def add(self, lines: list[_PdfLine]) -> list[list[_PdfLine]]:
        """Take the next page; returns the pages that are now final, in order."""
        self._keys.append(frozenset(_edge_key(line) for line in lines[:_EDGE_LINES] + lines[-_EDGE_LINES:]))
        self._waiting.append((self._seen, lines))
        self._seen += 1
        ready = []
        while self._waiting and self._waiting[0][0] + _RUNNING_WINDOW < self._seen:
            ready.append(self._release())
        return ready

    def finish(self) -> list[list[_PdfLine]]:
        """The pages still waiting (the document has ended)."""
        return [self._release() for _ in range(len(self._waiting))]

    def _release(self) -> list[_PdfLine]:
        index, lines = self._waiting.popleft()
        low, high = max(0, index - _RUNNING_WINDOW), min(self._seen, index + _RUNNING_WINDOW + 1)
        window = list(itertools.islice(self._keys, low - self._first, high - self._first))
        threshold = max(3, (len(window) + 1) // 2)
        keep = []
        for i, line in enumerate(lines):
            if i < _EDGE_LINES or i >= len(lines) - _EDGE_LINES:
                key = _edge_key(line)
                if sum(key in keys for keys in window) >= threshold or _PAGE_NUMBER.fullmatch(line.text):
                    continue
            keep.append(line)
        while self._first < index + 1 - _RUNNING_WINDOW:  # no later page's window reaches back this far
            self._keys.popleft()
            self._first += 1
        return keep


class _PdfLayout:
    """Paragraphs, list items and headings from the lines of one page after another.

    Whether the previous line ended a paragraph or a sentence, and the current heading, carry over
    page breaks; a paragraph does not.
    """

    def __init__(self) -> None:
        self.heading: str | None = None
        self.closed = True  # whether the previous line ended a paragraph, across page breaks too
        self.sentence_end = True  # whether the previous line ended a sentence (a heading may follow a full line)
        self.number = 0
        self.found = False  # whether any page had an element

    def page(self, lines: Sequence[_PdfLine]) -> list[Element]:
        """The elements of the next page."""
        self.number += 1
        number = self.number
        elements: list[Element] = []
        width = _line_width(lines)
        paragraph: list[str] = []
        kind = "text"
        i = 0
        while i < len(lines):
            line = lines[i]
            end = _pdf_heading_end(lines, i, width) if self.sentence_end else None
            starts_item = line.marker or bool(_BULLET.match(line.text))
            if paragraph and (end is not None or self.closed or starts_item):
                elements.append(Element(_join_pdf_lines(paragraph), kind, number, self.heading))
                paragraph = []
            if end is not None:
                self.heading = " ".join(x.text for x in lines[i:end])
                elements.append(Element(self.heading, "title", number, self.heading))
                i = end
                continue
            if not paragraph:
                kind = "list" if starts_item else "text"
            paragraph.append(line.text)
            self.sentence_end = line.text.endswith(_PDF_TERMINAL)
            self.closed = self.sentence_end and line.tail < 0.85 * width
            i += 1
        if paragraph:
            elements.append(Element(_join_pdf_lines(paragraph), kind, number, self.heading))
        self.found = self.found or bool(elements)
        return elements


def _pdf_heading_end(lines: Sequence[_PdfLine], i: int, width: int) -> int | None:
    """If a heading starts at line ``i``, the index after its last line; else None.

    A heading is a short line without closing punctuation that starts upper-case, may continue on up to
    three short lines (lower-case starts or a parenthesised subtitle) and is followed by full-width prose.
    """
    first = lines[i]
    if first.marker or not _short_heading_line(first.text, width):
        return None
    if not (first.text[0].isupper() or first.text[0] == "§" or _NUMBERED_HEADING.match(first.text)):
        return None
    end = i + 1
    depth = first.text.count("(") - first.text.count(")")
    while end < len(lines) and end - i <= 3:
        text = lines[end].text
        continues = depth > 0 or text[0].islower() or text.startswith("(")
        if lines[end].marker or not continues or not _short_heading_line(text, width, continuation=True):
            break
        depth += text.count("(") - text.count(")")
        end += 1
    if end >= len(lines):
        return None
    following = lines[end]
    return end if following.marker or following.joined or len(following.text) >= 0.6 * width else None


def _short_heading_line(text: str, width: int, continuation: bool = False) -> bool:
    # A heading's continuation (often a parenthesised subtitle) may run longer than its first line.
    most, share, words = (100, 0.9, 16) if continuation else (80, 0.7, 12)
    if len(text) > most or len(text) >= share * width or len(text.split()) > words:
        return False
    return not text.endswith((".", ",", ";", ":", "!", "?"))


def _join_pdf_lines(lines: Sequence[str]) -> str:
    out = lines[0]
    for line in lines[1:]:
        # A hard hyphen at a line end followed by a lower-case word is a split compound ("Insolvenz-\nver").
        if out.endswith("-") and line[:1].islower() and not re.match(r"(und|oder|bzw|sowie|bis)\b", line):
            out += line
        else:
            out += " " + line
    return out


def _is_real_title(title: str) -> bool:
    """Whether PDF/Office metadata holds a usable title (producers often write file names or ids)."""
    if not title or re.match(r"(microsoft \w+ - |untitled|unbenannt)", title, re.IGNORECASE):
        return False
    if re.search(r"\.(docx?|pdf|odt|rtf|indd|qxd)$", title, re.IGNORECASE):
        return False
    return len(re.findall(r"\b[^\W\d_]{3,}\b", title)) >= 2


# -- Markdown and plain text -----------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?---[ \t]*(?:\n|\Z)", re.DOTALL)
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_MD_INLINE = [
    (re.compile(r"<!--.*?-->", re.DOTALL), ""),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]


def _parse_markdown(path: Path) -> _Parsed:
    text = _read_text(path).replace("\r\n", "\n")
    title: str | None = None
    metadata: dict[str, str] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        title, metadata = _front_matter(match.group(1) or "")
        text = text[match.end() :]
    elements: list[Element] = []
    heading: str | None = None
    block: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if block:
            element = _markdown_block(block, heading)
            if element is not None:
                elements.append(element)
            block.clear()

    for line in text.split("\n"):
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
                code = _normalize("\n".join(block))
                if code:
                    elements.append(Element(code, "code", None, heading))
                block.clear()
            else:
                block.append(line)
            continue
        opening = _FENCE.match(line)
        if opening:
            flush()
            fence = opening.group(1)
            continue
        atx = _ATX_HEADING.match(line)
        if atx:
            flush()
            heading = _normalize(_md_inline(atx.group(2))) or heading
            if heading:
                elements.append(Element(heading, "title", None, heading))
            continue
        if block and len(block) == 1 and re.fullmatch(r" {0,3}(=+|-+)[ \t]*", line) and block[0].strip():
            heading = _normalize(_md_inline(block[0])) or heading
            block.clear()
            if heading:
                elements.append(Element(heading, "title", None, heading))
            continue
        if not block and _THEMATIC_BREAK.fullmatch(line):
            continue
        if line.strip():
            block.append(line)
        else:
            flush()
    flush()
    if title is None:
        title = next((e.text for e in elements if e.kind == "title"), None)
    return _Parsed(elements, title, metadata)


def _front_matter(raw: str) -> tuple[str | None, dict[str, str]]:
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        found = re.search(r"^title:[ \t]*(.+)$", raw, re.IGNORECASE | re.MULTILINE)
        return (found.group(1).strip().strip("'\"") if found else None), {}
    metadata = {
        str(k).lower(): " ".join(str(v).split())
        for k, v in data.items()
        if isinstance(v, str | int | float | dt.date) and not isinstance(v, bool)
    }
    title = metadata.pop("title", None)
    return title, metadata


def _md_inline(text: str) -> str:
    for pattern, replacement in _MD_INLINE:
        text = pattern.sub(replacement, text)
    return text


def _markdown_block(lines: list[str], heading: str | None) -> Element | None:
    stripped = [re.sub(r"^ {0,3}> ?", "", line) for line in lines]
    if all(line.lstrip().startswith("|") for line in stripped):
        rows = [
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in stripped
            if not re.fullmatch(r"[\s|:\-]+", line)
        ]
        text = "\n".join(_row_texts([[_md_inline(c) for c in row] for row in rows]))
        return Element(text, "table", None, heading) if text else None
    merged: list[str] = []
    for line in stripped:
        # Pandoc definition lists ("Term\n:   value") read best as "Term: value".
        definition = re.match(r"^:\s+(.*)", line)
        if definition and merged:
            merged[-1] = merged[-1].rstrip() + ": " + definition.group(1)
        else:
            merged.append(line)
    text = _normalize(_md_inline(_join_lines(merged)))
    if not text:
        return None
    return Element(text, "list" if _BULLET.match(text) else "text", None, heading)


def _parse_text(path: Path) -> _Parsed:
    return _Parsed(_paragraph_elements(_read_text(path)))


# -- CSV and XLSX ----------------------------------------------------------------------------------------


def _parse_csv(path: Path) -> _Parsed:
    text = _read_text(path)
    rows = csv.reader(io.StringIO(text), delimiter=_csv_delimiter(text[:16384]))
    return _Parsed([Element(row, "table", None, None) for row in _row_texts(rows)])


def _csv_delimiter(sample: str) -> str:
    """The delimiter that splits the first lines into the most columns, consistently.

    csv.Sniffer picks "," for German files whose decimal commas outnumber the semicolons.
    """
    lines = sample.splitlines()[:20]
    best, best_score = ",", 0
    for delimiter in ";,\t|":
        widths = Counter(len(row) for row in csv.reader(lines, delimiter=delimiter) if row)
        if not widths:
            continue
        columns, rows = widths.most_common(1)[0]
        score = columns * rows if columns > 1 else 0
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _parse_xlsx(path: Path) -> _Parsed:
    import openpyxl

    workbook = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    try:
        elements: list[Element] = []
        for number, sheet in enumerate(workbook.worksheets, start=1):
            name = _normalize(sheet.title) or f"Sheet {number}"
            rows = ([_cell_text(cell) for cell in row] for row in sheet.iter_rows())
            texts = _row_texts(rows)
            if texts:
                elements.append(Element(name, "title", number, name))
                elements.extend(Element(t, "table", number, name) for t in texts)
        props = workbook.properties
        title = props.title or ""
        metadata = {"author": props.creator} if props.creator else {}
        metadata["sheets"] = ", ".join(ws.title for ws in workbook.worksheets)
    finally:
        workbook.close()
    return _Parsed(elements, title, metadata)


def _cell_text(cell: Any) -> str:
    value = getattr(cell, "value", None)
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, int | float):
        fmt = str(getattr(cell, "number_format", "") or "")
        decimals = re.search(r"\.(0+)", fmt)
        if decimals:
            text = f"{value:.{len(decimals.group(1))}f}"
        elif isinstance(value, float) and value.is_integer():
            text = str(int(value))
        else:
            text = format(value, ".15g")
        if "%" in fmt:
            return text + " %"
        return text + " €" if "€" in fmt else text
    return str(value)


# -- e-mail ------------------------------------------------------------------------------------------------


def _parse_eml(path: Path) -> _Parsed:
    with path.open("rb") as fh:
        message = email.message_from_binary_file(fh, policy=policy.default)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise DocumentError(str(path), "not an e-mail message (no headers found)")
    metadata: dict[str, str] = {}
    for name in ("subject", "from", "to", "cc", "date"):
        value = " ".join(str(message.get(name, "") or "").split())
        if value:
            metadata[name] = value
    date_header = message.get("date")
    parsed_date = getattr(date_header, "datetime", None)
    if isinstance(parsed_date, dt.datetime):
        metadata["date"] = parsed_date.isoformat()
    attachments = [part.get_filename() for part in message.iter_attachments() if part.get_filename()]
    if attachments:
        metadata["attachments"] = ", ".join(str(a) for a in attachments)

    body_elements: list[Element] = []
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        content = str(body.get_content())
        if body.get_content_subtype() == "html":
            page = _PageHTML()
            page.read(content)
            body_elements = page.elements
        else:
            body_elements = _paragraph_elements(content)
    if not body_elements:
        raise DocumentError(str(path), "no text found")
    # The headers as text too, so that "who wrote about ... and when" can be answered from a passage.
    header_lines = [f"{label}: {metadata[key]}" for key, label in _EMAIL_HEADER_LABELS if key in metadata]
    header = [Element("\n".join(header_lines), "text", None, None)] if header_lines else []
    return _Parsed(header + body_elements, metadata.get("subject"), metadata)


_EMAIL_HEADER_LABELS = (
    ("subject", "Subject"), ("from", "From"), ("to", "To"), ("cc", "Cc"), ("date", "Date"),
)


# -- unstructured (DOCX, PPTX, MSG) ---------------------------------------------------------------------

_LANGUAGES = ["deu", "eng"]  # given explicitly so unstructured skips per-document language detection
_SKIPPED_CATEGORIES = {"Header", "Footer", "PageBreak", "PageNumber", "Image"}
_KIND_BY_CATEGORY = {"Title": "title", "ListItem": "list", "Table": "table", "CodeSnippet": "code"}


def _configure_unstructured() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")


def _parse_with_unstructured(path: Path) -> _Parsed:
    _configure_unstructured()
    kind = SUPPORTED_KINDS[path.suffix.lower()]
    partition: Callable[..., list[Any]]
    if kind == "docx":
        from unstructured.partition.docx import partition_docx as partition
    elif kind == "pptx":
        from unstructured.partition.pptx import partition_pptx as partition
    else:
        from unstructured.partition.msg import partition_msg

        def partition(**kwargs: Any) -> list[Any]:
            return partition_msg(process_attachments=False, **kwargs)

    raw = partition(filename=str(path), languages=_LANGUAGES)
    elements = _from_unstructured(raw, kind)
    metadata: dict[str, str] = {}
    title = next((e.text for e in elements if e.kind == "title"), None)
    if kind == "msg" and raw:
        first = raw[0].metadata
        subject = getattr(first, "subject", None)
        for key, value in (
            ("subject", subject),
            ("from", getattr(first, "sent_from", None)),
            ("to", getattr(first, "sent_to", None)),
        ):
            if value:
                metadata[key] = value if isinstance(value, str) else ", ".join(value)
        title = subject or title
    return _Parsed(elements, title, metadata)


def _from_unstructured(raw: Iterable[Any], kind: str) -> list[Element]:
    """Map unstructured elements to ours, tracking the latest real heading.

    Only style- or tag-based titles count as headings: in PPTX the slide title (depth 0; unstructured
    also calls short bullets "Title"), never in e-mail (short lines like "Viele Grüße" become "Title").
    """
    elements: list[Element] = []
    heading: str | None = None
    for item in raw:
        category = getattr(item, "category", "")
        if category in _SKIPPED_CATEGORIES:
            continue
        metadata = item.metadata
        text = _normalize(str(item))
        element_kind = _KIND_BY_CATEGORY.get(category, "text")
        if element_kind == "table" and getattr(metadata, "text_as_html", None):
            table = _TableHTML()
            table.feed(metadata.text_as_html)
            text = "\n".join(_row_texts(table.rows)) or text
        if element_kind == "title":
            depth = getattr(metadata, "category_depth", None)
            is_heading = kind == "docx" or (kind == "pptx" and depth in (0, None))
            if not is_heading:
                element_kind = "list" if kind == "pptx" else "text"
            elif text:
                heading = text
        if text:
            page = getattr(metadata, "page_number", None)
            elements.append(Element(text, element_kind, page if isinstance(page, int) else None, heading))
    return elements


_PARSERS: dict[str, Callable[[Path], _Parsed]] = {
    "md": _parse_markdown,
    "txt": _parse_text,
    "csv": _parse_csv,
    "xlsx": _parse_xlsx,
    "eml": _parse_eml,
    "docx": _parse_with_unstructured,
    "pptx": _parse_with_unstructured,
    "html": _parse_html,
    "msg": _parse_with_unstructured,
}
