"""Score whole answers: the ask path (retrieval, prompt, model, citations) on questions with gold answers.

For every question the system is asked exactly as a user would ask it. Scores:

- ``EM``, ``F1``: SQuAD exact match and token F1 of the answer text (citation markers removed) against
  the gold answers, German articles dropped too; a sentence-long answer scores low on EM by nature, so
- ``answer_contains_gold``: the share of answers in which a gold answer occurs (normalised, whole words);
- ``citation_precision``: of all citations in answers to answerable questions, the share that point at a
  chunk of the gold document; ``citation_recall``: the share of answerable questions whose answer cites
  the gold document at least once;
- ``abstention``: for questions whose gold document was left out of the index, the share the system
  declines; ``false_refusal``: the share of answerable questions it declines;
- ``withdrawn_right``: of the answerable questions whose written answer the grounding check withdrew
  (:mod:`rag.grounding`; they count as refused), the share whose withdrawn draft held a gold answer: the
  rest are refusals that spared the reader a wrong answer. ``withdrawn`` counts the drafts withdrawn.

EM, F1 and ``answer_contains_gold`` are over answerable questions; a refusal scores zero there.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.citations import MARKER
from rag.evaluation.metrics import contains_gold, exact_match, token_f1

ANSWER_METRICS = (
    "EM", "F1", "answer_contains_gold", "citation_precision", "citation_recall", "abstention", "false_refusal",
    "withdrawn_right",
)


@dataclass(frozen=True)
class AnswerCase:
    """One question with its gold answers and the document that holds them."""

    qid: str
    question: str
    answers: tuple[str, ...]
    gold_document: str
    answerable: bool = True


@dataclass(frozen=True)
class AskedAnswer:
    """What the system said: its text, whether it declined, and the documents of the sources it cited."""

    text: str
    abstained: bool
    cited_documents: tuple[str, ...]
    seconds: float = 0.0
    draft: str | None = None
    """The model's answer when the grounding check withdrew it (then ``abstained`` is true)."""


@dataclass
class AnswerReport:
    """Mean scores over the cases, and one row per case."""

    metrics: dict[str, float | None]
    counts: dict[str, int]
    rows: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            **{k: (None if v is None else round(v, 4)) for k, v in self.metrics.items()},
            **self.counts,
            "cases": self.rows,
        }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_answers(cases: Sequence[AnswerCase], answers: Mapping[str, AskedAnswer]) -> AnswerReport:
    """Score ``answers`` (by case id) against ``cases``."""
    em: list[float] = []
    f1: list[float] = []
    contained: list[float] = []
    refused: list[float] = []
    abstained: list[float] = []
    cites_gold: list[float] = []
    withdrawn_right: list[float] = []
    withdrawn = 0
    citations = correct_citations = 0
    rows: list[dict[str, object]] = []
    for case in cases:
        answer = answers[case.qid]
        text = MARKER.sub("", answer.text).strip()
        row: dict[str, object] = {
            "id": case.qid,
            "question": case.question,
            "answerable": case.answerable,
            "abstained": answer.abstained,
            "answer": answer.text,
            "cited_documents": list(answer.cited_documents),
            "seconds": round(answer.seconds, 2),
            "draft": answer.draft,
        }
        withdrawn += answer.draft is not None
        if not case.answerable:
            abstained.append(float(answer.abstained))
            rows.append(row)
            continue
        refused.append(float(answer.abstained))
        if answer.draft:  # a false refusal that cost a right answer, or one that spared a wrong one
            withdrawn_right.append(contains_gold(MARKER.sub("", answer.draft), case.answers))
        scored = "" if answer.abstained else text
        scores = {
            "EM": exact_match(scored, case.answers),
            "F1": token_f1(scored, case.answers),
            "answer_contains_gold": contains_gold(scored, case.answers),
        }
        row.update(scores)
        em.append(scores["EM"])
        f1.append(scores["F1"])
        contained.append(scores["answer_contains_gold"])
        citations += len(answer.cited_documents)
        correct_citations += sum(d == case.gold_document for d in answer.cited_documents)
        cites_gold.append(float(case.gold_document in answer.cited_documents))
        rows.append(row)
    metrics: dict[str, float | None] = {
        "EM": _mean(em),
        "F1": _mean(f1),
        "answer_contains_gold": _mean(contained),
        "citation_precision": correct_citations / citations if citations else None,
        "citation_recall": _mean(cites_gold),
        "abstention": _mean(abstained),
        "false_refusal": _mean(refused),
        "withdrawn_right": _mean(withdrawn_right),
    }
    counts = {
        "answerable": len(refused),
        "unanswerable": len(abstained),
        "citations": citations,
        "withdrawn": withdrawn,
    }
    return AnswerReport(metrics, counts, rows)


def ask_all(
    cases: Sequence[AnswerCase],
    ask: Callable[[str], AskedAnswer],
    progress: Callable[[int, int], None] | None = None,
    *,
    known: Mapping[str, AskedAnswer] | None = None,
    on_answer: Callable[[str, AskedAnswer], None] | None = None,
) -> dict[str, AskedAnswer]:
    """Ask every case's question in order; ``progress(done, total)`` after each.

    Cases in ``known`` (answers saved by an earlier, interrupted run) are not asked again;
    ``on_answer(case id, answer)`` is called for each new answer, so a caller can save it at once.
    """
    out: dict[str, AskedAnswer] = {}
    for n, case in enumerate(cases, 1):
        if known and case.qid in known:
            out[case.qid] = known[case.qid]
        else:
            started = time.perf_counter()
            answer = ask(case.question)
            out[case.qid] = AskedAnswer(
                answer.text, answer.abstained, answer.cited_documents, time.perf_counter() - started, answer.draft
            )
            if on_answer:
                on_answer(case.qid, out[case.qid])
        if progress:
            progress(n, len(cases))
    return out


def save_answer(path: Path, qid: str, answer: AskedAnswer) -> None:
    """Append one answer to a JSON-lines file (flushed and synced, so a crash loses at most this line)."""
    line = json.dumps({"id": qid, **asdict(answer)}, ensure_ascii=False)
    with path.open("a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")  # end a line torn by a crash, so this one stays whole
        f.write(line.encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())


def load_answers(path: Path) -> dict[str, AskedAnswer]:
    """Answers saved by :func:`save_answer`; a torn last line (a crash mid-write) is ignored."""
    if not path.exists():
        return {}
    out: dict[str, AskedAnswer] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            out[str(row["id"])] = AskedAnswer(
                str(row["text"]), bool(row["abstained"]), tuple(row["cited_documents"]), float(row["seconds"]),
                row.get("draft"),
            )
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return out
