"""The external BM25 baseline: ``bm25s`` with a Snowball stemmer and stop words, over whole documents.

This is the baseline MTEB and the BEIR literature report for BM25, run in-process on the same corpus, so
the product's hybrid search is compared with it in the same table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import bm25s
import numpy as np
import Stemmer

from rag.language import Language

_SNOWBALL = {"de": "german", "en": "english"}
# bm25s sets its own logger to DEBUG on import, which would print through any root handler.
logging.getLogger("bm25s").setLevel(logging.WARNING)


class Bm25Baseline:
    """BM25 (bm25s defaults: Lucene variant, k1=1.5, b=0.75) over ``documents`` (id -> text)."""

    def __init__(self, documents: Mapping[str, str], language: Language) -> None:
        self.language = language
        self._ids = list(documents)
        self._stemmer = Stemmer.Stemmer(_SNOWBALL[language])
        tokens = bm25s.tokenize(
            [documents[i] for i in self._ids], stopwords=language, stemmer=self._stemmer, show_progress=False
        )
        self._retriever = bm25s.BM25()
        self._retriever.index(tokens, show_progress=False)
        self._vocab = tokens.vocab

    def rank(self, query: str, k: int = 100) -> list[str]:
        """Document ids, best first (at most ``k``; documents sharing no term are left out)."""
        words = bm25s.tokenize(
            query, stopwords=self.language, stemmer=self._stemmer, return_ids=False, show_progress=False
        )[0]
        known = [w for w in words if w in self._vocab]
        if not known:
            return []
        k = min(k, len(self._ids))
        docs, scores = self._retriever.retrieve([known], k=k, show_progress=False, n_threads=1)
        return [self._ids[int(d)] for d, s in zip(docs[0], scores[0], strict=True) if float(s) > 0 and np.isfinite(s)]
