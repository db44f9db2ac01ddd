"""Opening the original file behind a cited passage: where it may live, who may open it, what it holds."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from ui_support import write_pdf

from rag.config import Settings
from rag.documents import ChunkDraft, DocumentRecord, Passage
from rag.embedding import HashingEmbedder
from rag.errors import OriginalUnavailableError, UserError
from rag.originals import PAGE_MAX_PIXELS, Originals, PageImageCache, mime_type, render_pdf_page
from rag.store import IndexReader, IndexWriter

URLAUB = "Der Urlaub beträgt jährlich mindestens 24 Werktage."


class Library:
    """Files indexed as the pipeline records them (resolved path, content hash, size, mtime)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedder = HashingEmbedder(settings.embedder.dimension)
        self.records: list[DocumentRecord] = []

    def add(self, path: Path, access: tuple[str, ...] = ("public",), *, recorded_path: str | None = None) -> Passage:
        """Index ``path`` (under ``recorded_path`` when given) and return a passage citing its page 1."""
        data = path.read_bytes() if path.is_file() else b""
        stat = path.lstat() if path.is_symlink() or path.exists() else None
        record = DocumentRecord(
            doc_id=f"doc{len(self.records)}",
            path=recorded_path or str(path),
            title=path.name,
            sha256=hashlib.sha256(data).hexdigest(),
            kind=path.suffix.lstrip("."),
            access=access,
            size=stat.st_size if stat else 0,
            mtime=stat.st_mtime if stat else 0.0,
        )
        self.records.append(record)
        return Passage(chunk_id=len(self.records), doc_id=record.doc_id, path=record.path, title=record.title,
                       text=URLAUB, start=0, end=len(URLAUB), page=1)

    def originals(self, cache: PageImageCache | None = None) -> Originals:
        with IndexWriter(self.settings.index_dir, self.embedder.identity) as writer:
            for record in self.records:
                chunk = ChunkDraft(URLAUB, 0, len(URLAUB), page=1)
                writer.upsert_document(record, [chunk], self.embedder.embed([URLAUB], "passage"))
            writer.commit()
        reader = IndexReader(self.settings.index_dir, self.embedder.identity)
        return Originals.from_settings(self.settings, reader.documents, cache)


@pytest.fixture
def sources(settings: Settings) -> Path:
    folder = settings.paths.sources[0].resolve()
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def library(settings: Settings, sources: Path) -> Library:
    return Library(settings)


def refusal(originals: Originals, passage: Passage, access: tuple[str, ...] = ("public",)) -> str | None:
    with pytest.raises(OriginalUnavailableError) as caught:
        originals.open(passage, access)
    assert isinstance(caught.value, UserError)
    return caught.value.code


def test_a_file_in_a_source_folder_opens_with_its_name_type_and_content(library: Library, sources: Path) -> None:
    path = sources / "handbuch" / "burlg.md"
    path.parent.mkdir()
    path.write_text(URLAUB, encoding="utf-8")
    passage = library.add(path)

    original = library.originals().open(passage, ("public",))

    assert original.data == URLAUB.encode()
    assert (original.name, original.mime) == ("burlg.md", "text/markdown")
    assert not original.changed and not original.is_pdf


def test_an_upload_opens_from_the_upload_folder(library: Library, settings: Settings) -> None:
    path = settings.uploads_dir.resolve() / "0123456789abcdef" / "vertrag.docx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 docx")
    passage = library.add(path, ("group:hr",))

    original = library.originals().open(passage, ("public", "group:hr"))

    assert original.mime == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert original.name == "vertrag.docx"


