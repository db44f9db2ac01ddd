"""Parsing real sample files into elements with pages, headings and metadata."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ingest.parsing import SUPPORTED_KINDS, ParsedDocument, merge_parts, parse_file, stream_file
from rag.errors import DocumentError

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "docs"
PDF_SAMPLE = SAMPLES / "hinweisblatt-verbraucherinsolvenz.pdf"


def _sample_names() -> list[str]:
    return sorted(p.name for p in SAMPLES.iterdir() if p.suffix.lower() in SUPPORTED_KINDS)


def _element_with(doc: ParsedDocument, phrase: str):
    matches = [e for e in doc.elements if phrase in e.text]
    assert matches, f"no element contains {phrase!r}"
    return matches[0]


@pytest.fixture(scope="module")
def pdf_doc() -> ParsedDocument:
    return parse_file(PDF_SAMPLE)


def test_the_demo_corpus_covers_every_advertised_format() -> None:
    kinds = {SUPPORTED_KINDS[Path(name).suffix.lower()] for name in _sample_names()}
    assert {"pdf", "md", "docx", "xlsx", "csv", "html", "eml"} <= kinds


@pytest.mark.parametrize("name", _sample_names())
def test_every_sample_file_parses_into_non_empty_elements(name: str) -> None:
    doc = parse_file(SAMPLES / name)

    assert doc.kind == SUPPORTED_KINDS[Path(name).suffix.lower()]
    assert doc.title.strip()
    assert doc.elements
    assert all(e.text == e.text.strip() and e.text for e in doc.elements)
    assert {e.kind for e in doc.elements} <= {"title", "text", "list", "table", "code"}


def test_pdf_elements_carry_their_exact_page(pdf_doc: ParsedDocument) -> None:
    assert pdf_doc.page_label == "page"
    assert {e.page for e in pdf_doc.elements} == set(range(1, 13))
    assert _element_with(pdf_doc, "Die Abtretungserklärung müssen Sie eigenhändig unterschreiben").page == 3
    assert _element_with(pdf_doc, "Anpassung der Zahlungen zu verlangen").page == 12


def test_pdf_text_is_cleaned_of_hyphenation_marks_and_running_headers(pdf_doc: ParsedDocument) -> None:
    text = "\n".join(e.text for e in pdf_doc.elements)

    assert "\ufffe" not in text
    assert "außergerichtlichen Einigungsversuchs" in text
    assert "Seite 3 von 12" not in text
    assert not any(ch < " " and ch != "\n" for ch in text)


@pytest.fixture(scope="module")
def long_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 12-page sample three times over: 36 pages under one running header."""
    import pypdfium2 as pdfium

    long = pdfium.PdfDocument.new()
    for _ in range(3):
        long.import_pages(pdfium.PdfDocument(str(PDF_SAMPLE)))
    path = tmp_path_factory.mktemp("long") / "dreifach.pdf"
    long.save(str(path))
    return path


def test_a_long_pdf_streams_page_by_page_once_the_pages_after_each_are_read(long_pdf: Path) -> None:
    parts = list(stream_file(long_pdf))

    pages = [sorted({e.page for e in p.elements}) for p in parts]
    assert pages[0] == [1]  # released once pages 2-17 were read, whose edges tell its running header
    assert len(parts) == 36 - 16 + 2  # pages 1-20 one by one, the last 16 at the end, then the title
    assert [p for part in pages for p in part] == list(range(1, 37))  # each page once, in order
    assert parts[-1].elements == [] and parts[-1].title != long_pdf.stem  # the last part carries the title
    assert merge_parts(parts) == parse_file(long_pdf)


