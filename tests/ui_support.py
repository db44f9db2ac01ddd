"""A small German index and a config for the UI tests (AppTest and the real browser)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import streamlit as st

from rag.documents import ChunkDraft, DocumentRecord
from rag.embedding import HashingEmbedder
from rag.store import IndexWriter

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "ui" / "app.py"

URLAUB = "Der Urlaub beträgt jährlich mindestens 24 Werktage."
KILOMETER = "Für Dienstreisen mit dem eigenen Pkw werden 0,30 Euro je gefahrenem Kilometer erstattet."
HR_CANARY = "CANARY-HR-4711"


@dataclass(frozen=True)
class SampleDocument:
    path: str
    chunks: list[ChunkDraft]
    access: tuple[str, ...] = ("public",)
    page_label: str = "page"
    title: str = ""
    kind: str = field(default="md")


SAMPLE_DOCUMENTS = [
    SampleDocument(
        path="handbuch/burlg.md",
        title="burlg.md",
        chunks=[
            ChunkDraft(
                text=URLAUB + " Als Werktage gelten alle Kalendertage, die nicht Sonn- oder gesetzliche "
                "Feiertage sind.",
                start=0,
                end=140,
                section="§ 3 Dauer des Urlaubs",
            ),
            ChunkDraft(
                text="Der Anspruch auf Urlaub entsteht erstmalig nach sechsmonatigem Bestehen des "
                "Arbeitsverhältnisses.",
                start=140,
                end=240,
                section="§ 4 Wartezeit",
            ),
        ],
    ),
    SampleDocument(
        path="handbuch/reisekostenrichtlinie.pdf",
        title="Reisekostenrichtlinie",
        kind="pdf",
        chunks=[
            ChunkDraft(text=KILOMETER, start=0, end=90, page=2, section="2 Fahrtkosten"),
            ChunkDraft(
                text="Übernachtungskosten werden bis 120 Euro pro Nacht gegen Beleg erstattet.",
                start=90,
                end=170,
                page=3,
                section="3 Übernachtung",
            ),
        ],
    ),
    SampleDocument(
        path="personal/gehaelter.md",
        title="gehaelter.md",
        access=("hr",),
        chunks=[
            ChunkDraft(
                text=f"Vertraulich: Gehaltsbänder und Urlaub der Geschäftsführung {HR_CANARY}.",
                start=0,
                end=80,
                section="Gehälter",
            )
        ],
    ),
]


def build_index(data_dir: Path, documents: list[SampleDocument] = SAMPLE_DOCUMENTS) -> None:
    """Write ``documents`` into ``data_dir/index`` with the 384-d hashing embedder."""
    embedder = HashingEmbedder(384)
    with IndexWriter(data_dir / "index", embedder.identity) as writer:
        for doc in documents:
            digest = hashlib.sha256(doc.path.encode()).hexdigest()
            record = DocumentRecord(
                doc_id=digest[:16],
                path=doc.path,
                title=doc.title or doc.path,
                sha256=digest,
                kind=doc.kind,
                access=doc.access,
                page_label=doc.page_label,
            )
            vectors = embedder.embed([c.text for c in doc.chunks], "passage")
            writer.upsert_document(record, doc.chunks, vectors)
        writer.commit()


def write_config(folder: Path, data_dir: Path, **ui: object) -> Path:
    """A config.yaml pointing at ``data_dir``; backends come from the environment (see ``FAKE_ENV``)."""
    lines = ["paths:", f"  data_dir: {data_dir}", "  sources: []", "ui:", "  language: de"]
    lines += [f"  {key}: {value}" for key, value in ui.items()]
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


FAKE_ENV = {
    "HAUSWISSEN__EMBEDDER__BACKEND": "hashing",
    "HAUSWISSEN__LLM__BACKEND": "scripted",
}


def write_pdf(path: Path, pages: list[str], *, poster: bool = False) -> Path:
    """A real PDF at ``path``: one A4 page (an image at 100 dpi) per text, optionally followed by a
    200 x 200 inch poster page (the largest size PDF allows)."""
    import io

    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=24)
    images = []
    for text in pages:
        image = Image.new("L", (827, 1169), 255)
        ImageDraw.Draw(image).text((80, 120), text, fill=0, font=font)
        images.append(image)
    images[0].save(path, format="PDF", resolution=100, save_all=True, append_images=images[1:])
    if poster:
        pdf = pdfium.PdfDocument(str(path))
        pdf.new_page(14400, 14400).close()
        data = io.BytesIO()
        pdf.save(data)
        pdf.close()
        path.write_bytes(data.getvalue())
    return path


def build_file_index(data_dir: Path, documents: list[SampleDocument]) -> None:
    """Index ``documents`` whose ``path`` names a real file, recorded as the pipeline records it
    (resolved path, content hash, size, mtime), with the 384-d hashing embedder."""
    embedder = HashingEmbedder(384)
    with IndexWriter(data_dir / "index", embedder.identity) as writer:
        for doc in documents:
            path = Path(doc.path).resolve()
            info = path.stat()
            record = DocumentRecord(
                doc_id=hashlib.sha256(str(path).encode()).hexdigest()[:16],
                path=str(path),
                title=doc.title or path.name,
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                kind=doc.kind,
                access=doc.access,
                size=info.st_size,
                mtime=info.st_mtime,
                page_label=doc.page_label,
            )
            writer.upsert_document(record, doc.chunks, embedder.embed([c.text for c in doc.chunks], "passage"))
        writer.commit()


@contextmanager
def configured_app(
    root: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch, sources: Path | None = None
) -> Iterator[Path]:
    """The app configured as in production (``HAUSWISSEN_CONFIG`` plus the fake backends in the
    environment) for ``data_dir``, and optionally one source folder; Streamlit's resource caches are
    cleared before and after, so no Assistant outlives its test. Yields the config file."""
    config = write_config(root, data_dir)
    monkeypatch.setenv("HAUSWISSEN_CONFIG", str(config))
    if sources is not None:
        monkeypatch.setenv("HAUSWISSEN__PATHS__SOURCES", str([str(sources)]))
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    try:
        yield config
    finally:
        st.cache_resource.clear()
