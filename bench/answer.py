"""Time to the first token of an answer with the default model, next to bare llama.cpp on the same prompt.

    .venv/bin/python -m bench answer [--questions 20] [--top-k K | --sweep-k 3,5] [--sweep-excerpt 250;500/125]
                                     [--max-tokens 16] [--threads N] [--threads-batch N] [--first] [--no-cold]
                                     [--set DIR] [--cache DIR] [--details] [--json]

The corpus and questions: the XQuAD German development set in ``../shared/eval/xquad-de`` (120
Wikipedia paragraphs, 612 questions with gold answers; see ``../shared/eval/SOURCES.md``). The
paragraphs are ingested with the real pipeline (:func:`hauswissen.evaluation.build_index`, the index
``hauswissen eval`` builds) into ``$HAUSWISSEN_BENCH_CACHE/answer`` (default ``data/bench-cache/answer``)
and reused by later runs. ``--questions`` (20) questions are taken evenly spaced over the set's
answerable questions in file order; not hand-picked. Spaced, not the first N: the set has about five
questions per paragraph, so the first 20 ask about only two paragraphs, retrieve nearly the same
sources in the same order, and llama.cpp would reuse those sources' KV cache too, flattering the
numbers. ``--first`` takes the first N instead, to see that effect.

Settings come from ``config.yaml`` and ``HAUSWISSEN__*`` (the default ``llamacpp`` backend with the
packaged Qwen2.5-Coder-1.5B Q4_K_M, n_threads/n_threads_batch as configured), with ``llm.max_tokens``
set to ``--max-tokens`` (16: the first token does not need a long answer; keeps the run bounded) and
``retrieval.top_k`` to each ``--sweep-k`` value (default: the configured top_k, 3) and
``retrieval.excerpt_chars`` to each ``--sweep-excerpt`` value (default: the configured one).

Three rows per k and excerpt budget, interleaved per question so that load on a shared machine hits all three alike:

1. ``hauswissen ask``: ``Assistant(settings).ask(question)`` as the UI calls it, the stream read to
   the end. TTFT is ``timings["first_token_s"]``: from the call, so it includes retrieval (question
   embedding, dense + keyword search, fusion). One Assistant and one chat model for the whole run, as
   the UI shares one per process.
2. ``bare llama.cpp, warm prefix``: a second ``llama_cpp.Llama`` with the same file, n_ctx, n_threads
   and n_threads_batch, ``create_chat_completion(messages, stream=True, max_tokens=...)`` on exactly the
   messages the product built (converted as :mod:`rag.chat` does), in the same order; llama-cpp-python
   keeps the previous prompt's tokens and re-evaluates only what follows the common prefix (the system
   prompt and worked example of :mod:`rag.prompting`). TTFT: from the call to the first content delta.
3. ``bare llama.cpp, cold``: the same after ``Llama.reset()``, so the whole prompt is evaluated: what
   the reused prefix saves (and what a model without it would cost).

Each model is loaded and answers one warm-up question (untimed; its TTFT is shown as the first
question after start-up) before any timing. Prompt tokens: the chat template of the GGUF rendered on
the messages and tokenized by ``LlamaCppChatModel.tokenize`` (what llama.cpp evaluates); "reusable
tokens": the leading tokens shared with the previous question's prompt (what llama.cpp can skip).
p50/p95: linear interpolation between the measured values (``numpy.percentile``). Target: hauswissen
TTFT <= 5 s at p50 and p95.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rag.offline import enforce_offline_env

enforce_offline_env()

import numpy as np  # noqa: E402
from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import BaseMessage  # noqa: E402

from bench.corpus import cache_dir  # noqa: E402
from hauswissen.evaluation import ACCESS, build_index  # noqa: E402
from rag.chat import LlamaCppChatModel, _to_openai_dict, create_chat_model, stream_text  # noqa: E402
from rag.config import Settings, load_settings  # noqa: E402
from rag.embedding import create_embedder  # noqa: E402
from rag.evaluation.datasets import EvalSet, load_eval_set  # noqa: E402
from rag.excerpts import budget, excerpt  # noqa: E402
from rag.models import default_llm_path  # noqa: E402
from rag.service import Assistant  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SET = REPO.parent / "shared" / "eval" / "xquad-de"
TARGET_TTFT_S = 5.0
WARM_UP_QUESTION = "Worum geht es in diesen Texten?"
ROWS = ("hauswissen ask", "bare llama.cpp, warm prefix", "bare llama.cpp, cold")

OpenAIMessages = list[dict[str, str]]
PromptTokenizer = Callable[[OpenAIMessages], list[int]]
T = TypeVar("T")


class BareLlama(Protocol):
    """The part of ``llama_cpp.Llama`` the baseline uses (tests pass a fake)."""

    def create_chat_completion(self, messages: Any, **kwargs: Any) -> Any: ...

    def reset(self) -> None: ...


@dataclass
class Call:
    """One timed answer."""

    question: str
    ttft_s: float
    total_s: float
    retrieval_s: float = 0.0
    prompt_tokens: int = 0
    reusable_tokens: int = 0
    sources: int = 0
    source_chars: int = 0
    pieces: int = 0
    declined: bool = False
    """The answerability check declined it before the model: no TTFT to measure (left out of p50/p95)."""


@dataclass
class Row:
    """One way of answering the same questions at one k."""

    name: str
    k: int
    calls: list[Call] = field(default_factory=list)
    excerpt: str = ""
    """The ``retrieval.excerpt_chars`` of this row ("250", "500/125")."""

    def summary(self) -> dict[str, Any]:
        ttft = [c.ttft_s for c in self.calls if not c.declined]
        return {
            "name": self.name,
            "k": self.k,
            "excerpt": self.excerpt,
            "questions": len(self.calls),
            "declined": sum(c.declined for c in self.calls),
            "ttft_p50_s": _pct(ttft, 50),
            "ttft_p95_s": _pct(ttft, 95),
            "ttft_max_s": max(ttft) if ttft else 0.0,
            "total_p50_s": _pct([c.total_s for c in self.calls], 50),
            "retrieval_p50_s": _pct([c.retrieval_s for c in self.calls], 50),
            "prompt_tokens_p50": _pct([float(c.prompt_tokens) for c in self.calls], 50),
            "reusable_tokens_p50": _pct([float(c.reusable_tokens) for c in self.calls], 50),
            "sources_p50": _pct([float(c.sources) for c in self.calls], 50),
            "source_chars_p50": _pct([float(c.source_chars) for c in self.calls], 50),
            "calls": [asdict(c) for c in self.calls],
        }


@dataclass(frozen=True)
class Setup:
    """One configuration whose rows are measured: sources per question and their excerpt budgets."""

    k: int
    excerpt: tuple[int, ...]

    @property
    def label(self) -> str:
        return _budget_label(self.excerpt)


def _budget_label(budgets: Sequence[int]) -> str:
    """Excerpt budgets as written on the command line: "250", "450/125"."""
    return "/".join(map(str, budgets))


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _say(message: str) -> None:
    print(f"[bench answer] {message}", file=sys.stderr, flush=True)


def spread(items: Sequence[T], n: int) -> list[T]:
    """``n`` items spaced evenly over ``items`` (deterministic; all of them when ``n`` is larger)."""
    if n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def pick_questions(eval_set: EvalSet, n: int, *, first: bool = False) -> list[str]:
    """``n`` answerable questions of the set in file order: evenly spaced, or the first ``n``."""
    texts = [eval_set.queries[q] for q, golds in eval_set.answers.items() if golds and q in eval_set.queries]
    if not texts:  # a set without answers.jsonl: its judged queries
        texts = [eval_set.queries[q] for q in eval_set.judged_queries]
    return texts[:n] if first else spread(texts, n)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def open_bare(path: Path, settings: Settings) -> BareLlama:
    """A bare ``llama_cpp.Llama`` with the product's settings (as ``LlamaCppChatModel`` loads it)."""
    from llama_cpp import Llama

    llm = settings.llm
    bare: Any = Llama(  # Any: Llama's typed messages parameter is narrower than the protocol's
        model_path=str(path), n_ctx=llm.n_ctx, n_threads=llm.n_threads,
        n_threads_batch=llm.n_threads_batch or llm.n_threads, verbose=False,
    )
    return bare


