"""LangChain's standard conformance suites, run against the project's store and retriever adapters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests

from rag.config import RetrievalSettings
from rag.documents import ChunkDraft, DocumentRecord
from rag.embedding import HashingEmbedder
from rag.retrieval import HauswissenRetriever, HybridSearch
from rag.store import IndexReader, IndexWriter
from rag.vectorstore import HauswissenVectorStore


class TestHauswissenVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[VectorStore]:
        yield HauswissenVectorStore(tmp_path / "index", self.get_embeddings())


TEXTS = [
    "Der Urlaub beträgt jährlich mindestens 24 Werktage.",
    "Die Kündigungsfrist beträgt vier Wochen zum Fünfzehnten oder zum Ende eines Kalendermonats.",
    "Die werktägliche Arbeitszeit darf acht Stunden nicht überschreiten.",
    "Der Arbeitgeber hat die wesentlichen Vertragsbedingungen schriftlich niederzulegen.",
]


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> HybridSearch:
    embedder = HashingEmbedder(64)
    index_dir = tmp_path_factory.mktemp("retriever") / "index"
    with IndexWriter(index_dir, embedder.identity) as writer:
        for i, text in enumerate(TEXTS):
            record = DocumentRecord(f"d{i}", f"/docs/d{i}.md", f"Doc {i}", f"h{i}", "md")
            writer.upsert_document(record, [ChunkDraft(text, 0, len(text))], embedder.embed([text], "passage"))
        writer.commit()
    return HybridSearch(IndexReader(index_dir, embedder.identity), embedder, RetrievalSettings())


class TestHauswissenRetriever(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _bind(self, search: HybridSearch) -> None:
        type(self)._search = search

    @property
    def retriever_constructor(self) -> type[HauswissenRetriever]:
        return HauswissenRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"search": type(self)._search, "access": ("public",), "k": 3}

    @property
    def retriever_query_example(self) -> str:
        return "Wie viele Werktage Urlaub?"
