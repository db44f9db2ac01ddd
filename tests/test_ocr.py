"""OCR with the real tesseract: scanned PDF pages (only those without a text layer) and image files."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont

from ingest.parsing import parse_file
from rag.errors import DocumentError

SAMPLE_PDF = Path(__file__).resolve().parents[1] / "examples" / "docs" / "hinweisblatt-verbraucherinsolvenz.pdf"
LANGUAGES = "deu+eng"
LINES = ("Betriebsvereinbarung Homeoffice", "Der Antrag geht an die Personalabteilung.")

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("tesseract") is None, reason="tesseract is not installed (scripts/bootstrap.sh)"
)


def _scan(lines: tuple[str, ...] = LINES) -> Image.Image:
    """A white A4 page at 150 dpi with black text and no text layer: what a scanner produces."""
    font = ImageFont.load_default(size=28)
    image = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((120, 160 + 60 * n), line, fill=0, font=font)
    return image


@pytest.fixture
def scanned_pdf(tmp_path: Path) -> Path:
    path = tmp_path / "scan.pdf"
    _scan().save(path, resolution=150)
    return path


def test_a_scanned_pdf_is_read_by_ocr_with_its_page_number(scanned_pdf: Path) -> None:
    doc = parse_file(scanned_pdf, ocr_languages=LANGUAGES)

    text = " ".join(e.text for e in doc.elements)
    assert "Homeoffice" in text and "Personalabteilung" in text
    assert {e.page for e in doc.elements} == {1}
    assert doc.metadata["ocr_pages"] == "1"


def test_a_scanned_pdf_without_ocr_is_refused_with_a_plain_reason(scanned_pdf: Path) -> None:
    with pytest.raises(DocumentError) as error:
        parse_file(scanned_pdf, ocr_languages=None)

    assert error.value.reason == "scanned pages without a text layer, and OCR is disabled"


def test_only_pages_without_a_text_layer_are_sent_to_ocr(tmp_path: Path, scanned_pdf: Path) -> None:
    mixed = pdfium.PdfDocument.new()
    mixed.import_pages(pdfium.PdfDocument(str(SAMPLE_PDF)), [0])
    mixed.import_pages(pdfium.PdfDocument(str(scanned_pdf)))
    path = tmp_path / "mixed.pdf"
    mixed.save(str(path))

    doc = parse_file(path, ocr_languages=LANGUAGES)

    assert doc.metadata["ocr_pages"] == "2"
    assert "Eigenantrag Verbraucherinsolvenz" in " ".join(e.text for e in doc.elements if e.page == 1)
    assert "Personalabteilung" in " ".join(e.text for e in doc.elements if e.page == 2)


def test_without_ocr_a_mixed_pdf_keeps_its_text_pages_and_names_the_skipped_ones(
    tmp_path: Path, scanned_pdf: Path
) -> None:
    mixed = pdfium.PdfDocument.new()
    mixed.import_pages(pdfium.PdfDocument(str(scanned_pdf)))
    mixed.import_pages(pdfium.PdfDocument(str(SAMPLE_PDF)), [0])
    path = tmp_path / "mixed.pdf"
    mixed.save(str(path))

    doc = parse_file(path, ocr_languages=None)

    assert doc.metadata["pages_without_text"] == "1"
    assert {e.page for e in doc.elements} == {2}


def test_an_image_file_is_read_by_ocr(tmp_path: Path) -> None:
    path = tmp_path / "aushang.png"
    _scan().save(path)

    doc = parse_file(path, ocr_languages=LANGUAGES)

    assert doc.kind == "image"
    assert "Personalabteilung" in " ".join(e.text for e in doc.elements)


def test_each_frame_of_a_multi_page_tiff_is_its_own_page(tmp_path: Path) -> None:
    path = tmp_path / "akte.tiff"
    first, second = _scan(("Erste Seite Homeoffice",)), _scan(("Zweite Seite Personalabteilung",))
    first.save(path, save_all=True, append_images=[second])

    doc = parse_file(path, ocr_languages=LANGUAGES)

    by_page = {e.page: e.text for e in doc.elements}
    assert "Homeoffice" in by_page[1] and "Personalabteilung" in by_page[2]
    assert doc.metadata["ocr_pages"] == "1-2"


def test_an_image_without_ocr_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "aushang.png"
    _scan().save(path)

    with pytest.raises(DocumentError) as error:
        parse_file(path, ocr_languages=None)

    assert error.value.reason == "an image needs OCR, and OCR is disabled"


def test_a_file_named_png_that_is_no_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(b"this is not an image at all")

    with pytest.raises(DocumentError) as error:
        parse_file(path, ocr_languages=LANGUAGES)

    assert "not a readable image" in error.value.reason


def test_missing_tesseract_is_named_in_the_reason(scanned_pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(DocumentError) as error:
        parse_file(scanned_pdf, ocr_languages=LANGUAGES)

    assert "tesseract is not installed" in error.value.reason


def test_a_scan_is_read_by_ocr_inside_the_parser_sandbox_through_the_pipeline(
    settings_factory, scanned_pdf: Path
) -> None:
    from ingest.pipeline import Ingestor
    from rag.embedding import HashingEmbedder
    from rag.store import IndexReader

    settings = settings_factory(ingest__sandbox="true", ingest__ocr="true")
    embedder = HashingEmbedder(64)
    with Ingestor(settings, embedder) as ingestor:
        report = ingestor.ingest([scanned_pdf])
    assert report.added == [str(scanned_pdf)] and report.pages == 1
    reader = IndexReader(settings.index_dir, embedder.identity)
    hits = reader.search_keyword("Personalabteilung", 5, ["public"])
    [passage] = reader.passages([hits[0][0]], ["public"])
    reader.close()
    assert "Personalabteilung" in passage.text and passage.page == 1
