"""Tight sources: the model reads a passage's sentences that bear on the question."""

from __future__ import annotations

from collections.abc import Callable

from rag.chat import ScriptedChatModel
from rag.config import Settings
from rag.documents import Passage
from rag.embedding import HashingEmbedder
from rag.excerpts import budget, excerpt
from rag.prompting import build_messages
from rag.service import Assistant
from tests.conftest import build_index

PASSAGE = (
    "Das Gesetz gilt für alle Betriebe. "
    "Die Ruhepausen betragen mindestens 30 Minuten. "
    "Die werktägliche Arbeitszeit darf acht Stunden nicht überschreiten. "
    "Sie kann auf zehn Stunden verlängert werden. "
    "Ausnahmen regelt die Aufsichtsbehörde."
)


def test_the_sentence_with_the_question_terms_is_kept_and_gaps_are_marked() -> None:
    cut = excerpt("Wie lange darf man täglich arbeiten?", PASSAGE, 90)
    assert "werktägliche Arbeitszeit darf acht Stunden" in cut
    assert "Ruhepausen" not in cut
    assert cut.startswith("…") and cut.endswith("…")
    assert len(cut) <= 90 + 4


def test_kept_sentences_stay_in_document_order() -> None:
    cut = excerpt("Ruhepausen und zehn Stunden?", PASSAGE, 120)
    assert cut.index("Ruhepausen") < cut.index("zehn Stunden")


def test_a_short_passage_or_no_budget_is_left_whole() -> None:
    assert excerpt("Arbeitszeit?", PASSAGE, 0) == PASSAGE
    assert excerpt("Arbeitszeit?", PASSAGE, len(PASSAGE)) == PASSAGE


def test_the_best_sentence_is_kept_whole_even_over_the_budget() -> None:
    cut = excerpt("Wie lange darf man täglich arbeiten?", PASSAGE, 10)
    assert "Die werktägliche Arbeitszeit darf acht Stunden nicht überschreiten." in cut


def test_each_rank_gets_its_own_budget_and_the_last_one_holds_for_the_rest() -> None:
    assert [budget([500, 125], rank) for rank in range(4)] == [500, 125, 125, 125]
    assert budget(250, 2) == 250
    passages = [Passage(i, f"d{i}", f"/docs/d{i}.md", f"D{i}", PASSAGE, 0, len(PASSAGE)) for i in range(3)]
    messages = build_messages("Wie lange darf man täglich arbeiten?", passages, "de", excerpt_chars=[0, 10])
    prompt = str(messages[-1].content)
    assert prompt.count(PASSAGE) == 1  # the first source whole, the others cut to their best sentence
    assert prompt.count("Die werktägliche Arbeitszeit darf acht Stunden nicht überschreiten.") == 3
    assert prompt.count("Ruhepausen") == 1


def test_a_follow_ups_rewrite_chooses_what_the_model_reads() -> None:
    passages = [Passage(1, "d1", "/docs/arbzg.md", "ArbZG", PASSAGE, 0, len(PASSAGE))]
    alone = str(build_messages("Und wie lange dauern sie?", passages, "de", excerpt_chars=60)[-1].content)
    rewritten = str(build_messages("Und wie lange dauern sie?", passages, "de", excerpt_chars=60,
                                   search_query="Wie lange dauern die Ruhepausen?")[-1].content)
    assert "Ruhepausen betragen mindestens 30 Minuten" not in alone
    assert "Ruhepausen betragen mindestens 30 Minuten" in rewritten
    assert "Frage: Und wie lange dauern sie?" in rewritten  # the model still answers the question as asked


def test_the_prompt_carries_excerpts_while_the_answer_keeps_whole_passages(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(RETRIEVAL__EXCERPT_CHARS="90")
    build_index(settings.index_dir, HashingEmbedder(settings.embedder.dimension))
    assistant = Assistant(settings, chat_model=ScriptedChatModel(replies=["Acht Stunden [1]."]))
    passage = Passage(1, "d1", "/docs/arbzg.md", "ArbZG", PASSAGE, 0, len(PASSAGE))
    prompt = str(assistant.prompt("Wie lange darf man täglich arbeiten?", [passage], "de")[-1].content)
    assert "acht Stunden" in prompt and "Ruhepausen" not in prompt
    stream = assistant.ask("Wie viele Werktage Urlaub gibt es?")
    answer = stream.answer
    sent = assistant.chat_model.calls[0]  # type: ignore[attr-defined]
    assert [m.content for m in sent] == [m.content for m in assistant.prompt(answer.question, answer.sources, "de")]
    assert all(p.text for p in answer.sources)


def test_without_excerpts_the_prompt_holds_every_passage_whole(indexed_settings: Settings) -> None:
    assistant = Assistant(indexed_settings)
    sources = assistant.search("Wie viele Werktage Urlaub gibt es?")
    prompt = str(build_messages("Wie viele Werktage Urlaub gibt es?", sources, "de")[-1].content)
    assert all(p.text in prompt for p in sources)
