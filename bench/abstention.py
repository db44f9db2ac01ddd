"""Does the system decline questions its documents cannot answer, without refusing answerable ones?

    .venv/bin/python -m bench abstention [--holdout 10] [--cache DIR] [--json]

Sets: the XQuAD German and English development halves in ``../shared/eval`` and the cross-lingual
pairing (English questions over the German paragraphs, same ids); see ``../shared/eval/SOURCES.md``.
As in ``hauswissen eval answers``, every ``--holdout``-th gold paragraph (10: 12 of 120) is left out of
the index; its questions are the unanswerable ones. That is the hard case: the same Wikipedia article's
other paragraphs stay in the index, on topic but without the asked-for fact.

Each question goes through ``Assistant.retrieve``, the retrieval and answerability check of the real ask
path (no model is loaded: a declined question never reaches it, and the model's own refusals are what
``hauswissen eval answers`` adds). Reported per set, on the same questions in the same run:

- ``configured check``: ``answerability`` as set in ``config.yaml``;
- ``no check``: what the system did before (declines only when nothing is retrieved);
- ``strength alone`` and ``coverage alone``: one signal each, its threshold set to give the same false
  refusal rate as the configured check on that set (an oracle threshold, which flatters them), to show
  what combining the two buys.

``abstention``: share of unanswerable questions declined; ``false refusal``: share of answerable ones
declined. Target (issue 5): abstention >= 0.90 with false refusal <= 0.10. Also the check's own time per
question (p50), excluding retrieval.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.offline import enforce_offline_env

enforce_offline_env()

import numpy as np  # noqa: E402

from bench.corpus import cache_dir  # noqa: E402
from hauswissen.evaluation import ACCESS, answer_cases, build_index, holdout_documents  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import create_embedder  # noqa: E402
from rag.evaluation.datasets import load_eval_set, load_queries  # noqa: E402
from rag.language import detect_language  # noqa: E402
from rag.service import Assistant  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "eval"
SETS = (("xquad-de", None), ("xquad-en", None), ("xquad-de", "xquad-en"))


def _rate(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if flags else float("nan")


def oracle_rate(values: np.ndarray, answerable: np.ndarray, false_refusal: float) -> float:
    """Abstention of ``value < t`` with ``t`` the ``false_refusal`` quantile of the answerable values."""
    if not answerable.any() or answerable.all():
        return float("nan")
    threshold = np.quantile(values[answerable], false_refusal) if false_refusal > 0 else -np.inf
    return float(np.mean(values[~answerable] < threshold))


def measure(corpus: str, queries: str | None, holdout: int, workdir: Path) -> dict[str, Any]:
    """Run one set's questions through the retrieval and answerability check; rows as in the table."""
    settings = load_settings(REPO / "config.yaml")
    eval_set = load_eval_set(EVAL / corpus)
    if queries:
        eval_set = eval_set.with_queries_from(load_queries(EVAL / queries))
    embedder = create_embedder(settings.embedder)
    held_out = holdout_documents(eval_set, holdout)
    cases = answer_cases(eval_set, held_out, None)
    index = build_index(eval_set, settings, embedder, workdir, exclude=held_out, progress=False)
    assistant = Assistant(index.settings, embedder=embedder, reader=index.reader)
    answerable, declined, nothing, strength, coverage, check_ms = [], [], [], [], [], []
    for case in cases:
        found = assistant.retrieve(case.question, ACCESS)
        started = time.perf_counter()
        evidence = (
            # The question's own language, as Assistant.retrieve takes it (the set's corpus language
            # made every XQuAD-en question look cross-lingual here, so "coverage alone" read 0.00).
            assistant.answerability.assess(case.question, found.sources, detect_language(case.question, default="de"))
            if found.sources else None
        )
        check_ms.append((time.perf_counter() - started) * 1000)
        answerable.append(case.answerable)
        declined.append(not found.answerable)
        nothing.append(not found.sources)
        strength.append(max((p.scores.get("fused", p.score) for p in found.sources), default=0.0))
        coverage.append(evidence.coverage if evidence else 0.0)
    index.reader.close()
    y = np.array(answerable)
    dec = np.array(declined)
    fr = _rate(list(dec[y]))
    rows = {
        "configured check": {"abstention": _rate(list(dec[~y])), "false_refusal": fr},
        "no check": {
            "abstention": _rate(list(np.array(nothing)[~y])), "false_refusal": _rate(list(np.array(nothing)[y]))
        },
        "strength alone": {"abstention": oracle_rate(np.array(strength), y, fr), "false_refusal": fr},
    }
    if not queries:
        rows["coverage alone"] = {"abstention": oracle_rate(np.array(coverage), y, fr), "false_refusal": fr}
    name = f"{queries} questions on {corpus}" if queries else corpus
    return {
        "set": name,
        "answerable": int(y.sum()),
        "unanswerable": int((~y).sum()),
        "check_ms_p50": float(np.median(check_ms)),
        "rows": rows,
        "settings": settings.answerability.model_dump(),
    }


def render(results: Sequence[dict[str, Any]]) -> str:
    """The table: per set, abstention and false refusal of each system, and the check's time."""
    lines = [f"{'set':<32} {'system':<18} {'abstention':>10} {'false refusal':>14}"]
    for r in results:
        label = f"{r['set']} ({r['answerable']}+{r['unanswerable']})"
        for system, m in r["rows"].items():
            lines.append(f"{label:<32} {system:<18} {m['abstention']:>10.2f} {m['false_refusal']:>14.2f}")
            label = ""
        lines.append(f"{'':<32} check time p50: {r['check_ms_p50']:.1f} ms")
    ok = all(
        r["rows"]["configured check"]["abstention"] >= 0.9 and r["rows"]["configured check"]["false_refusal"] <= 0.1
        for r in results
    )
    lines.append(f"target abstention >= 0.90 with false refusal <= 0.10 on every set: {'PASS' if ok else 'MISS'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench abstention", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--holdout", type=int, default=10, help="leave out every N-th gold paragraph (10)")
    parser.add_argument("--cache", type=Path, help="index cache folder (default data/bench-cache/abstention)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    workdir = args.cache or cache_dir() / "abstention"
    results = [measure(corpus, queries, args.holdout, workdir) for corpus, queries in SETS]
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0