def prompt_tokenizer(chat: BaseChatModel) -> PromptTokenizer:
    """Messages -> the tokens llama.cpp evaluates: the GGUF's chat template rendered as
    llama-cpp-python renders it, tokenized by ``LlamaCppChatModel.tokenize``."""
    if not isinstance(chat, LlamaCppChatModel):
        raise SystemExit(f"bench answer measures the llamacpp backend, not {type(chat).__name__}")
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    chat.load()
    llama = chat._llama
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise SystemExit(f"{chat.model_path.name} has no chat template; prompt tokens cannot be counted")

    def text_of(token: int) -> str:
        return str(llama._model.token_get_text(token)) if token != -1 else ""

    formatter = Jinja2ChatFormatter(
        template=template, eos_token=text_of(llama.token_eos()), bos_token=text_of(llama.token_bos())
    )

    def tokens(messages: OpenAIMessages) -> list[int]:
        rendered = formatter(messages=messages)  # type: ignore[arg-type]
        return chat.tokenize(rendered.prompt, special=True)

    return tokens


def bare_call(bare: BareLlama, messages: OpenAIMessages, settings: Settings, *, cold: bool) -> tuple[float, float, int]:
    """(ttft_s, total_s, content pieces) of one streamed completion on ``bare``."""
    if cold:
        bare.reset()
    t0 = time.perf_counter()
    first: float | None = None
    pieces = 0
    # The configured seed, as the assistant's own calls get it (with none set, llama.cpp's default here).
    completion = bare.create_chat_completion(
        messages, stream=True, temperature=settings.llm.temperature, max_tokens=settings.llm.max_tokens,
        seed=settings.llm.seed,
    )
    try:
        for part in completion:
            if part["choices"][0]["delta"].get("content"):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - t0
    finally:
        close = getattr(completion, "close", None)
        if close is not None:
            close()
    total = time.perf_counter() - t0
    return (total if first is None else first), total, pieces


