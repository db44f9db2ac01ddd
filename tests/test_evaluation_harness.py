"""``hauswissen eval`` end to end on tiny hand-made sets: the real ingestion pipeline builds the index, the
hashing embedder and the scripted chat model stand in for real models."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hauswissen import evaluation
from hauswissen.cli import main
from rag.config import Settings
from rag.embedding import HashingEmbedder
from rag.evaluation.datasets import load_eval_set
from rag.evaluation.metrics import RETRIEVAL_METRICS

SYSTEMS = ("hybrid", "dense", "keyword", "bm25s")
ANSWER_KEYS = (
    "EM", "F1", "answer_contains_gold", "citation_precision", "citation_recall", "abstention", "false_refusal",
)

# One sentence per document, so that the scripted model (which echoes the first sentence of source 1)
# repeats the gold answer when retrieval puts the gold document first.
CORPUS = [
    ("urlaub", "Urlaub", "Jeder Arbeitnehmer hat Anspruch auf 30 Urlaubstage im Kalenderjahr."),
    ("kuendigung", "Kündigungsfrist", "Die Kündigungsfrist beträgt vier Wochen zum Monatsende."),
    ("mindestlohn", "Mindestlohn", "Der gesetzliche Mindestlohn liegt bei 12,82 Euro pro Stunde."),
    ("arbeitszeit", "Arbeitszeit", "Die werktägliche Arbeitszeit darf acht Stunden nicht überschreiten."),
    ("fahrrad", "Bicycles", "Employees park their bicycles in the courtyard garage."),
    ("kantine", "Kantine", "Die Kantine öffnet mittags um halb zwölf mit vegetarischem Eintopf."),
    ("laptop", "Laptops", "New laptops are ordered through the helpdesk ticket portal."),
    ("reisekosten", "Reisekosten", "Reisekosten werden über das Spesenformular abgerechnet."),
]
# (query id, text, gold document, gold answer); each query shares distinctive words with one document.
QUERIES = [
    ("q1", "Wie viele Urlaubstage im Kalenderjahr?", "urlaub", "30 Urlaubstage"),
    ("q2", "Welche Kündigungsfrist zum Monatsende?", "kuendigung", "vier Wochen"),
    ("q3", "Wie hoch ist der gesetzliche Mindestlohn?", "mindestlohn", "12,82 Euro"),
    ("q4", "Where do employees park bicycles?", "fahrrad", "courtyard garage"),
    ("q5", "Wann öffnet die Kantine?", "kantine", "halb zwölf"),
    ("q6", "How are new laptops ordered?", "laptop", "helpdesk ticket portal"),
]
# --holdout 2 leaves every second gold document (in corpus order) out of the index.
HELD_OUT_AT_2 = {"kuendigung", "fahrrad", "laptop"}


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _write_beir(folder: Path, queries: list[tuple[str, str]]) -> Path:
    _write_jsonl(folder / "corpus.jsonl", [{"_id": i, "title": t, "text": x} for i, t, x in CORPUS])
    _write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": text} for q, text in queries])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, _, d, _ in QUERIES), encoding="utf-8"
    )
    _write_jsonl(folder / "answers.jsonl", [{"_id": q, "answers": [a], "corpus_id": d} for q, _, d, a in QUERIES])
    return folder


@pytest.fixture
def beir_set(tmp_path: Path) -> Path:
    return _write_beir(tmp_path / "hr-mini", [(q, text) for q, text, _, _ in QUERIES])


@pytest.fixture
def cases_set(tmp_path: Path) -> Path:
    folder = tmp_path / "firma"
    docs = folder / "documents"
    (docs / "hr").mkdir(parents=True)
    (docs / "it").mkdir()
    (docs / "hr" / "urlaub.md").write_text(
        "# Urlaub\n\nJeder Mitarbeiter erhält 30 Urlaubstage pro Jahr.\n", encoding="utf-8"
    )
    (docs / "it" / "laptop.txt").write_text("Neue Laptops bestellt man über das Ticketportal.\n", encoding="utf-8")
    (docs / "kantine.md").write_text("# Kantine\n\nDie Kantine öffnet mittags um halb zwölf.\n", encoding="utf-8")
    _write_jsonl(folder / "cases.jsonl", [
        {"question": "Wie viele Urlaubstage gibt es pro Jahr?", "sources": ["hr/urlaub.md"],
         "answers": ["30 Urlaubstage"]},
        {"question": "Wie bestellt man neue Laptops?", "sources": ["it/laptop.txt"], "answers": ["Ticketportal"]},
        {"question": "Wann öffnet die Kantine?", "sources": ["kantine.md"], "answers": ["halb zwölf"]},
    ])
    return folder


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    config = {
        "paths": {"data_dir": str(tmp_path / "data"), "sources": [str(tmp_path / "sources")]},
        "embedder": {"backend": "hashing", "dimension": 64},
        "llm": {"backend": "scripted"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _eval(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), "eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _eval_json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> dict:
    code, out, err = _eval(capsys, config, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def _scores(result: dict) -> dict:
    """A retrieval result without its timings."""
    return {name: {k: v for k, v in s.items() if k != "ms_per_query"} for name, s in result["systems"].items()}


# --- retrieval --------------------------------------------------------------------------------------


def test_retrieval_json_scores_every_system_with_every_metric(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path
) -> None:
    result = _eval_json(capsys, config_file, "retrieval", str(beir_set))
    assert result["set"] == "hr-mini"
    assert result["queries"] == len(QUERIES)
    assert result["documents"] == len(CORPUS)
    assert result["embedder"]["name"] == "hashing"
    assert set(result["systems"]) == set(SYSTEMS)
    for name, scores in result["systems"].items():
        assert scores["system"] == name
        assert scores["queries"] == len(QUERIES)
        assert scores["ms_per_query"] >= 0
        for metric in RETRIEVAL_METRICS:
            assert 0.0 <= scores[metric] <= 1.0, (name, metric)
    assert set(RETRIEVAL_METRICS) == {"nDCG@10", "Recall@10", "Recall@100", "MRR@10"}


def test_keyword_systems_find_the_document_sharing_the_query_words(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path
) -> None:
    systems = _eval_json(capsys, config_file, "retrieval", str(beir_set))["systems"]
    for name in ("keyword", "bm25s", "hybrid"):
        assert systems[name]["nDCG@10"] >= 0.9, name
        assert systems[name]["Recall@10"] == 1.0, name
    # Eight documents: every system that returns them all has perfect recall at 100.
    assert systems["dense"]["Recall@100"] == 1.0


def test_retrieval_table_names_the_metrics_and_the_margin_over_the_baselines(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path
) -> None:
    code, out, err = _eval(capsys, config_file, "retrieval", str(beir_set))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"hr-mini: {len(QUERIES)} judged queries, {len(CORPUS)} documents, {len(CORPUS)} chunks"
    assert lines[1].split() == ["system", *RETRIEVAL_METRICS, "ms/query"]
    assert {line.split()[0] for line in lines[3:7]} == set(SYSTEMS)
    assert any(line.startswith("hybrid nDCG@10 minus the better of dense and bm25s:") for line in lines)


def test_a_cached_index_is_reused_without_ingesting_again(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    first = _eval_json(capsys, config_file, "retrieval", str(beir_set), "--cache", str(cache))
    (index_dir,) = cache.iterdir()
    stamp = index_dir / "complete.json"
    assert stamp.is_file()
    os.utime(stamp, ns=(10**9, 10**9))

    class NoIngestor:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("the cached index should have been reused")

    monkeypatch.setattr(evaluation, "Ingestor", NoIngestor)
    second = _eval_json(capsys, config_file, "retrieval", str(beir_set), "--cache", str(cache))
    assert _scores(second) == _scores(first)
    assert [p.name for p in cache.iterdir()] == [index_dir.name]
    assert stamp.stat().st_mtime_ns == 10**9


def test_a_changed_document_gets_a_new_cached_index(
    capsys: pytest.CaptureFixture[str], config_file: Path, cases_set: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _eval_json(capsys, config_file, "retrieval", str(cases_set), "--cache", str(cache))
    (cases_set / "documents" / "kantine.md").write_text(
        "# Kantine\n\nDie Kantine öffnet erst um zwölf Uhr.\n", encoding="utf-8"
    )
    _eval_json(capsys, config_file, "retrieval", str(cases_set), "--cache", str(cache))
    assert len(list(cache.iterdir())) == 2


def test_without_a_cache_no_index_is_left_behind(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    _eval_json(capsys, config_file, "retrieval", str(beir_set))
    assert list(scratch.iterdir()) == []
    assert not (tmp_path / "data").exists()  # the configured data_dir is not touched either


def test_a_cases_folder_is_evaluated_with_relative_paths_as_document_ids(
    capsys: pytest.CaptureFixture[str], config_file: Path, cases_set: Path
) -> None:
    result = _eval_json(capsys, config_file, "retrieval", str(cases_set))
    assert result["set"] == "firma"
    assert result["queries"] == 3 and result["documents"] == 3
    assert result["systems"]["keyword"]["nDCG@10"] >= 0.9
    assert result["systems"]["bm25s"]["nDCG@10"] >= 0.9


def test_cases_runs_rank_documents_by_their_path_below_documents(
    settings_factory: Callable[..., Settings], cases_set: Path, tmp_path: Path
) -> None:
    settings = settings_factory()
    eval_set = load_eval_set(cases_set)
    index, results = evaluation.run_retrieval(
        eval_set, settings, HashingEmbedder(settings.embedder.dimension), tmp_path / "work", progress=False
    )
    try:
        paths = {"hr/urlaub.md", "it/laptop.txt", "kantine.md"}
        assert set(index.chunk_document.values()) == paths
        for result in results:
            for ranking in result.run.values():
                assert set(ranking) <= paths, result.system
        keyword = {r.system: r for r in results}["keyword"].run
        assert keyword["q1"][0] == "hr/urlaub.md"
        assert keyword["q2"][0] == "it/laptop.txt"
    finally:
        index.reader.close()


def test_cross_lingual_queries_replace_the_query_texts(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path, tmp_path: Path
) -> None:
    english = _write_beir(tmp_path / "hr-mini-en", [
        ("q1", "How many holiday days per calendar year?"),
        ("q2", "What is the notice period?"),
        ("q3", "How high is the minimum wage?"),
        ("q4", "Where do employees park bicycles?"),
        ("q5", "When does the canteen open?"),
        ("q6", "How are new laptops ordered?"),
    ])
    result = _eval_json(capsys, config_file, "retrieval", str(beir_set), "--queries", str(english))
    assert result["set"] == "hr-mini-en->hr-mini"
    assert result["queries"] == len(QUERIES)
    assert set(result["systems"]) == set(SYSTEMS)


def test_cross_lingual_queries_with_other_ids_are_refused(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path, tmp_path: Path
) -> None:
    other = _write_beir(tmp_path / "other", [("x1", "Urlaub?"), ("x2", "Kantine?")])
    code, out, err = _eval(capsys, config_file, "retrieval", str(beir_set), "--queries", str(other))
    assert code == 2
    assert out == ""
    assert err.startswith("hauswissen: ") and "no counterpart in other" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["retrieval", "answers"])
def test_a_folder_that_is_not_an_evaluation_set_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path, command: str
) -> None:
    folder = tmp_path / "irgendwas"
    folder.mkdir()
    (folder / "notes.md").write_text("# Notizen\n", encoding="utf-8")
    code, out, err = _eval(capsys, config_file, command, str(folder))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("hauswissen: ") and "is not an evaluation set" in err


def test_a_missing_folder_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    code, _, err = _eval(capsys, config_file, "retrieval", str(tmp_path / "fehlt"))
    assert code == 2
    assert err.strip() == f"hauswissen: not a folder: {tmp_path / 'fehlt'}"


def test_a_set_without_judged_queries_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path
) -> None:
    (beir_set / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\turlaub\t0\n", encoding="utf-8")
    code, _, err = _eval(capsys, config_file, "retrieval", str(beir_set))
    assert code == 2
    assert err.startswith("hauswissen: ")


# --- answers ----------------------------------------------------------------------------------------


def test_answers_json_scores_answerable_and_held_out_questions(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path
) -> None:
    result = _eval_json(capsys, config_file, "answers", str(beir_set), "--holdout", "2")
    for key in ANSWER_KEYS:
        assert key in result, key
    assert result["answerable"] == 3 and result["unanswerable"] == 3
    assert result["answerable"] + result["unanswerable"] == len(result["cases"]) == len(QUERIES)
    gold = {q: d for q, _, d, _ in QUERIES}
    rows = {row["id"]: row for row in result["cases"]}
    assert {q for q, row in rows.items() if not row["answerable"]} == {
        q for q, d in gold.items() if d in HELD_OUT_AT_2
    }
    for row in rows.values():
        # A held-out document is not in the index, so no answer can cite it.
        assert not set(row["cited_documents"]) & HELD_OUT_AT_2
    # The scripted model echoes the first sentence of source 1 with [1]: on this easy set source 1 is the
    # gold document, so every answerable answer holds its gold answer and cites its gold document.
    assert result["answer_contains_gold"] == 1.0
    assert result["citation_recall"] == 1.0
    assert result["citation_precision"] == 1.0
    assert result["false_refusal"] == 0.0
    assert result["EM"] == 0.0  # whole sentences never match a short gold exactly
    assert 0.0 < result["F1"] < 1.0
    assert result["abstention"] is not None and 0.0 <= result["abstention"] <= 1.0
    assert result["citations"] >= result["answerable"]


def test_answers_limit_takes_the_first_answerable_questions_and_a_pool_of_unanswerable_ones(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path
) -> None:
    result = _eval_json(capsys, config_file, "answers", str(beir_set), "--holdout", "2", "--limit", "2")
    gold = {q: d for q, _, d, _ in QUERIES}
    answerable = [q for q, _, d, _ in QUERIES if d not in HELD_OUT_AT_2]
    unanswerable = [q for q, _, d, _ in QUERIES if d in HELD_OUT_AT_2]
    assert [row["id"] for row in result["cases"]] == answerable[:2] + unanswerable
    assert result["answerable"] == 2
    assert result["unanswerable"] == len(unanswerable) == sum(d in HELD_OUT_AT_2 for d in gold.values())


def test_answers_without_holdout_have_no_abstention_score(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path
) -> None:
    result = _eval_json(capsys, config_file, "answers", str(beir_set), "--holdout", "0")
    assert result["unanswerable"] == 0 and result["answerable"] == len(QUERIES)
    assert result["abstention"] is None


def test_answers_table_lists_every_metric(
    capsys: pytest.CaptureFixture[str], config_file: Path, cases_set: Path
) -> None:
    code, out, err = _eval(capsys, config_file, "answers", str(cases_set))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("firma: 3 answerable and 0 unanswerable questions")
    names = [line.split()[0] for line in lines[1:] if line.startswith("  ")]
    assert names[: len(ANSWER_KEYS)] == list(ANSWER_KEYS)
    assert any(line.split() == ["abstention", "n/a"] for line in lines)


def test_answers_on_a_set_without_gold_answers_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path
) -> None:
    (beir_set / "answers.jsonl").unlink()
    code, out, err = _eval(capsys, config_file, "answers", str(beir_set), "--json")
    assert code == 2
    assert out == ""
    assert err.splitlines()[-1] == "hauswissen: hr-mini has no gold answers (answers.jsonl)"


def test_saved_answers_are_reused_and_a_torn_last_line_is_ignored(
    capsys: pytest.CaptureFixture[str], config_file: Path, beir_set: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "answers.jsonl"
    args = ["answers", str(beir_set), "--holdout", "0", "--save", str(saved)]
    first = _eval_json(capsys, config_file, *args, "--limit", "2")
    lines = saved.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    # An interrupted write leaves half a line behind; the next run ignores it and asks that case again.
    saved.write_text("\n".join(lines) + '\n{"id": "q3", "te', encoding="utf-8")
    second = _eval_json(capsys, config_file, *args, "--limit", "3")
    ids = [json.loads(line)["id"] for line in saved.read_text(encoding="utf-8").splitlines() if line.endswith("}")]
    assert ids == ["q1", "q2", "q3"]
    assert [r["answer"] for r in second["cases"][:2]] == [r["answer"] for r in first["cases"]]
