"""``hauswissen eval``: build a throw-away index from an evaluation set with the real ingestion pipeline,
then score retrieval (against baselines, in the same run) or whole answers.

This lives beside the CLI because it wires ``ingest`` (to build the index) to ``rag`` (to search, ask
and score); ``rag.evaluation`` holds the metrics and runners and knows nothing of ingestion.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embedding import Embedder
from rag.errors import InvalidInputError
from rag.evaluation.answers import (
    ANSWER_METRICS,
    AnswerCase,
    AnswerReport,
    AskedAnswer,
    ask_all,
    load_answers,
    save_answer,
    score_answers,
)
from rag.evaluation.baselines import Bm25Baseline
from rag.evaluation.datasets import EvalSet
from rag.evaluation.metrics import RETRIEVAL_METRICS
from rag.evaluation.retrieval import SystemResult, evaluate_retrieval
from rag.language import Language, detect_language
from rag.reranking import create_reranker
from rag.retrieval import HybridSearch
from rag.store import IndexReader

ACCESS = ("eval",)


@dataclass
class EvalIndex:
    """An index built from an evaluation set, and the map from its chunks to the set's document ids."""

    settings: Settings
    reader: IndexReader
    chunk_document: dict[int, str]
    documents: int
    chunks: int
    ingest_seconds: float


def _corpus_files(eval_set: EvalSet, folder: Path, exclude: frozenset[str]) -> dict[str, str]:
    """Write a BEIR corpus as one Markdown file per document; returns file name -> document id."""
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for n, doc in enumerate(eval_set.corpus.values()):
        if doc.doc_id in exclude:
            continue
        name = f"d{n:07d}.md"
        title = " ".join(doc.title.split())
        body = f"# {title}\n\n{doc.text}\n" if title else f"{doc.text}\n"
        (folder / name).write_text(body, encoding="utf-8")
        names[name] = doc.doc_id
    return names


def _copy_documents(documents: Path, target: Path, exclude: frozenset[str]) -> None:
    """Copy a cases folder's documents, minus the held-out ones, keeping relative paths."""
    for path in sorted(documents.rglob("*")):
        relative = path.relative_to(documents).as_posix()
        if path.is_file() and not path.is_symlink() and relative not in exclude:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)