def ask_call(assistant: Assistant, question: str) -> tuple[Call, list[BaseMessage]]:
    """One question through the product path; returns the timings and the messages the model saw."""
    stream = assistant.ask(question, access=ACCESS)
    pieces = sum(1 for _ in stream)
    timings = stream.answer.timings
    total = timings["total_s"]
    call = Call(
        question=stream.question,
        ttft_s=timings.get("first_token_s", total),
        total_s=total,
        retrieval_s=timings["retrieval_s"],
        sources=len(stream.sources),
        source_chars=sum(
            len(excerpt(stream.question, p.text, budget(assistant.settings.retrieval.excerpt_chars, rank)))
            for rank, p in enumerate(stream.sources)
        ),
        pieces=pieces,
        declined=stream.answer.evidence is not None and not stream.answer.evidence.sufficient,
    )
    return call, assistant.prompt(stream.question, stream.sources, stream.language)


def warm_up_call(assistant: Assistant, question: str) -> tuple[float, list[BaseMessage]]:
    """Load the product's model and cache its prompt prefix: the model answers ``question`` from its
    sources even where the answerability check would decline it (a declined warm-up loads nothing)."""
    started = time.perf_counter()
    messages = assistant.prompt(question, assistant.search(question, ACCESS), "de")
    first = None
    for _ in stream_text(assistant.chat_model, messages):
        if first is None:
            first = time.perf_counter() - started
    return (first if first is not None else time.perf_counter() - started), messages