def test_a_long_pdfs_running_headers_are_dropped_on_every_page_including_the_first_and_last(long_pdf: Path) -> None:
    doc = parse_file(long_pdf)
    text = "\n".join(e.text for e in doc.elements)

    assert "Amtliche Fassung 7/2014" not in text and "Seite 3 von 12" not in text
    assert {e.page for e in doc.elements} == set(range(1, 37))
    assert [e.text for e in doc.elements if e.page and e.page > 24] == [
        e.text for e in parse_file(PDF_SAMPLE).elements
    ][: len([e for e in doc.elements if e.page and e.page > 24])]


def test_a_short_document_comes_as_one_part_with_its_title(tmp_path: Path) -> None:
    path = tmp_path / "regel.md"
    path.write_text("# Urlaub\n\nDer Urlaub beträgt 24 Werktage.\n", encoding="utf-8")

    (part,) = stream_file(path)
    assert part.title == "Urlaub" and [e.text for e in part.elements] == ["Urlaub", "Der Urlaub beträgt 24 Werktage."]


def test_pdf_headings_are_detected_and_used_as_title(pdf_doc: ParsedDocument) -> None:
    titles = [e.text for e in pdf_doc.elements if e.kind == "title"]

    assert pdf_doc.title.startswith("Hinweisblatt zu den Formularen für das Verbraucherinsolvenzverfahren")
    assert "Anlage 3 (Abtretungserklärung nach § 287 Abs. 2 InsO)" in titles
    element = _element_with(pdf_doc, "eigenhändig unterschreiben")
    assert element.heading == "Anlage 3 (Abtretungserklärung nach § 287 Abs. 2 InsO)"


def test_markdown_front_matter_gives_title_and_metadata_and_is_not_text() -> None:
    doc = parse_file(SAMPLES / "burlg.md")

    assert doc.title == "Mindesturlaubsgesetz für Arbeitnehmer"
    assert doc.metadata["jurabk"] == "BUrlG"
    assert not any("origslug" in e.text for e in doc.elements)
    assert doc.elements[0].kind == "title"


def test_markdown_headings_become_element_headings_and_list_numbers_stay() -> None:
    doc = parse_file(SAMPLES / "burlg.md")
    element = _element_with(doc, "mindestens 24 Werktage")
    assert element.heading == "§ 3 Dauer des Urlaubs"
    assert element.text == "(1) Der Urlaub beträgt jährlich mindestens 24 Werktage."

    nachwg = parse_file(SAMPLES / "nachwg.md")
    assert _element_with(nachwg, "Name und die Anschrift der Vertragsparteien").text.startswith("1. der Name")


def test_markdown_without_front_matter_uses_first_heading_and_reads_tables(tmp_path: Path) -> None:
    path = tmp_path / "notiz.md"
    path.write_text(
        "# Reisekosten\n\nSiehe [Richtlinie](https://intranet.example/rk) für **alle** Fälle.\n\n"
        "| Ort | Pauschale |\n|---|---|\n| Inland | 28 € |\n\n```\ncode bleibt\n```\n",
        encoding="utf-8",
    )
    doc = parse_file(path)

    assert doc.title == "Reisekosten"
    assert [e.kind for e in doc.elements] == ["title", "text", "table", "code"]
    assert doc.elements[1].text == "Siehe Richtlinie für alle Fälle."
    assert doc.elements[2].text == "Ort: Inland; Pauschale: 28 €"
    assert all(e.heading == "Reisekosten" for e in doc.elements)


def test_docx_word_headings_become_element_headings() -> None:
    doc = parse_file(SAMPLES / "kschg-auszug.docx")

    assert doc.title == "Kündigungsschutzgesetz (KSchG) – Auszug"
    element = _element_with(doc, "innerhalb von drei Wochen nach Zugang der schriftlichen Kündigung")
    assert element.heading == "§ 4 Anrufung des Arbeitsgerichts"
    assert element.kind == "text"
    assert "§ 1a Abfindungsanspruch bei betriebsbedingter Kündigung" in [
        e.text for e in doc.elements if e.kind == "title"
    ]


