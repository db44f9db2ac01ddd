"""The packaged default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) with the product's own prompt
(``rag.prompting``) answers a German question and cites the right source, not a near miss."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rag.chat import LlamaCppChatModel, create_chat_model, stream_text
from rag.citations import parse_citations
from rag.config import AnswerabilitySettings, LLMSettings
from rag.documents import Passage
from rag.grounding import assess_grounding
from rag.models import assemble_default_llm
from rag.prompting import build_messages

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def _passage(n: int, document: str, section: str, text: str) -> Passage:
    return Passage(chunk_id=n, doc_id=f"d{n}", path=f"/docs/{document}", title=document, text=text,
                   start=0, end=len(text), section=section)


# A trap (ArbZG also says "24", in weeks) and a near miss (BUrlG § 1, same topic, no number).
SOURCES = [
    _passage(1, "arbzg.md", "§ 3 Arbeitszeit der Arbeitnehmer",
             "Die werktägliche Arbeitszeit der Arbeitnehmer darf acht Stunden nicht überschreiten. Sie kann auf "
             "bis zu zehn Stunden nur verlängert werden, wenn innerhalb von sechs Kalendermonaten oder innerhalb "
             "von 24 Wochen im Durchschnitt acht Stunden werktäglich nicht überschritten werden."),
    _passage(2, "burlg.md", "§ 1 Urlaubsanspruch",
             "Jeder Arbeitnehmer hat in jedem Kalenderjahr Anspruch auf bezahlten Erholungsurlaub."),
    _passage(3, "burlg.md", "§ 3 Dauer des Urlaubs",
             "(1) Der Urlaub beträgt jährlich mindestens 24 Werktage.\n(2) Als Werktage gelten alle "
             "Kalendertage, die nicht Sonn- oder gesetzliche Feiertage sind."),
]
QUESTION = "Wie viele Urlaubstage stehen einem Arbeitnehmer gesetzlich mindestens zu?"


def test_default_model_answers_german_question_with_right_citation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_path = assemble_default_llm(REPO / "models")
    settings = LLMSettings(model_path=model_path, n_ctx=4096, n_threads=1, temperature=0.0, max_tokens=120)
    model = create_chat_model(settings, REPO / "models")
    assert isinstance(model, LlamaCppChatModel)
    messages = build_messages(QUESTION, SOURCES, "de")
    model.load()
    started = time.perf_counter()
    first = None
    pieces = []
    for piece in stream_text(model, messages):
        first = first or time.perf_counter()
        pieces.append(piece)
    finished = time.perf_counter()
    answer = "".join(pieces)
    with capsys.disabled():
        print(f"\n[default model, 1 thread] first token {(first or finished) - started:.1f} s, total "
              f"{finished - started:.1f} s, load average {os.getloadavg()[0]:.2f}\n  answer: {answer!r}")
    cited = parse_citations(answer, len(SOURCES)).cited
    assert "24" in answer
    assert 3 in cited, answer
    assert 1 not in cited, answer
    # The twin of test_grounding's scripted answers: the real model's right answer is not withdrawn.
    grounding = assess_grounding(QUESTION, answer, [p.text for p in SOURCES], "de",
                                 min_found=AnswerabilitySettings().min_answer_grounding)
    assert grounding is not None and grounding.grounded, (grounding, answer)
