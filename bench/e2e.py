"""End-to-end numbers for the sample corpus on this machine, each next to a baseline from the same run.

    .venv/bin/python -m bench [--questions N] [--threads N]

1. Ingest of examples/docs into a fresh data_dir (documents, chunks, chunks/s) versus the bare embedder
   embedding the same chunk texts (the compute limit).
2. Answers with the default model: time to first token and total, median over N questions, versus bare
   llama.cpp (``create_chat_completion``) on the identical messages.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rag.offline import enforce_offline_env

enforce_offline_env()

from ingest.pipeline import Ingestor  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import create_embedder  # noqa: E402
from rag.models import assemble_default_llm  # noqa: E402
from rag.service import Assistant  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Wie viele Werktage beträgt der gesetzliche Mindesturlaub?",
    "Wie lange darf die werktägliche Arbeitszeit höchstens sein?",
    "Wie hoch ist der Mindestlohn seit dem 1. Januar 2024?",
    "Wann muss der Arbeitgeber die wesentlichen Vertragsbedingungen schriftlich aushändigen?",
    "How many working days of leave does an employee get at least?",
]


def _row(label: str, *cells: object) -> str:
    return " | ".join([f"{label:<36}", *(f"{c!s:>14}" for c in cells)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            REPO / "config.yaml",
            env={
                "HAUSWISSEN__PATHS__DATA_DIR": tmp,
                "HAUSWISSEN__LLM__N_THREADS": str(args.threads),
            },
        )
        embedder = create_embedder(settings.embedder)
        t0 = time.perf_counter()
        report = Ingestor(settings, embedder).ingest([REPO / "examples" / "docs"])
        ingest_s = time.perf_counter() - t0
        assistant = Assistant(settings, embedder=embedder)
        texts = [p.text for p in assistant.reader.passages(list(range(1, report.chunks + 1)), ["public"])]
        t0 = time.perf_counter()
        embedder.embed(texts, "passage")
        bare_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = Ingestor(settings, embedder).ingest([REPO / "examples" / "docs"])
        resync_s = time.perf_counter() - t0

        print("\n## Ingest of examples/docs")
        print(_row("what", "documents", "chunks", "seconds", "chunks/s"))
        print(_row("pipeline (parse+chunk+embed+commit)", report.documents, report.chunks,
                   f"{ingest_s:.1f}", f"{report.chunks / ingest_s:.2f}"))
        print(_row("bare embedder, same chunk texts", "", len(texts), f"{bare_s:.1f}",
                   f"{len(texts) / bare_s:.2f}"))
        print(_row("re-sync, nothing changed", len(again.unchanged), 0, f"{resync_s:.2f}", ""))
        print(f"pipeline / bare embedder throughput: {bare_s / ingest_s:.2f}")

        from llama_cpp import Llama

        model_path = assemble_default_llm(settings.paths.models_dir)
        chat = assistant.chat_model
        bare = Llama(model_path=str(model_path), n_ctx=settings.llm.n_ctx, n_threads=args.threads, verbose=False)
        ours_ttft, ours_total, bare_ttft, bare_total = [], [], [], []
        for question in QUESTIONS[: args.questions]:
            stream = assistant.ask(question)
            answer = stream.answer
            ours_ttft.append(answer.timings["first_token_s"])
            ours_total.append(answer.timings["total_s"])
            messages = assistant.prompt(question, answer.sources, answer.language)
            roles = {"system": "system", "human": "user", "ai": "assistant"}
            payload = [{"role": roles[m.type], "content": str(m.content)} for m in messages]
            t0 = time.perf_counter()
            first = None
            completion: Any = bare.create_chat_completion(
                payload,  # type: ignore[arg-type]
                stream=True, temperature=settings.llm.temperature, max_tokens=settings.llm.max_tokens,
                # The configured seed, as the assistant gets it (with none set, llama.cpp's default here).
                seed=settings.llm.seed,
            )
            for part in completion:
                if first is None and part["choices"][0]["delta"].get("content"):
                    first = time.perf_counter() - t0
            bare_total.append(time.perf_counter() - t0)
            bare_ttft.append(first or bare_total[-1])
        del chat
        print(f"\n## Answers with {model_path.name}, n_threads={args.threads}, {len(ours_ttft)} questions")
        print(_row("what", "TTFT median s", "TTFT max s", "total median s", ""))
        print(_row("hauswissen ask (retrieval+prompt)", f"{statistics.median(ours_ttft):.1f}",
                   f"{max(ours_ttft):.1f}", f"{statistics.median(ours_total):.1f}", ""))
        print(_row("bare llama.cpp, same messages", f"{statistics.median(bare_ttft):.1f}",
                   f"{max(bare_ttft):.1f}", f"{statistics.median(bare_total):.1f}", ""))
    return 0
