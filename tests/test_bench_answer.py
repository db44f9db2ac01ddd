"""The answer benchmark's code path on a tiny BEIR set: fakes for the fast tests, SmolLM2 for the slow one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import answer as bench_answer
from rag.errors import ModelNotFoundError
from rag.models import smollm_path

PARAGRAPHS = {
    "p1": ("Urlaub", "Der Urlaub beträgt jährlich mindestens 24 Werktage. Er ist im laufenden Kalenderjahr zu nehmen."),
    "p2": ("Arbeitszeit", "Die werktägliche Arbeitszeit der Arbeitnehmer darf acht Stunden nicht überschreiten."),
    "p3": ("Mindestlohn", "Der Mindestlohn beträgt seit dem 1. Januar 2024 brutto 12,41 Euro je Zeitstunde."),
}
QUESTIONS = {
    "q1": ("Wie viele Werktage Urlaub gibt es mindestens?", "p1", "24 Werktage"),
    "q2": ("Wie lange darf die werktägliche Arbeitszeit sein?", "p2", "acht Stunden"),
    "q3": ("Wie hoch ist der Mindestlohn je Zeitstunde?", "p3", "12,41 Euro"),
    "q4": ("Wann ist der Urlaub zu nehmen?", "p1", "im laufenden Kalenderjahr"),
}
ROW_KEYS = {"name", "k", "excerpt", "questions", "declined", "ttft_p50_s", "ttft_p95_s", "ttft_max_s", "total_p50_s",
            "retrieval_p50_s", "prompt_tokens_p50", "reusable_tokens_p50", "sources_p50", "source_chars_p50", "calls"}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def tiny_set(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-de"
    (folder / "qrels").mkdir(parents=True)
    _jsonl(folder / "corpus.jsonl", [{"_id": d, "title": t, "text": x} for d, (t, x) in PARAGRAPHS.items()])
    _jsonl(folder / "queries.jsonl", [{"_id": q, "text": t} for q, (t, _, _) in QUESTIONS.items()])
    _jsonl(folder / "answers.jsonl", [{"_id": q, "answers": [a], "corpus_id": d} for q, (_, d, a) in QUESTIONS.items()])
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, (_, d, _) in QUESTIONS.items()),
        encoding="utf-8",
    )
    return folder


@pytest.fixture(autouse=True)
def fast_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUSWISSEN__EMBEDDER__BACKEND", "hashing")
    monkeypatch.setenv("HAUSWISSEN__EMBEDDER__DIMENSION", "64")
    monkeypatch.setenv("HAUSWISSEN__INGEST__SANDBOX", "false")
    monkeypatch.setenv("HAUSWISSEN__INGEST__WATCH", "false")


class FakeLlama:
    """Streams like ``create_chat_completion``: a role delta, then content deltas."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, str]]] = []
        self.seeds: list[int | None] = []
        self.resets = 0

    def create_chat_completion(self, messages: Any, **kwargs: Any) -> Any:
        self.calls.append(messages)
        self.seeds.append(kwargs.get("seed"))
        assert kwargs["stream"] is True and kwargs["max_tokens"] == 4
        yield {"choices": [{"delta": {"role": "assistant"}}]}
        for word in ("Die", " Antwort", " [1]."):
            yield {"choices": [{"delta": {"content": word}}]}

    def reset(self) -> None:
        self.resets += 1


def _words(messages: list[dict[str, str]]) -> list[int]:
    return [sum(map(ord, w)) for m in messages for w in f"{m['role']}: {m['content']}".split()]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> FakeLlama:
    monkeypatch.setenv("HAUSWISSEN__LLM__BACKEND", "scripted")
    bare = FakeLlama()
    monkeypatch.setattr(bench_answer, "open_bare", lambda path, settings: bare)
    monkeypatch.setattr(bench_answer, "prompt_tokenizer", lambda chat: _words)
    return bare


