"""The reranker seam: re-score the best fused hits before the model sees them.

- :class:`SentenceReranker` (the default) adds to each hit's fused score how well its single best
  sentence matches the question, with the embedder the index already uses. A question usually asks about
  one sentence of a passage; a passage's one vector blurs that sentence with the rest, a sentence's own
  vector does not. Sentence vectors are computed for the few hits being re-scored, when first needed,
  and kept in a bounded cache, so ingestion costs nothing more.
- :class:`CrossEncoderReranker` scores (question, passage) pairs with a sentence-transformers
  ``CrossEncoder`` from a local folder (``retrieval.reranker_path``); no such weights ship in any package
  this project can install.
- :class:`NoReranker` keeps the fused order.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.claims import split_sentences
from rag.config import RetrievalSettings
from rag.documents import Passage
from rag.embedding import Embedder
from rag.errors import ModelNotFoundError

Scored = tuple[Passage, float]

_PARAGRAPH = re.compile(r"\n\s*\n")
# A fragment this short ("Abs. 2", a lone heading word) says too little to be matched on its own.
_MIN_SENTENCE_WORDS = 4


class Reranker(Protocol):
    """Re-orders the best fused hits of one question."""

    def rerank(self, query: str, vector: np.ndarray, head: Sequence[Scored]) -> list[Scored]:
        """``head`` (passages with their fused scores, best first) in the new order, with new scores.

        ``vector`` is the question's embedding, for rerankers that use the index's embedder.
        """
        ...


class NoReranker:
    """Keeps the fused order and scores."""

    def rerank(self, query: str, vector: np.ndarray, head: Sequence[Scored]) -> list[Scored]:
        return list(head)


def passage_sentences(text: str) -> list[str]:
    """The units a passage is matched by: its sentences (paragraph breaks end one too), with fragments of
    fewer than four words joined to the sentence before them."""
    units: list[str] = []
    heading = ""  # a paragraph that is only a fragment ("§ 4 Wartezeit") opens the next sentence
    for paragraph in _PARAGRAPH.split(text):
        sentences = split_sentences(paragraph)
        if not sentences:
            continue
        if len(sentences) == 1 and len(sentences[0].split()) < _MIN_SENTENCE_WORDS:
            heading = f"{heading} {sentences[0]}".strip()
            continue
        first = len(units)
        for sentence in sentences:
            if heading:
                sentence, heading = f"{heading} {sentence}", ""
            if len(units) > first and min(len(sentence.split()), len(units[-1].split())) < _MIN_SENTENCE_WORDS:
                units[-1] = f"{units[-1]} {sentence}"
            else:
                units.append(sentence)
    if heading:
        units.append(heading)
    return units


def _standardise(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    deviation = float(array.std())
    return (array - array.mean()) / deviation if deviation > 0 else np.zeros_like(array)


class SentenceReranker:
    """Fused score plus ``weight`` times the best sentence's cosine to the question, each standardised
    over the hits being re-scored (so the two are on one scale whatever the embedder's cosine range).

    Thread-safe; the cache holds up to ``cache_size`` sentence vectors (about 1.5 kB each at 384
    dimensions) and forgets the least recently used.
    """

    def __init__(self, embedder: Embedder, *, weight: float = 1.0, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self.weight = weight
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def clear_cache(self) -> None:
        """Forget every cached sentence vector (the next questions pay for embedding them again)."""
        with self._lock:
            self._cache.clear()

    def best_sentence_scores(self, vector: np.ndarray, texts: Sequence[str]) -> list[float]:
        """For each text, the highest cosine between ``vector`` and one of its sentences."""
        sentences = [passage_sentences(t) or [t] for t in texts]
        vectors = self._vectors([s for group in sentences for s in group])
        query = np.asarray(vector, dtype=np.float32)
        return [max(float(vectors[s] @ query) for s in group) for group in sentences]

    def rerank(self, query: str, vector: np.ndarray, head: Sequence[Scored]) -> list[Scored]:
        if len(head) < 2 or self.weight == 0:
            return list(head)
        best = self.best_sentence_scores(vector, [p.text for p, _ in head])
        combined = _standardise([s for _, s in head]) + self.weight * _standardise(best)
        order = sorted(range(len(head)), key=lambda i: (-combined[i], i))
        return [(head[i][0], float(combined[i])) for i in order]

    def _vectors(self, sentences: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            found = {s: self._cache[s] for s in sentences if s in self._cache}
            for s in found:
                self._cache.move_to_end(s)
        missing = list(dict.fromkeys(s for s in sentences if s not in found))
        if missing:
            # Embedded outside the lock: two threads may both embed a sentence, which only costs time.
            fresh = self.embedder.embed(missing, "passage")
            with self._lock:
                for sentence, row in zip(missing, fresh, strict=True):
                    # A copy: a row of ``fresh`` is a view that would keep the whole batch alive.
                    found[sentence] = self._cache[sentence] = row.copy()
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return found


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
        """One relevance score per (``query``, text) pair."""
        if not texts:
            return []
        scores = self._model.predict(
            [(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False
        )
        return [float(s) for s in scores]

    def rerank(self, query: str, vector: np.ndarray, head: Sequence[Scored]) -> list[Scored]:
        scores = self.score(query, [p.text for p, _ in head])
        order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
        return [(head[i][0], scores[i]) for i in order]


def create_reranker(settings: RetrievalSettings, embedder: Embedder) -> Reranker | None:
    """The configured reranker: a cross-encoder when ``reranker_path`` is set, else ``settings.reranker``
    (``sentences`` with ``embedder``, or ``None`` for none)."""
    if settings.reranker_path:
        return CrossEncoderReranker(settings.reranker_path)
    if settings.reranker == "sentences":
        return SentenceReranker(embedder, weight=settings.sentence_weight)
    return None
