"""Domain records shared by ingestion, the index and retrieval."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChunkDraft:
    """A piece of a document, as a chunker produces it, before it has an id.

    ``start``/``end`` are character offsets into the document's extracted text; ``page`` is the 1-based
    page, slide or sheet number where the format has one (``page_end`` when a chunk spans several).
    """

    text: str
    start: int
    end: int
    page: int | None = None
    page_end: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class DocumentRecord:
    """One source file as the index knows it."""

    doc_id: str
    path: str
    title: str
    sha256: str
    kind: str
    access: tuple[str, ...] = ("public",)
    size: int = 0
    mtime: float = 0.0
    page_label: str = "page"
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with everything needed to cite it."""

    chunk_id: int
    doc_id: str
    path: str
    title: str
    text: str
    start: int
    end: int
    page: int | None = None
    page_end: int | None = None
    section: str | None = None
    page_label: str = "page"
    score: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def document(self) -> str:
        """The file name, for display."""
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]