def test_xlsx_rows_carry_sheet_number_and_header_labels() -> None:
    doc = parse_file(SAMPLES / "mindestlohn.xlsx")

    assert doc.page_label == "sheet"
    assert doc.title == "Gesetzlicher Mindestlohn in Deutschland seit 2015"
    rows = [e for e in doc.elements if e.kind == "table" and e.page == 1]
    assert len(rows) == 11
    assert all(e.heading == "Mindestlohn" for e in rows)
    assert "Gültig ab: 2024-01-01; Mindestlohn je Zeitstunde (brutto, €): 12.41 €" in rows[9].text
    text = " ".join(e.text for e in rows)
    for wage in ("8.50", "8.84", "9.19", "9.35", "9.50", "9.60", "9.82", "10.45", "12.00", "12.41", "12.82"):
        assert f": {wage} €" in text
    assert _element_with(doc, "Rechtsverordnung verbindlich").page == 2


def test_csv_with_semicolons_and_decimal_commas_keeps_its_columns() -> None:
    doc = parse_file(SAMPLES / "mindestlohn.csv")

    assert len(doc.elements) == 11
    label = "Mindestlohn je Zeitstunde (brutto, €)"
    assert doc.elements[0].text.startswith(f"Gültig ab: 01.01.2015; {label}: 8,50; Rechtsgrundlage: §")
    assert doc.elements[-1].text.startswith(f"Gültig ab: 01.01.2025; {label}: 12,82;")


def test_html_headings_become_element_headings() -> None:
    doc = parse_file(SAMPLES / "tzbfg-befristung.html")

    assert doc.title.startswith("Gesetz über Teilzeitarbeit und befristete Arbeitsverträge")
    assert _element_with(doc, "bedarf zu ihrer Wirksamkeit der Schriftform").heading == (
        "§ 14 Zulässigkeit der Befristung"
    )


def test_html_page_structure_becomes_titles_lists_tables_and_code(tmp_path: Path) -> None:
    page = tmp_path / "seite.html"
    # No </head>, a script and a style, a nested table, a <br>, entities: what real intranet pages do.
    page.write_text(
        "<html><head><title>Reisekosten &amp; Spesen</title><script>var x = 'geheim';</script>"
        "<style>p { color: red }</style><body>"
        "<h1>Reisekosten</h1><p>Erstattet werden\n   Bahnfahrten<br>und Hotels.</p>"
        "<h2>Pauschalen</h2><ul><li>Frühstück: 5,60 &euro;</li><li>Mittag: 11,20 &euro;</li></ul>"
        "<table><tr><th>Land</th><th>Satz</th></tr><tr><td>Frankreich</td><td>40 <b>Euro</b></td></tr>"
        "<tr><td>Italien</td><td><table><tr><td>39</td><td>Euro</td></tr></table></td></tr></table>"
        "<pre>Formular  R-7\n  Zeile 2</pre><p>Stand: 2025</p></body></html>",
        encoding="utf-8",
    )
    doc = parse_file(page)

    kinds = [(e.kind, e.text, e.heading) for e in doc.elements]
    assert doc.title == "Reisekosten"
    assert ("text", "Erstattet werden Bahnfahrten\nund Hotels.", "Reisekosten") in kinds
    assert ("list", "Frühstück: 5,60 €", "Pauschalen") in kinds
    assert ("table", "Land: Frankreich; Satz: 40 Euro\nLand: Italien; Satz: 39 Euro", "Pauschalen") in kinds
    assert ("code", "Formular  R-7\n  Zeile 2", "Pauschalen") in kinds  # code keeps its spacing
    assert kinds[-1] == ("text", "Stand: 2025", "Pauschalen")
    assert not any("geheim" in e.text or "color" in e.text or "Spesen" in e.text for e in doc.elements)