def test_json_has_three_rows_per_k_with_numbers_and_targets(
    tiny_set: Path, tmp_path: Path, fakes: FakeLlama, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--set", str(tiny_set), "--cache", str(tmp_path / "cache"), "--questions", "3", "--sweep-k", "1,2",
            "--max-tokens", "4", "--json"]
    assert bench_answer.main(argv) == 0
    result = json.loads(capsys.readouterr().out)

    assert result["questions"] == 3 and result["ks"] == [1, 2] and result["settings"]["max_tokens"] == 4
    assert [(r["name"], r["k"]) for r in result["rows"]] == [(name, k) for k in (1, 2) for name in bench_answer.ROWS]
    for row in result["rows"]:
        assert set(row) == ROW_KEYS
        assert len(row["calls"]) == 3
        for key in ("ttft_p50_s", "ttft_p95_s", "ttft_max_s", "total_p50_s"):
            assert isinstance(row[key], float) and row[key] >= 0, (row["name"], key)
        assert row["ttft_p50_s"] <= row["ttft_p95_s"] <= row["ttft_max_s"]
        assert row["sources_p50"] == row["k"] and row["source_chars_p50"] > 0 and row["prompt_tokens_p50"] > 0
    ours = result["rows"][0]
    assert ours["retrieval_p50_s"] > 0 and all(c["pieces"] > 0 for c in ours["calls"])
    # The system prompt and worked example are the same for every question: a shared prefix.
    assert 0 < ours["reusable_tokens_p50"] < ours["prompt_tokens_p50"]
    cold = result["rows"][2]
    assert cold["reusable_tokens_p50"] == 0
    # warm-up + (warm + cold) per question and k, on exactly the messages the product built
    assert len(fakes.calls) == 1 + 2 * 3 * 2 and fakes.resets == 3 * 2
    assert fakes.calls[1] == fakes.calls[2] and fakes.calls[1][-1]["role"] == "user"
    assert "Frage: " in fakes.calls[1][-1]["content"]
    assert set(fakes.seeds) == {0}  # llm.seed's default, as the assistant's own calls use it
    names = [f"hauswissen TTFT {q}, k={k}" for k in (1, 2) for q in ("p50", "p95")]
    assert [t["name"] for t in result["targets"]] == names
    assert {t["verdict"] for t in result["targets"]} <= {"PASS", "MISS"}


def test_an_excerpt_sweep_measures_each_budget_on_the_same_questions(
    tiny_set: Path, tmp_path: Path, fakes: FakeLlama, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--set", str(tiny_set), "--cache", str(tmp_path / "cache"), "--questions", "2", "--max-tokens", "4",
            "--top-k", "2", "--sweep-excerpt", "20;0/20", "--no-cold", "--json"]
    assert bench_answer.main(argv) == 0
    result = json.loads(capsys.readouterr().out)

    assert result["excerpts"] == ["20", "0/20"]
    rows = {(r["name"], r["excerpt"]): r for r in result["rows"]}
    assert set(rows) == {(name, e) for e in ("20", "0/20") for name in bench_answer.ROWS[:2]}
    ours = [rows[(bench_answer.ROWS[0], e)] for e in ("20", "0/20")]
    assert [c["question"] for c in ours[0]["calls"]] == [c["question"] for c in ours[1]["calls"]]
    assert ours[0]["source_chars_p50"] < ours[1]["source_chars_p50"]  # the first source whole
    assert [t["name"] for t in result["targets"]][:2] == [
        "hauswissen TTFT p50, k=2, excerpt 20", "hauswissen TTFT p95, k=2, excerpt 20"]


def test_excerpt_budgets_must_be_numbers() -> None:
    with pytest.raises(SystemExit):
        bench_answer.main(["--sweep-excerpt", "viel"])