def test_a_symlink_to_a_file_outside_the_folders_is_refused(library: Library, sources: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("KANARIENVOGEL", encoding="utf-8")
    (sources / "harmlos.txt").symlink_to(secret)
    passage = library.add(sources / "harmlos.txt")

    assert refusal(library.originals(), passage) == "original_outside"


def test_a_symlinked_folder_inside_a_source_folder_is_not_followed(
    library: Library, sources: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "geheim.md").write_text("KANARIENVOGEL", encoding="utf-8")
    (sources / "ordner").symlink_to(elsewhere, target_is_directory=True)
    passage = library.add(elsewhere / "geheim.md", recorded_path=str(sources / "ordner" / "geheim.md"))

    assert refusal(library.originals(), passage) == "original_outside"


@pytest.mark.parametrize("where", ["outside", "dotdot", "relative"])
def test_a_path_outside_the_configured_folders_is_refused(
    library: Library, sources: Path, tmp_path: Path, where: str
) -> None:
    outside = tmp_path / "elsewhere.md"
    outside.write_text("KANARIENVOGEL", encoding="utf-8")
    recorded = {
        "outside": str(outside),
        "dotdot": f"{sources}/../elsewhere.md",
        "relative": "elsewhere.md",
    }[where]
    passage = library.add(outside, recorded_path=recorded)

    assert refusal(library.originals(), passage) == "original_outside"


def test_the_data_folder_next_to_the_uploads_is_not_a_root(library: Library, settings: Settings) -> None:
    settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
    state = settings.paths.data_dir.resolve() / "notes.md"
    state.write_text("intern", encoding="utf-8")
    passage = library.add(state)

    assert refusal(library.originals(), passage) == "original_outside"


def test_a_restricted_document_is_refused_to_callers_without_its_token(library: Library, sources: Path) -> None:
    path = sources / "gehaelter.md"
    path.write_text("KANARIENVOGEL-HR", encoding="utf-8")
    passage = library.add(path, ("group:hr",))
    originals = library.originals()

    assert refusal(originals, passage, ("public",)) == "original_denied"
    assert originals.open(passage, ("group:hr",)).data == b"KANARIENVOGEL-HR"


def test_a_passage_naming_another_path_than_the_index_is_refused(library: Library, sources: Path) -> None:
    (sources / "a.md").write_text("A", encoding="utf-8")
    (sources / "b.md").write_text("B", encoding="utf-8")
    passage = library.add(sources / "a.md")
    originals = library.originals()
    tampered = Passage(**{**passage.__dict__, "path": str(sources / "b.md")})
    unknown = Passage(**{**passage.__dict__, "doc_id": "gone"})

    assert refusal(originals, tampered) == "original_not_indexed"
    assert refusal(originals, unknown) == "original_not_indexed"


def test_a_deleted_file_is_named_missing(library: Library, sources: Path) -> None:
    path = sources / "weg.md"
    path.write_text(URLAUB, encoding="utf-8")
    passage = library.add(path)
    originals = library.originals()
    path.unlink()

    assert refusal(originals, passage) == "original_missing"


def test_a_file_changed_since_indexing_is_offered_and_marked_changed(library: Library, sources: Path) -> None:
    path = sources / "burlg.md"
    path.write_text(URLAUB, encoding="utf-8")
    passage = library.add(path)
    originals = library.originals()
    path.write_text("Der Urlaub beträgt jährlich mindestens 30 Werktage.", encoding="utf-8")

    original = originals.open(passage, ("public",))

    assert original.changed
    assert b"30 Werktage" in original.data


def test_a_file_over_the_size_cap_is_refused_with_the_limit(
    settings_factory: Callable[..., Settings], sources: Path
) -> None:
    library = Library(settings_factory(ui__max_original_mb="0.001"))
    path = sources / "gross.txt"
    path.write_bytes(b"x" * 5000)
    passage = library.add(path)

    with pytest.raises(OriginalUnavailableError) as caught:
        library.originals().open(passage, ("public",))

    assert caught.value.code == "original_too_large"
    assert caught.value.params == {"size": "0.0", "limit": "0"}


def test_a_fifo_is_refused_without_blocking(library: Library, sources: Path) -> None:
    fifo = sources / "rohr.txt"
    os.mkfifo(fifo)
    passage = library.add(fifo)

    assert refusal(library.originals(), passage) == "original_outside"


def test_the_cited_pdf_page_is_rendered_as_a_png_of_bounded_size(library: Library, sources: Path) -> None:
    path = write_pdf(sources / "hinweisblatt.pdf", ["Seite eins", "Seite zwei"], poster=True)
    passage = library.add(path)
    originals = library.originals()
    original = originals.open(passage, ("public",))

    png = originals.page_image(original, 2)
    poster = originals.page_image(original, 3)

    assert original.is_pdf and original.mime == "application/pdf"
    for data in (png, poster):
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(data)) as image:
            assert image.width * image.height <= PAGE_MAX_PIXELS
    with Image.open(io.BytesIO(png)) as image:
        assert 700 < image.width < 1000, "an A4 page at screen resolution"


def test_a_rendered_page_is_served_from_the_cache_for_the_same_content(library: Library, sources: Path) -> None:
    path = write_pdf(sources / "a.pdf", ["Seite eins"])
    passage = library.add(path)
    cache = PageImageCache()
    originals = library.originals(cache)

    first = originals.page_image(originals.open(passage, ("public",)), 1)
    second = originals.page_image(originals.open(passage, ("public",)), 1)

    assert second is first and len(cache) == 1


def test_a_page_the_pdf_does_not_have_is_named(library: Library, sources: Path) -> None:
    passage = library.add(write_pdf(sources / "kurz.pdf", ["nur eine Seite"]))
    originals = library.originals()
    original = originals.open(passage, ("public",))

    with pytest.raises(OriginalUnavailableError) as caught:
        originals.page_image(original, 7)

    assert (caught.value.code, caught.value.params) == ("original_page_missing", {"page": 7})


def test_a_damaged_pdf_is_unreadable_not_a_crash() -> None:
    with pytest.raises(OriginalUnavailableError) as caught:
        render_pdf_page(b"%PDF-1.7 kaputt", 1)

    assert caught.value.code == "original_unreadable"


def test_the_page_cache_stays_within_its_bounds() -> None:
    cache = PageImageCache(max_entries=2, max_bytes=10)
    cache.put(("a", "1", 1), b"1234")
    cache.put(("b", "1", 1), b"1234")
    assert cache.get(("a", "1", 1)) == b"1234"  # now the most recently used
    cache.put(("c", "1", 1), b"1234")
    cache.put(("d", "1", 1), b"x" * 11)  # larger than the whole cache: not kept

    assert cache.get(("b", "1", 1)) is None
    assert len(cache) == 2 and cache.size_bytes == 8
    assert cache.get(("d", "1", 1)) is None


def test_unknown_extensions_download_as_bytes() -> None:
    assert mime_type("Tabelle.XLSX") == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert mime_type("rundmail.eml") == "message/rfc822"
    assert mime_type("ohne-endung") == "application/octet-stream"
