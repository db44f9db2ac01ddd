"""Quotes picked by hauswissen versus quotes the model writes inline: which gives more checkable claims?

    .venv/bin/python -m bench quotes [--questions 20] [--set DIR] [--cache DIR] [--json]

Every claim (sentence) of an answer carries a citation and a quote from the cited source
(:mod:`rag.claims`). Two ways to get the quote, each run through the real ask path
(``Assistant.ask``) on the same questions, interleaved per question, with the same model:

1. ``extracted`` (``llm.inline_quotes: false``, the default): the model writes the answer with [n]
   markers only; the cited source's sentence sharing the most words with the claim is the quote.
2. ``inline`` (``llm.inline_quotes: true``): the prompt asks the model to follow each [n] with a
   verbatim quote „…“ from that source (one more rule and the worked example shows one); the quote it
   wrote is checked verbatim against the cited source.

The corpus and questions: the XQuAD German development set (``../shared/eval/xquad-de``; the index of
``bench answer``, all paragraphs, reused from ``data/bench-cache/answer``), ``--questions`` answerable
questions spaced evenly over the set. Reported per way:

- ``verified``: the share of claims with a citation whose quote passed the check (what a user sees as
  checked rather than "unverified");
- ``all verified``: the share of answered questions whose every cited claim is verified (a quote copied
  into the answer can split into several "claims" that verify themselves; this counts answers);
- ``quote has gold``: the share of answered questions where a verified quote contains a gold answer (the
  quote really supports the fact asked for, not just some sentence of the source);
- ``F1`` / ``contains gold``: the answer against the gold answers, with citation markers and inline
  quotes removed (so quoting is not punished for length);
- ``cites gold``: the share of answered questions citing a chunk of the gold paragraph;
- ``total p50``: seconds from question to the end of the answer (quoting makes the model write more).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.offline import enforce_offline_env

enforce_offline_env()

from bench.answer import spread  # noqa: E402
from bench.corpus import cache_dir  # noqa: E402
from hauswissen.evaluation import ACCESS, build_index  # noqa: E402
from rag.chat import LlamaCppChatModel, create_chat_model  # noqa: E402
from rag.citations import MARKER  # noqa: E402
from rag.claims import Claim  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import create_embedder  # noqa: E402
from rag.evaluation.datasets import load_eval_set  # noqa: E402
from rag.evaluation.metrics import contains_gold, token_f1  # noqa: E402
from rag.service import Answer, Assistant  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SET = REPO.parent / "shared" / "eval" / "xquad-de"
MODES = {"extracted": False, "inline": True}
_QUOTED = re.compile(r"\s*[„\"“»][^„\"“”»«]*[“”\"«]")


def answer_text(text: str) -> str:
    """The answer as scored: citation markers and inline quotes removed."""
    return " ".join(_QUOTED.sub("", MARKER.sub("", text)).split())


def score(answer: Answer, golds: Sequence[str], gold_chunks: set[int]) -> dict[str, Any]:
    """One answer's numbers (``claims`` etc. are counts, the rest 0/1 or F1)."""
    claims: list[Claim] = answer.claims
    cited = [c for c in claims if c.citation is not None]
    verified = [c for c in cited if c.verified]
    text = answer_text(answer.text)
    return {
        "abstained": answer.abstained,
        "claims": len(claims),
        "cited_claims": len(cited),
        "verified_claims": len(verified),
        "all_verified": float(bool(cited) and len(verified) == len(cited)),
        "quote_has_gold": float(any(contains_gold(c.quote or "", golds) for c in verified)),
        "f1": token_f1(text, golds),
        "contains_gold": contains_gold(text, golds),
        "cites_gold": float(any(p.chunk_id in gold_chunks for _, p in answer.cited_sources())),
        "total_s": answer.timings.get("total_s", 0.0),
        "answer": answer.text,
        "quotes": [c.quote for c in claims],
        "verified": [c.verified for c in claims],
    }


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-way totals over the answered (not abstained) questions."""
    answered = [r for r in rows if not r["abstained"]]
    cited = sum(r["cited_claims"] for r in answered)

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in answered) if answered else 0.0

    return {
        "questions": len(rows),
        "answered": len(answered),
        "claims": sum(r["claims"] for r in answered),
        "cited_claims": cited,
        "verified": sum(r["verified_claims"] for r in answered) / cited if cited else 0.0,
        "all_verified": mean("all_verified"),
        "quote_has_gold": mean("quote_has_gold"),
        "f1": mean("f1"),
        "contains_gold": mean("contains_gold"),
        "cites_gold": mean("cites_gold"),
        "total_p50_s": statistics.median(r["total_s"] for r in answered) if answered else 0.0,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"## Quotes: {result['set']}, {result['questions']} questions, {result['model']}",
        "",
        "| way | answered | claims (cited) | verified | all verified | quote has gold | F1 | contains gold "
        "| cites gold | total p50 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, s in result["modes"].items():
        lines.append(
            f"| {mode} | {s['answered']}/{s['questions']} | {s['claims']} ({s['cited_claims']}) | {s['verified']:.2f} "
            f"| {s['all_verified']:.2f} | {s['quote_has_gold']:.2f} | {s['f1']:.3f} | {s['contains_gold']:.2f} "
            f"| {s['cites_gold']:.2f} "
            f"| {s['total_p50_s']:.1f} s |"
        )
    lines.append(f"\nmeasured {result['measured_at']} on {result['cpus']} CPUs")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=20, help="answerable questions, evenly spaced (20)")
    parser.add_argument("--set", type=Path, default=DEFAULT_SET, help="evaluation set (default xquad-de)")
    parser.add_argument("--cache", type=Path, help="index cache folder (default data/bench-cache/answer)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (with every answer)")
    args = parser.parse_args(argv)
    if args.questions <= 0:
        parser.error("--questions must be positive")

    settings = load_settings(REPO / "config.yaml", env=os.environ)
    eval_set = load_eval_set(args.set)
    qids = spread([q for q, golds in eval_set.answers.items() if golds and q in eval_set.queries], args.questions)
    embedder = create_embedder(settings.embedder)
    index = build_index(eval_set, settings, embedder, args.cache or cache_dir() / "answer", progress=False)
    chat = create_chat_model(index.settings.llm, index.settings.paths.models_dir)
    if isinstance(chat, LlamaCppChatModel):
        chat.load()
    assistants = {
        mode: Assistant(
            index.settings.model_copy(
                update={"llm": index.settings.llm.model_copy(update={"inline_quotes": inline})}
            ),
            embedder=embedder, reader=index.reader, chat_model=chat,
        )
        for mode, inline in MODES.items()
    }
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    declined = 0
    try:
        for i, qid in enumerate(qids, 1):
            question = eval_set.queries[qid]
            gold_doc = eval_set.gold_document.get(qid, "")
            gold_chunks = {c for c, d in index.chunk_document.items() if d == gold_doc}
            # Alternate which way goes first, so neither always follows the other's prompt state.
            order = list(MODES) if i % 2 else list(reversed(MODES))
            answers = {mode: assistants[mode].ask(question, ACCESS).answer for mode in order}
            if any(a.evidence is not None and not a.evidence.sufficient for a in answers.values()):
                declined += 1
                continue
            for mode, answer in answers.items():
                scored = score(answer, eval_set.answers[qid], gold_chunks)
                rows[mode].append({"qid": qid, "question": question, **scored})
            print(f"[bench quotes] {i}/{len(qids)} {qid}", file=sys.stderr, flush=True)
    finally:
        index.reader.close()
    result = {
        "set": eval_set.name,
        "questions": len(qids),
        "declined_by_check": declined,
        "model": getattr(chat, "model_path", Path(index.settings.llm.model)).name,
        "cpus": os.cpu_count(),
        "modes": {mode: summarise(r) for mode, r in rows.items()},
        "rows": rows,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
