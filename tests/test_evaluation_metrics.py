"""Evaluation building blocks without an index: trec_eval-style retrieval metrics, SQuAD-style answer
metrics, answer scoring, and the loaders for BEIR folders and a company's own cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rag.errors import InvalidInputError
from rag.evaluation.answers import AnswerCase, AskedAnswer, ask_all, load_answers, save_answer, score_answers
from rag.evaluation.datasets import EvalSet, load_eval_set
from rag.evaluation.metrics import (
    RETRIEVAL_METRICS,
    contains_gold,
    exact_match,
    mean_scores,
    normalize_answer,
    retrieval_scores,
    token_f1,
)

# --- retrieval metrics ------------------------------------------------------------------------------


def test_graded_ndcg_recall_and_mrr_match_trec_eval_arithmetic() -> None:
    scores = retrieval_scores({"q": {"d1": 2, "d2": 1}}, {"q": ["d3", "d1", "d4", "d2"]})
    # trec_eval ndcg_cut: gain = relevance level (linear), discount log2(rank + 1).
    # d1 (rel 2) at rank 2, d2 (rel 1) at rank 4: DCG = 2/log2(3) + 1/log2(5).
    # Ideal order d1, d2:                        IDCG = 2/log2(2) + 1/log2(3).
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert scores["q"]["nDCG@10"] == pytest.approx(dcg / idcg)  # = 0.6433
    assert scores["q"]["Recall@10"] == 1.0  # both relevant documents are in the first ten
    assert scores["q"]["Recall@100"] == 1.0
    assert scores["q"]["MRR@10"] == 0.5  # first relevant document at rank 2


def test_every_metric_name_is_reported_per_query() -> None:
    scores = retrieval_scores({"q": {"a": 1}}, {"q": ["a"]})
    assert set(scores["q"]) == set(RETRIEVAL_METRICS) == {"nDCG@10", "Recall@10", "Recall@100", "MRR@10"}
    assert scores["q"] == dict.fromkeys(RETRIEVAL_METRICS, 1.0)


def test_a_relevant_document_at_rank_eleven_counts_for_recall_at_100_only() -> None:
    run = [f"d{i}" for i in range(1, 12)]  # d11 is at rank 11
    scores = retrieval_scores({"q": {"d11": 1}}, {"q": run})["q"]
    assert scores["MRR@10"] == 0.0
    assert scores["nDCG@10"] == 0.0
    assert scores["Recall@10"] == 0.0
    assert scores["Recall@100"] == 1.0


def test_a_judged_query_missing_from_the_run_scores_zero_everywhere() -> None:
    scores = retrieval_scores({"found": {"a": 1}, "missing": {"b": 1}, "empty": {"c": 1}},
                              {"found": ["a"], "empty": []})
    assert scores["missing"] == dict.fromkeys(RETRIEVAL_METRICS, 0.0)
    assert scores["empty"] == dict.fromkeys(RETRIEVAL_METRICS, 0.0)
    assert scores["found"]["nDCG@10"] == 1.0


def test_relevance_zero_judgements_are_not_relevant() -> None:
    # "a" is judged but not relevant, so the first relevant document ("b") is at rank 2.
    scores = retrieval_scores({"q": {"a": 0, "b": 1}}, {"q": ["a", "b"]})["q"]
    assert scores["MRR@10"] == 0.5
    assert scores["nDCG@10"] == pytest.approx(1 / math.log2(3))  # DCG 1/log2(3), IDCG 1/log2(2)
    assert scores["Recall@10"] == 1.0


def test_run_order_is_kept_even_when_document_ids_sort_the_other_way() -> None:
    # trec_eval breaks score ties by document id; the run's own order must win.
    assert retrieval_scores({"q": {"a": 1}}, {"q": ["b", "a"]})["q"]["MRR@10"] == 0.5
    assert retrieval_scores({"q": {"b": 1}}, {"q": ["b", "a"]})["q"]["MRR@10"] == 1.0
    ranked = [f"z{i:02d}" for i in range(20, 0, -1)]  # ids in descending order
    assert retrieval_scores({"q": {"z01": 1}}, {"q": ranked})["q"]["MRR@10"] == 0.0
    assert retrieval_scores({"q": {"z20": 1}}, {"q": ranked})["q"]["MRR@10"] == 1.0


def test_runs_for_unjudged_queries_are_ignored() -> None:
    scores = retrieval_scores({"q": {"a": 1}}, {"q": ["a"], "other": ["a", "b"]})
    assert set(scores) == {"q"}


def test_mean_scores_averages_each_metric_over_queries() -> None:
    per_query = {
        "q1": {"nDCG@10": 1.0, "MRR@10": 0.5},
        "q2": {"nDCG@10": 0.0, "MRR@10": 1.0},
        "q3": {"nDCG@10": 0.5},  # a metric missing for a query counts as 0
    }
    means = mean_scores(per_query)
    assert means["nDCG@10"] == pytest.approx(0.5)
    assert means["MRR@10"] == pytest.approx(0.5)
    assert list(means) == ["nDCG@10", "MRR@10"]


def test_mean_scores_of_no_queries_is_empty() -> None:
    assert mean_scores({}) == {}


# --- answer metrics ---------------------------------------------------------------------------------


def test_normalisation_drops_punctuation_articles_and_extra_space() -> None:
    assert normalize_answer("„Der Rhein“") == "rhein"
    assert normalize_answer("Der Rhein") == normalize_answer("rhein")
    assert normalize_answer("  The   quick,  brown fox! ") == "quick brown fox"
    assert normalize_answer("Das Haus, ein Garten und eine Tür.") == "haus garten und tür"
    assert normalize_answer("«Über» – den Fluss…") == "über fluss"


def test_normalisation_removes_whole_articles_only() -> None:
    assert normalize_answer("Dieser Dienst, Theater, Ader") == "dieser dienst theater ader"


def test_exact_match_compares_normalised_text_against_any_gold() -> None:
    assert exact_match("Der Rhein.", ["rhein"]) == 1.0
    assert exact_match("die Elbe", ["Rhein", "Elbe"]) == 1.0
    assert exact_match("Rhein und Elbe", ["Rhein"]) == 0.0


def test_token_f1_follows_the_squad_definition_after_article_removal() -> None:
    # "die Stadt Berlin" -> "stadt berlin", gold "Berlin" -> "berlin":
    # precision 1/2, recall 1/1, F1 = 2 * 1/2 * 1 / (1/2 + 1) = 2/3.
    assert token_f1("die Stadt Berlin", ["Berlin"]) == pytest.approx(2 / 3)
    assert token_f1("Berlin", ["Berlin"]) == 1.0
    assert token_f1("Hamburg", ["Berlin"]) == 0.0
    # The best gold counts: "stadt berlin" vs "hauptstadt berlin" is 1/2, vs "stadt berlin" is 1.
    assert token_f1("die Stadt Berlin", ["Hauptstadt Berlin", "Stadt Berlin"]) == 1.0


def test_contains_gold_matches_whole_words_only() -> None:
    assert contains_gold("Sie gaben 308 Punkte ab.", ["308"]) == 1.0
    assert contains_gold("Sie gaben 308 Punkte ab.", ["30"]) == 0.0
    assert contains_gold("Er fährt auf dem Rhein nach Köln.", ["der Rhein"]) == 1.0
    assert contains_gold("Es sind 30 Tage.", ["dreißig", "30 Tage"]) == 1.0
    assert contains_gold("irgendwas", ["die"]) == 0.0  # a gold that normalises to nothing never matches


# --- scoring whole answers --------------------------------------------------------------------------


def _case(qid: str, gold: str, document: str, answerable: bool = True) -> AnswerCase:
    return AnswerCase(qid, f"Frage {qid}?", (gold,), document, answerable)


def test_answer_scores_on_a_hand_made_mix_of_cases() -> None:
    cases = [
        _case("a", "30 Tage", "urlaub.md"),
        _case("b", "vier Wochen", "kuendigung.md"),
        _case("c", "Berlin", "stadt.md"),
        _case("d", "12 Euro", "lohn.md", answerable=False),
        _case("e", "halb zwölf", "kantine.md", answerable=False),
    ]
    answers = {
        # 2 citations, 1 of them the gold document; text "es sind 30 tage": EM 0, F1 2/3, contains 1.
        "a": AskedAnswer("Es sind 30 Tage [1][2].", False, ("urlaub.md", "kantine.md")),
        # A refusal scores 0 even when its text happens to hold the gold answer.
        "b": AskedAnswer("vier Wochen? Dazu finde ich nichts.", True, ()),
        # 1 citation, correct; EM 1.
        "c": AskedAnswer("Berlin [1]", False, ("stadt.md",)),
        "d": AskedAnswer("Dazu finde ich nichts.", True, ()),
        # Citations in answers to unanswerable questions are not counted for citation precision.
        "e": AskedAnswer("Um halb zwölf [1].", False, ("urlaub.md",)),
    }
    report = score_answers(cases, answers)
    m = report.metrics
    assert m["EM"] == pytest.approx(1 / 3)
    assert m["F1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert m["answer_contains_gold"] == pytest.approx(2 / 3)
    assert m["citation_precision"] == pytest.approx(2 / 3)  # micro: 2 correct of 3 (macro would be 0.75)
    assert m["citation_recall"] == pytest.approx(2 / 3)  # a and c cite their gold document, b does not
    assert m["abstention"] == pytest.approx(1 / 2)  # d declined, e did not
    assert m["false_refusal"] == pytest.approx(1 / 3)  # b declined
    assert report.counts == {"answerable": 3, "unanswerable": 2, "citations": 3, "withdrawn": 0}
    rows = {r["id"]: r for r in report.rows}
    assert rows["b"]["EM"] == rows["b"]["F1"] == rows["b"]["answer_contains_gold"] == 0.0
    assert "EM" not in rows["d"]
    assert [r["id"] for r in report.rows] == ["a", "b", "c", "d", "e"]


def test_withdrawn_answers_count_as_refusals_and_say_whether_they_were_right() -> None:
    cases = [_case("a", "30 Tage", "urlaub.md"), _case("b", "Berlin", "stadt.md"),
             _case("c", "12 Euro", "lohn.md", answerable=False), _case("d", "Rhein", "fluss.md")]
    not_found = "Dazu finde ich in den Dokumenten keine Antwort."
    answers = {
        "a": AskedAnswer(not_found, True, (), draft="Es sind 30 Tage [1]."),  # right, but withdrawn
        "b": AskedAnswer(not_found, True, (), draft="Die Hauptstadt ist Bonn [1]."),  # wrong, withdrawn
        "c": AskedAnswer(not_found, True, (), draft="Es sind 14 Euro [1]."),
        "d": AskedAnswer("Der Rhein [1].", False, ("fluss.md",)),
    }
    report = score_answers(cases, answers)
    assert report.metrics["false_refusal"] == pytest.approx(2 / 3)
    assert report.metrics["withdrawn_right"] == pytest.approx(1 / 2)  # of the withdrawn answerable ones
    assert report.metrics["abstention"] == 1.0
    assert report.metrics["answer_contains_gold"] == pytest.approx(1 / 3)
    assert report.counts["withdrawn"] == 3
    assert {r["id"]: r["draft"] for r in report.rows}["b"] == "Die Hauptstadt ist Bonn [1]."


def test_a_saved_draft_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    save_answer(path, "a", AskedAnswer("x", True, (), 1.0, draft="Es sind 30 Tage [1]."))
    save_answer(path, "b", AskedAnswer("y", False, ("d.md",), 2.0))
    loaded = load_answers(path)
    assert loaded["a"].draft == "Es sind 30 Tage [1]."
    assert loaded["b"].draft is None


def test_citation_markers_do_not_count_against_exact_match() -> None:
    report = score_answers([_case("a", "Berlin", "x.md")], {"a": AskedAnswer("Berlin [1] [2]", False, ("x.md",))})
    assert report.metrics["EM"] == 1.0


def test_metrics_without_cases_of_their_kind_are_none() -> None:
    only_unanswerable = score_answers(
        [_case("u", "x", "gone.md", answerable=False)], {"u": AskedAnswer("Nichts gefunden.", True, ())}
    )
    assert only_unanswerable.metrics["abstention"] == 1.0
    for name in ("EM", "F1", "answer_contains_gold", "citation_precision", "citation_recall", "false_refusal"):
        assert only_unanswerable.metrics[name] is None

    uncited = score_answers([_case("a", "Berlin", "x.md")], {"a": AskedAnswer("Berlin", False, ())})
    assert uncited.metrics["citation_precision"] is None  # no citations at all
    assert uncited.metrics["citation_recall"] == 0.0
    assert uncited.metrics["abstention"] is None


def test_answer_report_json_rounds_and_keeps_none() -> None:
    report = score_answers(
        [_case("a", "Stadt Berlin", "x.md"), _case("u", "x", "gone.md", answerable=False)],
        {"a": AskedAnswer("Berlin", False, ("x.md",)), "u": AskedAnswer("Nichts.", True, ())},
    )
    data = report.to_dict()
    assert data["F1"] == pytest.approx(0.6667)
    assert data["abstention"] == 1.0
    assert data["answerable"] == 1 and data["unanswerable"] == 1
    json.dumps(data)  # JSON-ready


def test_ask_all_asks_in_order_and_reports_progress() -> None:
    asked: list[str] = []
    progress: list[tuple[int, int]] = []

    def ask(question: str) -> AskedAnswer:
        asked.append(question)
        return AskedAnswer(f"Antwort auf {question}", False, ("x.md",))

    cases = [_case("a", "x", "x.md"), _case("b", "y", "y.md")]
    answers = ask_all(cases, ask, lambda done, total: progress.append((done, total)))
    assert asked == ["Frage a?", "Frage b?"]
    assert progress == [(1, 2), (2, 2)]
    assert answers["b"].text == "Antwort auf Frage b?" and answers["b"].cited_documents == ("x.md",)


# --- evaluation sets --------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mini"
    _write_jsonl(folder / "corpus.jsonl", [
        {"_id": "d1", "title": "Urlaub", "text": "30 Urlaubstage im Jahr."},
        {"_id": "d2", "title": "", "text": "Die Kündigungsfrist beträgt vier Wochen."},
        {"_id": "d3", "text": "Kantine ab halb zwölf."},
    ])
    _write_jsonl(folder / "queries.jsonl", [
        {"_id": "q1", "text": "Wie viel Urlaub?"},
        {"_id": "q2", "text": "Welche Kündigungsfrist?"},
        {"_id": "q3", "text": "Nur negativ bewertet"},
        {"_id": "q4", "text": "Gar nicht bewertet"},
    ])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq2\td3\t0\nq3\td3\t0\n", encoding="utf-8"
    )
    _write_jsonl(folder / "answers.jsonl", [
        {"_id": "q1", "answers": ["30 Urlaubstage", "30 Tage"], "corpus_id": "d1"},
        {"_id": "q2", "answers": "vier Wochen|4 Wochen", "corpus_id": "d2"},
    ])
    return folder


def test_a_beir_folder_loads_corpus_queries_judgements_and_answers(beir_folder: Path) -> None:
    s = load_eval_set(beir_folder)
    assert s.name == "mini"
    assert s.documents_dir is None
    assert list(s.corpus) == ["d1", "d2", "d3"]
    assert (s.corpus["d1"].title, s.corpus["d1"].text) == ("Urlaub", "30 Urlaubstage im Jahr.")
    assert s.corpus["d3"].title == ""
    assert s.queries["q2"] == "Welche Kündigungsfrist?"
    assert s.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d3": 0}, "q3": {"d3": 0}}  # header line skipped
    assert s.answers == {"q1": ["30 Urlaubstage", "30 Tage"], "q2": ["vier Wochen", "4 Wochen"]}
    assert s.gold_document == {"q1": "d1", "q2": "d2"}


def test_judged_queries_are_those_with_a_relevant_document(beir_folder: Path) -> None:
    assert load_eval_set(beir_folder).judged_queries == ["q1", "q2"]


def test_a_beir_folder_without_answers_has_none(beir_folder: Path) -> None:
    (beir_folder / "answers.jsonl").unlink()
    s = load_eval_set(beir_folder)
    assert s.answers == {} and s.gold_document == {}


@pytest.fixture
def cases_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "firma"
    (folder / "documents" / "hr").mkdir(parents=True)
    (folder / "documents" / "hr" / "urlaub.md").write_text("# Urlaub\n\n30 Urlaubstage.\n", encoding="utf-8")
    (folder / "documents" / "laptop.txt").write_text("Laptops über das Ticketportal.\n", encoding="utf-8")
    return folder


def test_a_cases_folder_names_documents_by_their_relative_path(cases_folder: Path) -> None:
    _write_jsonl(cases_folder / "cases.jsonl", [
        {"question": "Wie viele Urlaubstage?", "sources": ["hr/urlaub.md"], "answers": ["30 Urlaubstage"]},
        {"question": "Laptop bestellen?", "sources": ["laptop.txt", "hr\\urlaub.md"]},
    ])
    s = load_eval_set(cases_folder)
    assert s.documents_dir == cases_folder / "documents"
    assert s.corpus == {}
    assert s.queries == {"q1": "Wie viele Urlaubstage?", "q2": "Laptop bestellen?"}
    assert s.qrels == {"q1": {"hr/urlaub.md": 1}, "q2": {"laptop.txt": 1, "hr/urlaub.md": 1}}
    assert s.gold_document == {"q1": "hr/urlaub.md", "q2": "laptop.txt"}  # the first source
    assert s.answers == {"q1": ["30 Urlaubstage"]}  # answers are optional
    assert s.judged_queries == ["q1", "q2"]


def test_a_cases_csv_separates_several_sources_and_answers_with_a_bar(cases_folder: Path) -> None:
    (cases_folder / "cases.csv").write_text(
        "question,source,answer\n"
        "Wie viele Urlaubstage?,hr/urlaub.md,30 Urlaubstage|dreißig Tage\n"
        "Laptop bestellen?,laptop.txt | hr/urlaub.md,\n",
        encoding="utf-8",
    )
    s = load_eval_set(cases_folder)
    assert s.qrels == {"q1": {"hr/urlaub.md": 1}, "q2": {"laptop.txt": 1, "hr/urlaub.md": 1}}
    assert s.answers == {"q1": ["30 Urlaubstage", "dreißig Tage"]}


def test_a_folder_that_is_neither_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hallo", encoding="utf-8")
    (tmp_path / "documents").mkdir()  # documents/ without cases is not a set either
    with pytest.raises(InvalidInputError, match="not an evaluation set") as e:
        load_eval_set(tmp_path)
    assert e.value.code == "eval_not_a_set"


def test_an_incomplete_beir_folder_is_refused_as_input(beir_folder: Path) -> None:
    (beir_folder / "queries.jsonl").unlink()
    with pytest.raises(InvalidInputError):
        load_eval_set(beir_folder)


def test_a_case_naming_a_file_not_in_documents_is_refused(cases_folder: Path) -> None:
    _write_jsonl(cases_folder / "cases.jsonl", [{"question": "Wo?", "sources": ["hr/fehlt.md"]}])
    with pytest.raises(InvalidInputError, match=r"case 1 names 'hr/fehlt\.md'") as e:
        load_eval_set(cases_folder)
    assert e.value.code == "eval_bad_file"


def test_a_case_path_leaving_documents_is_refused_even_if_the_file_exists(cases_folder: Path) -> None:
    (cases_folder / "geheim.txt").write_text("nicht im Korpus", encoding="utf-8")
    _write_jsonl(cases_folder / "cases.jsonl", [{"question": "Wo?", "sources": ["../geheim.txt"]}])
    with pytest.raises(InvalidInputError, match="not a file in documents/"):
        load_eval_set(cases_folder)


def test_a_case_without_a_source_is_refused(cases_folder: Path) -> None:
    _write_jsonl(cases_folder / "cases.jsonl", [{"question": "Wo?", "sources": []}])
    with pytest.raises(InvalidInputError, match="needs a question and at least one source"):
        load_eval_set(cases_folder)


def test_a_malformed_json_line_is_refused_with_its_line_number(cases_folder: Path, beir_folder: Path) -> None:
    (cases_folder / "cases.jsonl").write_text(
        '{"question": "Wo?", "sources": ["laptop.txt"]}\n{"question": "kaputt"\n', encoding="utf-8"
    )
    with pytest.raises(InvalidInputError, match=r"cases\.jsonl:2: not JSON"):
        load_eval_set(cases_folder)

    with (beir_folder / "queries.jsonl").open("a", encoding="utf-8") as f:
        f.write('["not", "an", "object"]\n')
    with pytest.raises(InvalidInputError, match=r"queries\.jsonl:5: expected an object"):
        load_eval_set(beir_folder)


def test_queries_from_another_set_replace_the_texts_and_keep_the_judgements(
    beir_folder: Path, tmp_path: Path
) -> None:
    german = load_eval_set(beir_folder)
    english = EvalSet(
        name="mini-en",
        queries={q: f"english {q}" for q in ("q4", "q3", "q2", "q1", "extra")},
        qrels={},
        answers={"q1": ["30 days"]},
    )
    crossed = german.with_queries_from(english)
    assert crossed.name == "mini-en->mini"
    assert crossed.queries == {"q1": "english q1", "q2": "english q2", "q3": "english q3", "q4": "english q4"}
    assert crossed.qrels == german.qrels
    assert crossed.corpus == german.corpus
    assert crossed.gold_document == german.gold_document
    assert crossed.answers == {"q1": ["30 days"], "q2": ["vier Wochen", "4 Wochen"]}
    assert german.queries["q1"] == "Wie viel Urlaub?"  # the original set is unchanged


def test_queries_from_a_set_lacking_some_ids_are_refused(beir_folder: Path) -> None:
    german = load_eval_set(beir_folder)
    partial = EvalSet(name="partial", queries={"q1": "x", "q2": "y"}, qrels={})
    with pytest.raises(InvalidInputError, match="2 queries of mini have no counterpart in partial") as e:
        german.with_queries_from(partial)
    assert e.value.code == "eval_queries_mismatch"