def measure(
    questions: Sequence[str],
    settings: Settings,
    assistant_for: Callable[[Setup], Assistant],
    bare: BareLlama,
    tokenize: PromptTokenizer,
    setups: Iterable[Setup],
    *,
    cold: bool = True,
    progress: Callable[[str], None] = _say,
) -> tuple[list[Row], dict[str, float]]:
    """Warm up, then per setup and question: the product path, bare warm and (with ``cold``) bare cold."""
    setups = list(setups)
    warm_up: dict[str, float] = {}
    first_assistant = assistant_for(setups[0])
    warm_up["hauswissen_first_ttft_s"], messages = warm_up_call(first_assistant, WARM_UP_QUESTION)
    payload = [_to_openai_dict(m) for m in messages]
    warm_up["bare_first_ttft_s"] = bare_call(bare, payload, settings, cold=False)[0]
    previous_ours = previous_bare = tokenize(payload)
    rows: list[Row] = []
    for setup in setups:
        k, label = setup.k, setup.label
        assistant = first_assistant if setup == setups[0] else assistant_for(setup)
        ours, warm, reset = (Row(name, k, excerpt=label) for name in ROWS)
        for n, question in enumerate(questions, 1):
            call, messages = ask_call(assistant, question)
            payload = [_to_openai_dict(m) for m in messages]
            tokens = tokenize(payload)
            call.prompt_tokens = len(tokens)
            call.reusable_tokens = common_prefix(previous_ours, tokens)
            previous_ours = tokens
            ours.calls.append(call)
            same = replace(call, retrieval_s=0.0)
            ttft, total, pieces = bare_call(bare, payload, settings, cold=False)
            warm.calls.append(replace(same, ttft_s=ttft, total_s=total, pieces=pieces,
                                      reusable_tokens=common_prefix(previous_bare, tokens)))
            previous_bare = tokens
            line = f"k={k} excerpt {label} {n}/{len(questions)}: ttft ours {call.ttft_s:.2f} s, bare warm {ttft:.2f} s"
            if cold:
                ttft, total, pieces = bare_call(bare, payload, settings, cold=True)
                reset.calls.append(replace(same, ttft_s=ttft, total_s=total, pieces=pieces, reusable_tokens=0))
                line += f", bare cold {ttft:.2f} s"
            progress(f"{line} ({len(tokens)} prompt tokens, {call.reusable_tokens} reusable)")
        rows += [ours, warm] + ([reset] if cold else [])
    return rows, warm_up


def _targets(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    several = len({s["excerpt"] for s in summaries}) > 1
    for s in summaries:
        if s["name"] != ROWS[0]:
            continue
        for q in ("p50", "p95"):
            value = s[f"ttft_{q}_s"]
            name = f"hauswissen TTFT {q}, k={s['k']}" + (f", excerpt {s['excerpt']}" if several else "")
            out.append({"name": name, "value": value, "target": TARGET_TTFT_S,
                        "verdict": "PASS" if value <= TARGET_TTFT_S else "MISS"})
    return out


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(
            f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ) + " |"
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, lines)])