def test_table_lists_rows_targets_and_details(
    tiny_set: Path, tmp_path: Path, fakes: FakeLlama, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--set", str(tiny_set), "--cache", str(tmp_path / "cache"), "--questions", "2", "--max-tokens", "4",
            "--no-cold", "--details", "--first"]
    assert bench_answer.main(argv) == 0
    out = capsys.readouterr().out

    assert "## Answer latency: 2 questions of tiny-de" in out and "first N" in out
    for label in ("hauswissen ask", "bare llama.cpp, warm prefix", "TTFT p50 s", "TTFT p95 s", "TTFT max s",
                  "retrieval p50 s", "prompt tok p50", "source chars p50", "hauswissen TTFT p95, k=3",
                  "Wie viele Werktage Urlaub", "hauswissen minus bare warm"):
        assert label in out, label
    assert "bare llama.cpp, cold" not in out
    assert "PASS" in out or "MISS" in out
    assert fakes.resets == 0


def test_questions_are_spread_over_the_set(tiny_set: Path) -> None:
    from rag.evaluation.datasets import load_eval_set

    eval_set = load_eval_set(tiny_set)
    assert bench_answer.pick_questions(eval_set, 2) == [QUESTIONS["q1"][0], QUESTIONS["q3"][0]]
    assert bench_answer.pick_questions(eval_set, 2, first=True) == [QUESTIONS["q1"][0], QUESTIONS["q2"][0]]
    assert bench_answer.pick_questions(eval_set, 10) == [q for q, _, _ in QUESTIONS.values()]
    assert bench_answer.common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2


@pytest.mark.slow
def test_real_llama_cpp_path_with_smollm(
    tiny_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real llamacpp backend, bare Llama and prompt tokenizer (SmolLM2-135M: seconds, not minutes)."""
    try:
        monkeypatch.setenv("HAUSWISSEN__LLM__MODEL_PATH", str(smollm_path()))
    except ModelNotFoundError as e:
        pytest.fail(str(e))
    monkeypatch.setenv("HAUSWISSEN__LLM__N_CTX", "2048")
    argv = ["--set", str(tiny_set), "--cache", str(tmp_path / "cache"), "--questions", "2", "--top-k", "2",
            "--max-tokens", "4", "--json"]
    assert bench_answer.main(argv) == 0
    result = json.loads(capsys.readouterr().out)

    ours, warm, cold = result["rows"]
    assert result["model"] == smollm_path().name
    for row in (ours, warm, cold):
        assert all(c["ttft_s"] > 0 and c["prompt_tokens"] > 50 for c in row["calls"])
    # the rendered chat template starts with the fixed system prompt and example: llama.cpp can skip it
    assert 0 < ours["reusable_tokens_p50"] < ours["prompt_tokens_p50"]
    assert [c["prompt_tokens"] for c in ours["calls"]] == [c["prompt_tokens"] for c in cold["calls"]]


def test_questions_declined_before_the_model_are_left_out_of_ttft() -> None:
    row = bench_answer.Row("hauswissen ask", 3, [
        bench_answer.Call("a", ttft_s=6.0, total_s=7.0),
        bench_answer.Call("b", ttft_s=0.03, total_s=0.03, declined=True),
        bench_answer.Call("c", ttft_s=8.0, total_s=9.0),
    ])
    summary = row.summary()
    assert summary["declined"] == 1
    assert summary["ttft_p50_s"] == pytest.approx(7.0)
    assert summary["ttft_max_s"] == pytest.approx(8.0)


def test_quotes_bench_compares_both_ways_on_the_same_questions(
    tiny_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import quotes as bench_quotes

    monkeypatch.setenv("HAUSWISSEN__LLM__BACKEND", "scripted")
    argv = ["--set", str(tiny_set), "--cache", str(tmp_path / "cache"), "--questions", "3", "--json"]
    assert bench_quotes.main(argv) == 0
    result = json.loads(capsys.readouterr().out)

    assert set(result["modes"]) == {"extracted", "inline"}
    assert [r["qid"] for r in result["rows"]["extracted"]] == [r["qid"] for r in result["rows"]["inline"]]
    for summary in result["modes"].values():
        assert summary["questions"] == 3 - result["declined_by_check"]
        assert 0.0 <= summary["verified"] <= 1.0 and summary["total_p50_s"] >= 0.0
    assert bench_quotes.answer_text('Es sind 24 Tage [1] „Der Urlaub beträgt 24 Werktage“.') == "Es sind 24 Tage."
