"""A LangChain ``VectorStore`` over the project's durable index, so it plugs into that ecosystem.

Each LangChain ``Document`` becomes one indexed document with one chunk; its id is the document id and
its metadata round-trips unchanged. Every write is one atomic index generation. Searches are filtered by
the store's access tokens during the search, exactly as in the product.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from rag.documents import ChunkDraft, DocumentRecord
from rag.embedding import Embedder, EmbedderIdentity
from rag.store import IndexReader, IndexWriter


def _identity_for(embedding: Embeddings) -> EmbedderIdentity:
    if isinstance(embedding, Embedder):
        return embedding.identity
    dim = len(embedding.embed_query("dimension probe"))
    return EmbedderIdentity(type(embedding).__name__, dim, f"langchain-{type(embedding).__name__}-{dim}")


class HauswissenVectorStore(VectorStore):
    """LangChain adapter of :class:`~rag.store.IndexWriter` / :class:`~rag.store.IndexReader`."""

    def __init__(
        self, index_dir: Path, embedding: Embeddings, access: Sequence[str] = ("public",)
    ) -> None:
        self.index_dir = Path(index_dir)
        self._embedding = embedding
        self.access = tuple(access)
        self.identity = _identity_for(embedding)
        self._reader = IndexReader(self.index_dir, self.identity)

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    def _vectors(self, texts: list[str], query: bool = False) -> np.ndarray:
        if isinstance(self._embedding, Embedder):
            return self._embedding.embed(texts, "query" if query else "passage")
        if query:
            raw = np.asarray([self._embedding.embed_query(t) for t in texts], dtype=np.float32)
        else:
            raw = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        # The index scores by inner product, which is cosine similarity only on unit vectors.
        return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        given: list[str | None] = list(ids) if ids else [None] * len(texts)
        doc_ids = [i if i else uuid.uuid4().hex for i in given]
        if not texts:
            return []
        vectors = self._vectors(texts)
        with IndexWriter(self.index_dir, self.identity) as writer:
            for doc_id, text, meta, vector in zip(doc_ids, texts, metadatas, vectors, strict=True):
                record = DocumentRecord(
                    doc_id=doc_id, path=f"langchain://{doc_id}", title=doc_id, sha256="", kind="text",
                    access=self.access, metadata=dict(meta),
                )
                writer.upsert_document(record, [ChunkDraft(text, 0, len(text))], vector.reshape(1, -1))
            writer.commit()
        self._reader.refresh()
        return doc_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if not ids:
            return None
        with IndexWriter(self.index_dir, self.identity) as writer:
            for doc_id in ids:
                writer.delete_document(doc_id)
            writer.commit()
        self._reader.refresh()
        return True

    def _documents(self, chunk_ids: Sequence[int]) -> list[Document]:
        passages = self._reader.passages(chunk_ids, self.access)
        meta = self._reader.document_metadata(p.doc_id for p in passages)
        return [Document(id=p.doc_id, page_content=p.text, metadata=meta.get(p.doc_id, {})) for p in passages]

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        self._reader.refresh()
        return self._documents(self._reader.chunk_ids_of(list(ids)))

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        self._reader.refresh()
        hits = self._reader.search_dense(self._vectors([query], query=True)[0], k, self.access)
        docs = self._documents([i for i, _ in hits])
        return list(zip(docs, [s for _, s in hits], strict=False))

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return self._max_inner_product_relevance_score_fn

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        index_dir: Path | None = None,
        **kwargs: Any,
    ) -> HauswissenVectorStore:
        if index_dir is None:
            raise ValueError("HauswissenVectorStore.from_texts needs index_dir=")
        store = cls(index_dir, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=list(ids) if ids else None)
        return store