def _cache_key(eval_set: EvalSet, settings: Settings, embedder: Embedder, exclude: frozenset[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(embedder.identity.as_dict(), sort_keys=True).encode())
    # Engines of one identity give vectors equal to a cosine of 0.9999, not bit for bit: keep them apart.
    digest.update(str(getattr(embedder, "engine", "")).encode())
    digest.update(settings.chunking.model_dump_json().encode())
    digest.update(repr(sorted(exclude)).encode())
    if eval_set.documents_dir is not None:
        for path in sorted(eval_set.documents_dir.rglob("*")):
            if path.is_file():
                st = path.stat()
                digest.update(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for doc in eval_set.corpus.values():
            digest.update(f"{doc.doc_id}\0{doc.title}\0{doc.text}\0".encode())
    # Bump when the pipeline's output for the same input changes (chunking, keyword terms, chunk language).
    digest.update(b"pipeline-3")
    return digest.hexdigest()[:16]


def build_index(
    eval_set: EvalSet,
    settings: Settings,
    embedder: Embedder,
    workdir: Path,
    *,
    exclude: frozenset[str] = frozenset(),
    progress: bool = True,
) -> EvalIndex:
    """Ingest the set's documents (minus ``exclude``) into ``workdir`` with the real pipeline.

    An index already in ``workdir`` built from the same documents, chunking and embedder is reused.
    """
    key = _cache_key(eval_set, settings, embedder, exclude)
    label = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in eval_set.corpus_label)
    root = workdir / f"{label}-{key}"
    data_dir = root / "data"
    stamp = root / "complete.json"
    names: dict[str, str] = {}
    own_files = eval_set.documents_dir is not None and not exclude
    source = eval_set.documents_dir.resolve() if own_files and eval_set.documents_dir else root / "corpus"
    run_settings = settings.model_copy(
        update={"paths": settings.paths.model_copy(update={"data_dir": data_dir, "sources": [source]})}
    )
    seconds = 0.0
    if stamp.exists():
        info = json.loads(stamp.read_text(encoding="utf-8"))
        names, seconds = info["names"], info["seconds"]
    else:
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        if eval_set.documents_dir is None:
            names = _corpus_files(eval_set, source, exclude)
        elif not own_files:
            _copy_documents(eval_set.documents_dir, source, exclude)
        report = Ingestor(run_settings, embedder).ingest([source], access=ACCESS, progress=progress)
        if report.failed:
            first = report.failed[0]
            print(f"warning: {len(report.failed)} documents failed, e.g. {first[0]}: {first[1]}", file=sys.stderr)
        seconds = report.seconds
        stamp.write_text(json.dumps({"names": names, "seconds": seconds}), encoding="utf-8")
    reader = IndexReader(run_settings.index_dir, embedder.identity)
    chunk_document: dict[int, str] = {}
    for record in reader.documents():
        path = Path(record.path)
        doc_id = names[path.name] if eval_set.documents_dir is None else path.relative_to(source.resolve()).as_posix()
        for chunk_id in reader.chunk_ids_of([record.doc_id]):
            chunk_document[chunk_id] = doc_id
    stats = reader.stats()
    return EvalIndex(run_settings, reader, chunk_document, stats.documents, stats.chunks, seconds)


def baseline_texts(eval_set: EvalSet, index: EvalIndex) -> dict[str, str]:
    """Each document's text for the bm25s baseline: the corpus text, or the indexed chunks of a file."""
    if eval_set.corpus:
        return {d.doc_id: f"{d.title}\n{d.text}".strip() for d in eval_set.corpus.values()}
    by_doc: dict[str, list[int]] = {}
    for chunk_id, doc in index.chunk_document.items():
        by_doc.setdefault(doc, []).append(chunk_id)
    return {
        doc: "\n".join(p.text for p in index.reader.passages(sorted(ids), ACCESS)) for doc, ids in by_doc.items()
    }


def corpus_language(texts: Sequence[str]) -> Language:
    """The language most documents are written in."""
    votes = [detect_language(t[:2000], default="en") for t in texts[:200]]
    return "de" if votes.count("de") > len(votes) / 2 else "en"


def run_retrieval(
    eval_set: EvalSet, settings: Settings, embedder: Embedder, workdir: Path, *, progress: bool = True
) -> tuple[EvalIndex, list[SystemResult]]:
    """Build (or reuse) the set's index and score hybrid, dense, keyword and the bm25s baseline."""
    index = build_index(eval_set, settings, embedder, workdir, progress=progress)
    texts = baseline_texts(eval_set, index)
    bm25 = Bm25Baseline(texts, corpus_language(list(texts.values())))
    search = HybridSearch(
        index.reader, embedder, settings.retrieval, create_reranker(settings.retrieval, embedder)
    )
    results = evaluate_retrieval(
        eval_set, search, index.chunk_document, ACCESS, baselines={"bm25s": bm25.rank}
    )
    return index, results


def retrieval_table(eval_set: EvalSet, index: EvalIndex, results: Sequence[SystemResult]) -> str:
    """A plain-text table of the systems' scores, with the margin of hybrid over the best baseline."""
    header = f"{'system':<10}" + "".join(f"{m:>12}" for m in RETRIEVAL_METRICS) + f"{'ms/query':>10}"
    lines = [
        f"{eval_set.name}: {len(eval_set.judged_queries)} judged queries, {index.documents} documents, "
        f"{index.chunks} chunks",
        header,
        "-" * len(header),
    ]
    for r in results:
        lines.append(
            f"{r.system:<10}"
            + "".join(f"{r.metrics[m]:>12.4f}" for m in RETRIEVAL_METRICS)
            + f"{r.ms_per_query:>10.1f}"
        )
    by_name = {r.system: r for r in results}
    if {"hybrid", "dense", "bm25s"} <= by_name.keys():
        best = max(by_name["dense"].metrics["nDCG@10"], by_name["bm25s"].metrics["nDCG@10"])
        margin = by_name["hybrid"].metrics["nDCG@10"] - best
        lines.append(f"hybrid nDCG@10 minus the better of dense and bm25s: {margin:+.4f}")
    return "\n".join(lines)


def retrieval_json(eval_set: EvalSet, index: EvalIndex, results: Sequence[SystemResult]) -> dict[str, object]:
    """The JSON form of a retrieval evaluation (metric keys as in the table)."""
    return {
        "set": eval_set.name,
        "queries": len(eval_set.judged_queries),
        "documents": index.documents,
        "chunks": index.chunks,
        "embedder": index.reader.stats().embedder,
        "systems": {r.system: r.to_dict() for r in results},
    }


def holdout_documents(eval_set: EvalSet, every: int) -> frozenset[str]:
    """Every ``every``-th gold document (in corpus order) is left out to test abstention; 0 keeps all."""
    if every <= 0:
        return frozenset()
    golds = set(eval_set.gold_document.values())
    ordered = [d for d in eval_set.corpus if d in golds] if eval_set.corpus else sorted(golds)
    return frozenset(d for n, d in enumerate(ordered) if n % every == every - 1)


def answer_cases(eval_set: EvalSet, held_out: frozenset[str], limit: int | None) -> list[AnswerCase]:
    """Questions with gold answers, in file order, marked unanswerable when their gold was left out.

    With ``limit``: the first ``limit`` answerable questions, and the first ``max(10, limit // 5)``
    unanswerable ones from anywhere in the set (held-out documents are spread over the corpus, while
    the first questions of a set often cover only its first few documents).
    """
    cases = [
        AnswerCase(
            qid=qid,
            question=eval_set.queries[qid],
            answers=tuple(golds),
            gold_document=eval_set.gold_document.get(qid, ""),
            answerable=eval_set.gold_document.get(qid, "") not in held_out,
        )
        for qid, golds in eval_set.answers.items()
        if qid in eval_set.queries and golds
    ]
    if not cases:
        raise InvalidInputError(f"{eval_set.name} has no gold answers (answers.jsonl)", code="eval_no_answers")
    if not limit:
        return cases
    answerable = [c for c in cases if c.answerable][:limit]
    unanswerable = [c for c in cases if not c.answerable][: max(10, limit // 5)]
    return answerable + unanswerable


def run_answers(
    eval_set: EvalSet,
    settings: Settings,
    embedder: Embedder,
    workdir: Path,
    *,
    limit: int | None = None,
    holdout_every: int = 10,
    progress: Callable[[int, int], None] | None = None,
    show_progress: bool = True,
    save: Path | None = None,
) -> tuple[EvalIndex, AnswerReport]:
    """Ask every case through :class:`~rag.service.Assistant` on an index without the held-out documents.

    With ``save``, each answer is appended to that JSON-lines file as it comes, and answers already there
    are reused: an interrupted run continues where it stopped.
    """
    from rag.service import Assistant

    held_out = holdout_documents(eval_set, holdout_every)
    cases = answer_cases(eval_set, held_out, limit)
    index = build_index(eval_set, settings, embedder, workdir, exclude=held_out, progress=show_progress)
    assistant = Assistant(index.settings, embedder=embedder, reader=index.reader)

    def ask(question: str) -> AskedAnswer:
        answer = assistant.ask(question, ACCESS).answer
        cited = tuple(index.chunk_document.get(p.chunk_id, "") for _, p in answer.cited_sources())
        return AskedAnswer(answer.text, answer.abstained, cited, draft=answer.draft)

    known = load_answers(save) if save else {}
    on_answer = (lambda qid, answer: save_answer(save, qid, answer)) if save else None
    answers = ask_all(cases, ask, progress, known=known, on_answer=on_answer)
    return index, score_answers(cases, answers)


def answers_table(eval_set: EvalSet, report: AnswerReport) -> str:
    """A plain-text summary of an answer evaluation."""
    lines = [
        f"{eval_set.name}: {report.counts['answerable']} answerable and {report.counts['unanswerable']} "
        f"unanswerable questions, {report.counts['citations']} citations, "
        f"{report.counts.get('withdrawn', 0)} written answers withdrawn as not grounded in the sources",
    ]
    for name in ANSWER_METRICS:
        value = report.metrics[name]
        lines.append(f"  {name:<22}{'n/a' if value is None else f'{value:.4f}':>10}")
    seconds = sorted(float(str(r["seconds"])) for r in report.rows)
    if seconds:
        lines.append(f"  {'median s/question':<22}{seconds[len(seconds) // 2]:>10.1f}")
    return "\n".join(lines)
