"""Evaluation sets: BEIR folders, and a company's own question/expected-source cases.

A **BEIR folder** holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/test.tsv`` (``query-id``, ``corpus-id``, ``score``, with a header line). An optional
``answers.jsonl`` (``_id``, ``answers``, ``corpus_id``) adds gold answers for answer evaluation.

A **cases folder** is what a company writes for its own documents: a ``documents/`` folder (any file type
the ingester reads, sub-folders allowed) and ``cases.jsonl``, one case per line::

    {"question": "Wie viele Urlaubstage ...?", "sources": ["hr/urlaub.pdf"], "answers": ["30 Tage"]}

``sources`` are paths relative to ``documents/`` (at least one; each is a correct source); ``answers`` is
optional. ``cases.csv`` with the columns ``question``, ``source`` and ``answer`` works too (several
sources or answers separated by ``|``). Corpus ids are then the relative paths.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import InvalidInputError


@dataclass(frozen=True)
class CorpusDocument:
    """One document of a BEIR corpus."""

    doc_id: str
    title: str
    text: str


@dataclass
class EvalSet:
    """Queries with judgements, and either a BEIR corpus or a folder of the company's own files."""

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    answers: dict[str, list[str]] = field(default_factory=dict)
    gold_document: dict[str, str] = field(default_factory=dict)
    corpus: dict[str, CorpusDocument] = field(default_factory=dict)
    documents_dir: Path | None = None
    corpus_name: str = ""

    @property
    def corpus_label(self) -> str:
        """The name of the set the documents come from (an index can be shared by its query variants)."""
        return self.corpus_name or self.name

    @property
    def judged_queries(self) -> list[str]:
        """Query ids with at least one relevant document, in file order."""
        return [q for q in self.queries if any(r > 0 for r in self.qrels.get(q, {}).values())]

    def with_queries_from(self, other: EvalSet) -> EvalSet:
        """This corpus and judgements with ``other``'s query texts (same ids): cross-lingual retrieval."""
        missing = [q for q in self.queries if q not in other.queries]
        if missing:
            raise InvalidInputError(
                f"{len(missing)} queries of {self.name} have no counterpart in {other.name} (e.g. {missing[0]})",
                code="eval_queries_mismatch",
            )
        return EvalSet(
            name=f"{other.name}->{self.name}",
            queries={q: other.queries[q] for q in self.queries},
            qrels=self.qrels,
            answers={q: other.answers.get(q, a) for q, a in self.answers.items()},
            gold_document=self.gold_document,
            corpus=self.corpus,
            documents_dir=self.documents_dir,
            corpus_name=self.corpus_label,
        )


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"{path}:{number}: not JSON ({e.msg})", code="eval_bad_file") from e
            if not isinstance(row, dict):
                raise InvalidInputError(f"{path}:{number}: expected an object", code="eval_bad_file")
            yield row


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def load_queries(folder: Path) -> EvalSet:
    """Only the queries (and gold answers) of a BEIR folder, to pair with another set's corpus.

    Raises:
        InvalidInputError: ``queries.jsonl`` is missing or malformed.
    """
    folder = Path(folder)
    if not (folder / "queries.jsonl").is_file():
        raise InvalidInputError(f"{folder} has no queries.jsonl", code="eval_not_a_set")
    try:
        queries = {str(r["_id"]): str(r["text"]) for r in _jsonl(folder / "queries.jsonl")}
        answers = (
            {str(r["_id"]): _strings(r.get("answers")) for r in _jsonl(folder / "answers.jsonl")}
            if (folder / "answers.jsonl").is_file()
            else {}
        )
    except (KeyError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"{folder}: malformed query file ({e})", code="eval_bad_file") from e
    return EvalSet(folder.name, queries, {}, answers)