def render(result: dict[str, Any], *, details: bool = False) -> str:
    """The result as text: one row per way of answering and k, the targets, optionally every question."""
    s = result["settings"]
    rows = result["rows"]
    lines = [
        f"\n## Answer latency: {result['questions']} questions of {result['set']} "
        f"({result['documents']} documents, {result['chunks']} chunks), "
        f"{'first N' if result['first'] else 'evenly spaced'}",
        f"model {result['model']} (loaded in {result['load_s']:.1f} s, not timed), n_ctx {s['n_ctx']}, "
        f"n_threads {s['n_threads']}, n_threads_batch {s['n_threads_batch']}, max_tokens {s['max_tokens']}, "
        f"temperature {s['temperature']}; embedder {result['embedder']}; {result['cpus']} CPUs",
        f"first question after start-up (warm-up, untimed below): hauswissen "
        f"{result['warm_up']['hauswissen_first_ttft_s']:.2f} s, bare {result['warm_up']['bare_first_ttft_s']:.2f} s\n",
        _table(
            ["what", "k", "excerpt", "TTFT p50 s", "TTFT p95 s", "TTFT max s", "total p50 s", "retrieval p50 s",
             "prompt tok p50", "reusable tok p50", "sources p50", "source chars p50", "p95 <= 5 s"],
            [
                [r["name"], str(r["k"]), r["excerpt"], f"{r['ttft_p50_s']:.2f}", f"{r['ttft_p95_s']:.2f}",
                 f"{r['ttft_max_s']:.2f}",
                 f"{r['total_p50_s']:.2f}", f"{r['retrieval_p50_s']:.3f}" if r["name"] == ROWS[0] else "-",
                 f"{r['prompt_tokens_p50']:.0f}", f"{r['reusable_tokens_p50']:.0f}", f"{r['sources_p50']:.0f}",
                 f"{r['source_chars_p50']:.0f}", "PASS" if r["ttft_p95_s"] <= TARGET_TTFT_S else "MISS"]
                for r in rows
            ],
        ),
        "",
        _table(["target", "measured s", "target s", "verdict"],
               [[t["name"], f"{t['value']:.2f}", f"<= {t['target']:g}", t["verdict"]] for t in result["targets"]]),
    ]
    by_key = {(r["name"], r["k"], r["excerpt"]): r for r in rows}
    for k, label in ((r["k"], r["excerpt"]) for r in rows if r["name"] == ROWS[0]):
        ours, warm, cold = (by_key.get((name, k, label)) for name in ROWS)
        if ours and warm:
            note = (f"k={k}, excerpt {label}: hauswissen minus bare warm, TTFT p50: "
                    f"{ours['ttft_p50_s'] - warm['ttft_p50_s']:+.2f} s (retrieval p50 {ours['retrieval_p50_s']:.3f} s)")
            if cold:
                saved = cold["ttft_p50_s"] - warm["ttft_p50_s"]
                note += f"; the reused prefix saves {saved:.2f} s at p50 (cold - warm)"
            lines.append(note)
        if ours and ours.get("declined"):
            lines.append(f"k={k}, excerpt {label}: {ours['declined']} of {ours['questions']} questions declined by "
                         "the answerability check before the model; left out of every row's TTFT")
    if details:
        for r in rows:
            lines += [f"\n{r['name']}, k={r['k']}, excerpt {r['excerpt']}", _table(
                ["question", "TTFT s", "total s", "prompt tok", "reusable tok", "sources", "source chars"],
                [[c["question"][:60], f"{c['ttft_s']:.2f}", f"{c['total_s']:.2f}", str(c["prompt_tokens"]),
                  str(c["reusable_tokens"]), str(c["sources"]), str(c["source_chars"])] for c in r["calls"]],
            )]
    return "\n".join(lines)


