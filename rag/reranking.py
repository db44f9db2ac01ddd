"""The reranker seam: re-score the best fused hits with a cross-encoder, or leave them as they are.

No cross-encoder weights ship in any package this project can install, so the default is
:class:`NoReranker`; a company that has a sentence-transformers ``CrossEncoder`` folder sets
``retrieval.reranker_path`` and gets :class:`CrossEncoderReranker`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rag.errors import ModelNotFoundError


class Reranker(Protocol):
    """Scores (query, passage text) pairs; higher is more relevant."""

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text."""
        ...


class NoReranker:
    """Keeps the fused order (scores fall with rank)."""

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return [-float(i) for i in range(len(texts))]


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` loaded from a local folder (never a hub name)."""

    def __init__(self, model_path: Path, batch_size: int = 16) -> None:
        if not Path(model_path).is_dir():
            raise ModelNotFoundError(f"reranker model folder not found: {model_path}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(str(model_path), device="cpu", local_files_only=True)
        self.batch_size = batch_size

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        scores = self._model.predict(
            [(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False
        )
        return [float(s) for s in scores]


def create_reranker(model_path: Path | None) -> Reranker | None:
    """A cross-encoder for ``model_path``; ``None`` (no reranking) when it is empty."""
    return CrossEncoderReranker(model_path) if model_path else None