def test_html_without_headings_takes_its_title_element_as_title(tmp_path: Path) -> None:
    page = tmp_path / "kantine.htm"
    page.write_text("<title>Kantine</title><div>Geöffnet von 11 bis 14 Uhr<div>Freitags bis 13 Uhr", encoding="utf-8")
    doc = parse_file(page)

    assert doc.title == "Kantine"
    assert [e.text for e in doc.elements] == ["Geöffnet von 11 bis 14 Uhr", "Freitags bis 13 Uhr"]


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        # </head> and <body> left out, as HTML5 allows
        ("<html><head><title>T</title><div>Inhalt</div><h2>A</h2><p>mehr</p>",
         [("text", "Inhalt", None), ("title", "A", "A"), ("text", "mehr", "A")]),
        # whitespace and <br> between cells are not cells; <td/> is an empty cell
        ("<table>\n<tr><th>A</th><th>B</th><th>C</th></tr>\n<tr>\n<td>1</td>\n<td>2</td><br><td/></tr>"
         "<tr><td>4</td><td/><td>6</td></tr></table>",
         [("table", "A: 1; B: 2\nA: 4; C: 6", None)]),
        # a header row with no rows under it is kept
        ("<table><tr><th>Kopf</th></tr><tr><th>A</th><th>B</th></tr></table>", [("table", "Kopf\nA; B", None)]),
        # a heading cell spanning two columns labels both
        ("<table><tr><th colspan=2>Kopf</th></tr><tr><td>x</td><td>y</td></tr></table>",
         [("table", "Kopf: x; Kopf: y", None)]),
        # text after </pre> is not code; a list item's paragraphs are the list item
        ("<div><pre>def f():\n    return 1</pre>Danach</div><ul><li><p>Punkt eins</p><p>weiter</p></li></ul>",
         [("code", "def f():\n    return 1", None), ("text", "Danach", None),
          ("list", "Punkt eins", None), ("list", "weiter", None)]),
        # navigation and form controls are page chrome, not content (nor the title)
        ("<nav><h2>Menü</h2><a href=/>Start</a></nav><label>Suche</label><button>Los</button>"
         "<h1>Eigentlicher Titel</h1><p>Text</p><!-- unclosed comment <p>rest",
         [("title", "Eigentlicher Titel", "Eigentlicher Titel"), ("text", "Text", "Eigentlicher Titel")]),
        ("", []),
        ('<?xml version="1.0" encoding="UTF-8"?><html><body><p>XHTML</p></body></html>', [("text", "XHTML", None)]),
        # a second (or unterminated) XML declaration, a lone surrogate, a <meta charset> that disagrees
        ('<?xml version="1.0" encoding="utf-8"?><?xml version="1.0" encoding="utf-8"?><p>x</p>', [("text", "x", None)]),
        ('<meta charset="iso-8859-1"><p>Grüße\ud800</p><p>c</p>', [("text", "Grüße?", None), ("text", "c", None)]),
        # two pages pasted together: text after </html> is kept
        ("<p>a</p></html><p>b</p>", [("text", "a", None), ("text", "b", None)]),
        # libxml2 closes <h3> before a <p> inside it; that paragraph is still the heading
        ("<h3><p>Frage?</p></h3><p>Antwort</p>", [("title", "Frage?", "Frage?"), ("text", "Antwort", "Frage?")]),
        # tags inside cells separate words; text between rows is a row; colspan keeps the columns
        ("<table><tr><th>A</th><th>B</th><th>C</th></tr>Zwischentext<tr><td><span>Befehl</span><span>Strg</span>"
         "</td><td>H<sub>2</sub>O</td><td>x</td></tr><tr><td colspan=2>breit</td><td>z</td></tr></table>",
         [("table", "Zwischentext\nA: Befehl Strg; B: H 2 O; C: x\nA: breit; B: breit; C: z", None)]),
        # rowspan repeats a cell down its column; <tfoot> rows come last wherever they are written
        ("<table><tfoot><tr><td>Summe</td><td>-</td><td>12</td></tr></tfoot><tr><th>Tag</th><th>Zeit</th>"
         "<th>Raum</th></tr><tr><td rowspan=2>Montag</td><td>9</td><td>A</td></tr><tr><td>14</td><td>B</td></tr>"
         "</table>",
         [("table", "Tag: Montag; Zeit: 9; Raum: A\nTag: Montag; Zeit: 14; Raum: B\nTag: Summe; Zeit: -; Raum: 12",
           None)]),
        ("<fieldset><legend>Leg</legend>inner</fieldset><noframes><p>alt</p></noframes>",
         [("text", "Leg", None), ("text", "inner", None)]),
    ],
)
def test_html_that_pages_really_contain_is_read_as_a_browser_would(
    tmp_path: Path, html: str, expected: list[tuple[str, str, str | None]]
) -> None:
    from ingest.parsing import _PageHTML

    page = _PageHTML()
    page.read(html)

    assert [(e.kind, e.text, e.heading) for e in page.elements] == expected