def _excerpts(text: str) -> list[tuple[int, ...]]:
    try:
        out = [tuple(int(x) for x in part.split("/")) for part in text.split(";") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not excerpt budgets like 250;500/125: {text!r}") from None
    if not out or any(n < 0 for budgets in out for n in budgets):
        raise argparse.ArgumentTypeError(f"budgets must be 0 or more characters: {text!r}")
    return out


def _ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not ks or any(k <= 0 or k > 50 for k in ks):
        raise argparse.ArgumentTypeError(f"k must be 1..50: {text!r}")
    return ks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench answer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=20, help="questions per k and excerpt budget (default 20)")
    parser.add_argument("--top-k", type=int, help="sources per question (default: retrieval.top_k)")
    parser.add_argument("--sweep-k", type=_ks, help="several k in one run, e.g. 3,5 (overrides --top-k)")
    parser.add_argument(
        "--sweep-excerpt", type=_excerpts,
        help="several retrieval.excerpt_chars in one run, ';' between them, '/' between ranks: '250;500/125' "
        "(default: the configured one)",
    )
    parser.add_argument("--max-tokens", type=int, default=16, help="llm.max_tokens for every answer (default 16)")
    parser.add_argument("--threads", type=int, help="llm.n_threads (default: configured)")
    parser.add_argument("--threads-batch", type=int, help="llm.n_threads_batch (default: configured)")
    parser.add_argument("--first", action="store_true", help="the first N questions instead of evenly spaced")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold bare llama.cpp row")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="evaluation set (default xquad-de)")
    parser.add_argument("--cache", type=Path, help="index cache folder (default data/bench-cache/answer)")
    parser.add_argument("--details", action="store_true", help="also print every question's numbers")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)
    if args.questions <= 0 or args.max_tokens <= 0:
        parser.error("--questions and --max-tokens must be positive")

    settings = load_settings(REPO / "config.yaml", env=os.environ)
    llm_update: dict[str, Any] = {"max_tokens": args.max_tokens}
    if args.threads:
        llm_update["n_threads"] = args.threads
    if args.threads_batch is not None:
        llm_update["n_threads_batch"] = args.threads_batch
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update=llm_update)})
    ks = args.sweep_k or [args.top_k or settings.retrieval.top_k]
    excerpts = args.sweep_excerpt or [tuple(settings.retrieval.excerpt_chars)]
    setups = [Setup(k, e) for k in ks for e in excerpts]

    eval_set = load_eval_set(args.set)
    questions = pick_questions(eval_set, args.questions, first=args.first)
    embedder = create_embedder(settings.embedder)
    workdir = args.cache or cache_dir() / "answer"
    _say(f"index of {eval_set.name} in {workdir} (built once, then reused)")
    index = build_index(eval_set, settings, embedder, workdir, progress=False)
    embedder.embed_query(WARM_UP_QUESTION)  # the embedder's first call is slow; keep it out of retrieval_s

    chat = create_chat_model(index.settings.llm, index.settings.paths.models_dir)
    t0 = time.perf_counter()
    tokenize = prompt_tokenizer(chat)  # loads the model
    load_s = time.perf_counter() - t0
    path = chat.model_path if isinstance(chat, LlamaCppChatModel) else default_llm_path(settings.paths.models_dir)
    bare = open_bare(path, index.settings)

    def assistant_for(setup: Setup) -> Assistant:
        retrieval = {"top_k": setup.k, "excerpt_chars": list(setup.excerpt)}
        run = index.settings.model_copy(
            update={"retrieval": index.settings.retrieval.model_copy(update=retrieval)}
        )
        return Assistant(run, embedder=embedder, reader=index.reader, chat_model=chat)

    _say(f"{len(questions)} questions, k in {ks}, excerpts {[_budget_label(e) for e in excerpts]}, model {path.name}")
    try:
        rows, warm_up = measure(questions, index.settings, assistant_for, bare, tokenize, setups, cold=not args.no_cold)
    finally:
        index.reader.close()
    summaries = [r.summary() for r in rows]
    llm = index.settings.llm
    result = {
        "set": eval_set.name,
        "questions": len(questions),
        "first": args.first,
        "documents": index.documents,
        "chunks": index.chunks,
        "ks": ks,
        "excerpts": [_budget_label(e) for e in excerpts],
        "model": path.name,
        "load_s": load_s,
        "embedder": embedder.identity.name,
        "cpus": os.cpu_count(),
        "settings": {"n_ctx": llm.n_ctx, "n_threads": llm.n_threads, "n_threads_batch": llm.n_threads_batch,
                     "max_tokens": llm.max_tokens, "temperature": llm.temperature},
        "warm_up": warm_up,
        "rows": summaries,
        "targets": _targets(summaries),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render(result, details=args.details))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