def load_beir(folder: Path) -> EvalSet:
    """Load a BEIR folder (see the module docstring)."""
    corpus = {
        str(r["_id"]): CorpusDocument(str(r["_id"]), str(r.get("title") or ""), str(r.get("text") or ""))
        for r in _jsonl(folder / "corpus.jsonl")
    }
    queries = {str(r["_id"]): str(r["text"]) for r in _jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    qrels_file = folder / "qrels" / "test.tsv"
    with qrels_file.open(encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        for row in rows:
            if not row or row[0] == "query-id":
                continue
            if len(row) < 3:
                raise InvalidInputError(f"{qrels_file}: short line {row!r}", code="eval_bad_file")
            qrels.setdefault(row[0], {})[row[1]] = int(float(row[2]))
    answers: dict[str, list[str]] = {}
    gold: dict[str, str] = {}
    if (folder / "answers.jsonl").exists():
        for r in _jsonl(folder / "answers.jsonl"):
            answers[str(r["_id"])] = _strings(r.get("answers"))
            if r.get("corpus_id") is not None:
                gold[str(r["_id"])] = str(r["corpus_id"])
    return EvalSet(folder.name, queries, qrels, answers, gold, corpus=corpus)


def load_cases(folder: Path) -> EvalSet:
    """Load a cases folder (see the module docstring)."""
    documents = folder / "documents"
    rows: list[dict[str, object]]
    if (folder / "cases.jsonl").exists():
        rows = list(_jsonl(folder / "cases.jsonl"))
    else:
        with (folder / "cases.csv").open(encoding="utf-8", newline="") as f:
            rows = [
                {"question": r.get("question"), "sources": r.get("source"), "answers": r.get("answer")}
                for r in csv.DictReader(f)
            ]
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    answers: dict[str, list[str]] = {}
    gold: dict[str, str] = {}
    for number, row in enumerate(rows, 1):
        question = str(row.get("question") or "").strip()
        sources = [s.replace("\\", "/").lstrip("/") for s in _strings(row.get("sources") or row.get("source"))]
        if not question or not sources:
            raise InvalidInputError(
                f"{folder.name}: case {number} needs a question and at least one source", code="eval_bad_file"
            )
        for source in sources:
            if ".." in Path(source).parts or not (documents / source).is_file():
                raise InvalidInputError(
                    f"{folder.name}: case {number} names {source!r}, which is not a file in documents/",
                    code="eval_bad_file",
                )
        qid = f"q{number}"
        queries[qid] = question
        qrels[qid] = dict.fromkeys(sources, 1)
        gold[qid] = sources[0]
        golds = _strings(row.get("answers") or row.get("answer"))
        if golds:
            answers[qid] = golds
    return EvalSet(folder.name, queries, qrels, answers, gold, documents_dir=documents)


def load_eval_set(folder: Path) -> EvalSet:
    """A BEIR folder or a cases folder, recognised by its files.

    Raises:
        InvalidInputError: the folder is neither, or a file in it is malformed.
    """
    folder = Path(folder)
    loader = None
    if all((folder / n).is_file() for n in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")):
        loader = load_beir
    elif (folder / "documents").is_dir() and any((folder / n).is_file() for n in ("cases.jsonl", "cases.csv")):
        loader = load_cases
    if loader is not None:
        try:
            eval_set = loader(folder)
        except (KeyError, ValueError, UnicodeDecodeError) as e:
            if isinstance(e, InvalidInputError):
                raise
            raise InvalidInputError(
                f"{folder}: malformed evaluation file ({type(e).__name__}: {e})", code="eval_bad_file"
            ) from e
        if not eval_set.judged_queries:
            raise InvalidInputError(f"{folder}: no query has a relevant judgement", code="eval_bad_file")
        return eval_set
    raise InvalidInputError(
        f"{folder} is not an evaluation set: expected corpus.jsonl, queries.jsonl and qrels/test.tsv "
        "(BEIR), or documents/ with cases.jsonl or cases.csv",
        code="eval_not_a_set",
    )