def test_a_huge_inline_image_or_deep_nesting_does_not_end_the_page_early() -> None:
    from ingest.parsing import _PageHTML

    page = _PageHTML()
    page.read('<p>Kopf</p><img src="data:image/png;base64,' + "A" * 10_500_000 + '"><p>Danach</p>'
              + "<p><font face=Arial>Absatz" * 400 + "<p>Ende")

    texts = [e.text for e in page.elements]
    assert texts[:2] == ["Kopf", "Danach"] and len(texts) == 403 and texts[-1] == "Ende"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("payload", ["<p>" + "</" * 1_000_000, "<p>" + "</a" * 700_000, "<div>" * 400_000 + "x"])
def test_hostile_html_is_read_in_linear_time(payload: str) -> None:
    # 2 MB of unclosed end tags: Python 3.11.7's html.parser needs minutes for this (CVE-2025-6069).
    from ingest.parsing import _PageHTML

    _PageHTML().read(payload)


def test_html_parser_keeps_every_word_unstructured_finds() -> None:
    # The twin of our HTML parser: unstructured's partition_html on the same real page.
    import re
    from collections import Counter

    from unstructured.partition.html import partition_html

    path = SAMPLES / "tzbfg-befristung.html"
    theirs = Counter(w for e in partition_html(filename=str(path)) for w in re.findall(r"\w+", str(e).lower()))
    ours = Counter(w for e in parse_file(path).elements for w in re.findall(r"\w+", e.text.lower()))

    assert sum(theirs.values()) > 500
    assert theirs - ours == Counter()


def test_eml_headers_become_metadata_and_subject_the_title() -> None:
    doc = parse_file(SAMPLES / "rundmail-urlaubsplanung-2025.eml")
    subject = "Urlaubsplanung 2025: Bitte Urlaubswünsche bis 31. Januar eintragen"

    assert doc.title == subject
    assert doc.metadata["subject"] == subject
    assert doc.metadata["from"] == "Personalabteilung <personal@beispiel-firma.example>"
    assert doc.metadata["date"] == "2025-01-06T09:00:00+01:00"
    assert "Fiktives Beispiel" in _element_with(doc, "Fiktives Beispiel").text
    assert "(§ 7 Abs. 3 BUrlG)" in _element_with(doc, "31. März").text
    assert not any(e.kind == "title" for e in doc.elements)


def test_an_html_only_email_is_read_and_its_attachments_are_named(tmp_path: Path) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "Neue Reisekostenrichtlinie"
    message["From"] = "buchhaltung@beispiel-firma.example"
    message.set_content("<html><body><p>Die Pauschale beträgt <b>28 Euro</b>.</p></body></html>", subtype="html")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="richtlinie.pdf")
    path = tmp_path / "reisekosten.eml"
    path.write_bytes(message.as_bytes())

    doc = parse_file(path)

    assert doc.title == "Neue Reisekostenrichtlinie"
    assert doc.metadata["attachments"] == "richtlinie.pdf"
    assert [e.text for e in doc.elements][-1] == "Die Pauschale beträgt 28 Euro."
    assert doc.elements[0].text.startswith("Subject: Neue Reisekostenrichtlinie\nFrom: buchhaltung@")


def test_pptx_slides_are_pages_and_slide_titles_headings(tmp_path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Urlaubsregeln"
    first.placeholders[1].text = "Mindestens 24 Werktage\nWartezeit sechs Monate"
    second = deck.slides.add_slide(deck.slide_layouts[1])
    second.shapes.title.text = "Übertragung"
    second.placeholders[1].text = "Übertragener Urlaub verfällt nach dem 31. März."
    path = tmp_path / "urlaub.pptx"
    deck.save(str(path))

    doc = parse_file(path)

    assert doc.page_label == "slide"
    assert doc.title == "Urlaubsregeln"
    assert [e.text for e in doc.elements if e.kind == "title"] == ["Urlaubsregeln", "Übertragung"]
    bullet = _element_with(doc, "Wartezeit sechs Monate")
    assert (bullet.page, bullet.heading, bullet.kind) == (1, "Urlaubsregeln", "list")
    assert _element_with(doc, "31. März").page == 2


def test_plain_text_in_windows_1252_is_decoded_into_paragraphs(tmp_path: Path) -> None:
    path = tmp_path / "hinweis.txt"
    path.write_bytes("Größere Änderungen\nbitte melden.\n\nZweiter Absatz.".encode("cp1252"))

    doc = parse_file(path)

    assert doc.title == "hinweis"
    assert [e.text for e in doc.elements] == ["Größere Änderungen bitte melden.", "Zweiter Absatz."]


def test_random_bytes_named_pdf_are_reported_as_a_damaged_pdf(tmp_path: Path) -> None:
    path = tmp_path / "kaputt.pdf"
    path.write_bytes(random.Random(7).randbytes(4096))

    with pytest.raises(DocumentError) as caught:
        parse_file(path)

    assert caught.value.reason == "damaged PDF (it cannot be opened)"
    assert caught.value.path == str(path)


def test_random_bytes_named_docx_give_a_plain_reason(tmp_path: Path) -> None:
    path = tmp_path / "kaputt.docx"
    path.write_bytes(random.Random(8).randbytes(2048))

    with pytest.raises(DocumentError) as caught:
        parse_file(path)

    assert caught.value.reason.startswith("damaged or unreadable DOCX file")
    assert "Traceback" not in caught.value.reason


@pytest.mark.parametrize("name", ["leer.pdf", "leer.md", "leer.docx"])
def test_an_empty_file_is_refused_with_a_plain_reason(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")

    with pytest.raises(DocumentError, match="the file is empty"):
        parse_file(path)


def test_a_file_with_only_whitespace_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "leer.txt"
    path.write_text("\n  \n\t\n", encoding="utf-8")

    with pytest.raises(DocumentError) as caught:
        parse_file(path)

    assert caught.value.reason == "no text found"


def test_a_password_protected_pdf_is_refused(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("geheim", algorithm="AES-256")
    path = tmp_path / "geheim.pdf"
    with path.open("wb") as fh:
        writer.write(fh)

    with pytest.raises(DocumentError) as caught:
        parse_file(path)

    assert caught.value.reason == "password-protected PDF"


def test_a_pdf_without_text_layer_asks_for_ocr(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(595, 842).close()
    path = tmp_path / "scan.pdf"
    pdf.save(str(path))
    pdf.close()

    with pytest.raises(DocumentError) as caught:
        parse_file(path)

    assert caught.value.reason == "scanned pages without a text layer, and OCR is disabled"


def test_an_unsupported_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alt.rtf"
    path.write_text("{\\rtf1 Hallo}", encoding="ascii")

    with pytest.raises(DocumentError, match=r"unsupported file type '\.rtf'"):
        parse_file(path)
