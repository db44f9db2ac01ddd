"""The answerability check: declining before the model when the passages are not evidence enough."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from rag.answerability import AnswerabilityCheck, coverage, passage_terms, question_terms
from rag.chat import ScriptedChatModel
from rag.config import AnswerabilitySettings, Settings
from rag.documents import Passage
from rag.embedding import HashingEmbedder
from rag.prompting import NOT_FOUND
from rag.service import Assistant
from tests.conftest import build_index


class Frequencies:
    """Every term in 1 of 100 chunks, unless told otherwise."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts = counts or {}

    def term_frequencies(self, terms: Iterable[str]) -> tuple[dict[str, int], int]:
        return {t: self.counts.get(t, 1) for t in terms}, 100


def passage(text: str, fused: float, n: int = 1) -> Passage:
    return Passage(n, f"d{n}", f"/docs/{n}.md", "", text, 0, len(text), score=fused, scores={"fused": fused})


@pytest.fixture
def check() -> AnswerabilityCheck:
    return AnswerabilityCheck(AnswerabilitySettings(), Frequencies())


def test_a_passage_with_the_asked_for_terms_is_evidence_enough(check: AnswerabilityCheck) -> None:
    found = [passage("§ 3 Die werktägliche Arbeitszeit der Arbeitnehmer darf acht Stunden nicht überschreiten.", 1.5)]
    evidence = check.assess("Wie lange darf man täglich arbeiten?", found, "de")
    assert evidence.coverage == pytest.approx(1.0)  # "täglich" inside "werktägliche"; question words ignored
    assert evidence.sufficient


def test_an_on_topic_passage_without_the_asked_for_fact_is_not(check: AnswerabilityCheck) -> None:
    found = [passage("Die Ruhepausen betragen bei einer Arbeitszeit von mehr als sechs Stunden 30 Minuten.", 2.5)]
    evidence = check.assess("Wie viele Überstunden dürfen Auszubildende im Jahr 2025 leisten?", found, "de")
    assert evidence.coverage < 0.3
    assert not evidence.sufficient


def test_a_strong_standout_hit_alone_is_enough(check: AnswerabilityCheck) -> None:
    evidence = check.assess("Wann gilt das?", [passage("Etwas ganz anderes.", 5.0)], "de")
    assert evidence.sufficient


def test_the_best_supported_of_the_first_passages_counts_and_later_ones_do_not(check: AnswerabilityCheck) -> None:
    weak = passage("Allgemeines zur Arbeitszeit.", 2.0, 1)
    strong = passage("Der Mindesturlaub beträgt 24 Werktage.", 1.2, 2)
    assert check.assess("Wie hoch ist der Mindesturlaub?", [weak, strong], "de").sufficient
    fillers = [passage(f"Füllwort {n}.", 2.0, n) for n in range(1, 4)]
    assert not check.assess("Wie hoch ist der Mindesturlaub?", [*fillers, strong], "de").sufficient


def test_rare_terms_weigh_more_than_common_ones() -> None:
    terms = {"urlaub", "elternzeit"}
    weights = {"urlaub": 0.2, "elternzeit": 3.0}
    assert coverage(terms, {"elternzeit"}, weights) > 0.9
    assert coverage(terms, {"urlaub"}, weights) < 0.1


def test_a_compound_in_the_question_partly_found_counts_half() -> None:
    assert coverage({"urlaubsantrag"}, {"urlaub"}, {"urlaubsantrag": 1.0}) == pytest.approx(0.5)


def test_a_compound_whose_first_part_and_head_both_occur_counts_whole() -> None:
    weights = {"urlaubstag": 1.0}
    werktage = passage_terms("Der Urlaub beträgt jährlich mindestens 24 Werktage.", "de")
    assert coverage({"urlaubstag"}, werktage, weights) == 1.0  # "urlaub" + "tag" ending "werktag"
    # The head must end a word: "tag" inside "beträgt" ("betragt") is no head.
    assert coverage({"urlaubstag"}, passage_terms("Der Urlaub beträgt 24.", "de"), weights) == 0.5


def test_pronouns_and_entitlement_verbs_name_nothing_an_answer_must_contain() -> None:
    assert question_terms("Wie viele Urlaubstage stehen mir zu?", "de") == {"urlaubstag"}
    assert question_terms("How much leave do my colleagues and me get?", "en") >= {"leav", "colleagu"}
    assert not question_terms("my me we us our", "en")


def test_words_that_ask_for_a_name_or_frame_the_question_name_nothing_an_answer_must_contain() -> None:
    # "Wie lautet der Name ...": the passage says "... heißt Bello", never "Name" or "lautet".
    asked = "Wie lautet der Name des Hundes, der ihnen gehörte?"
    assert question_terms(asked, "de", frame=True) == {"hund", "gehort"}
    assert question_terms(asked, "de") == {"hund", "gehort", "nam", "laut"}  # as grounding reads an answer
    assert question_terms("Worum wurde in den Gerichtsverfahren gestritten?", "de") == {"gerichtsverfahr", "gestritt"}
    assert question_terms("What was the dog named, and what was it called?", "en", frame=True) == {"dog"}
    assert question_terms("Worum geht es im Hinweisblatt zur Verbraucherinsolvenz?", "de") == {
        "hinweisblatt", "verbraucherinsolvenz"}
    # They are matched as written: content words of either language that share their stems stay.
    assert question_terms("How many calls and words did the hotline receive?", "en") >= {"call", "word"}
    assert "word" in question_terms("Wie speichere ich ein Word-Dokument?", "de")
    assert question_terms("Wie viele Kinder sind im Kindergarten?", "de") >= {"kind", "kindergart"}


def test_across_languages_only_the_hit_strength_counts(check: AnswerabilityCheck) -> None:
    german = "Der Urlaub beträgt jährlich mindestens 24 Werktage."
    evidence = check.assess("How many days of leave do I get?", [passage(german, 1.5)], "en")
    assert evidence.cross_lingual and evidence.coverage == 0.0
    assert evidence.sufficient  # 1.5 >= min_evidence_cross_lingual
    assert not check.assess("How many days of leave do I get?", [passage(german, 1.0)], "en").sufficient


def test_a_threshold_of_zero_turns_the_check_off() -> None:
    off = AnswerabilityCheck(AnswerabilitySettings(min_evidence=0, min_evidence_cross_lingual=0), Frequencies())
    assert not off.enabled
    assert off.assess("Wer gewann die WM 1954?", [passage("Urlaub.", -1.0)], "de").sufficient


# --- through the service (hashing embedder, scripted model) ---------------------------------------------


def _never_called(messages: object) -> str:
    raise AssertionError("the model was asked although the evidence was too weak")


@pytest.fixture
def gated_settings(settings_factory: Callable[..., Settings]) -> Settings:
    # The sample index is small; let the check apply to it.
    settings = settings_factory(ANSWERABILITY__MIN_CANDIDATES="1")
    build_index(settings.index_dir, HashingEmbedder(settings.embedder.dimension))
    return settings


def test_weak_evidence_is_declined_without_the_model_and_shows_the_closest_sources(gated_settings: Settings) -> None:
    model = ScriptedChatModel(respond=_never_called)
    answer = Assistant(gated_settings, chat_model=model).ask("Wie setze ich mein VPN-Passwort zurück?").answer
    assert answer.abstained
    assert answer.text == NOT_FOUND["de"]
    assert answer.sources  # the closest passages are still offered
    assert answer.cited == []
    data = answer.to_dict()
    assert data["abstained"] is True
    assert data["evidence"]["sufficient"] is False  # type: ignore[index]
    assert model.calls == []


def test_good_evidence_goes_to_the_model(gated_settings: Settings) -> None:
    model = ScriptedChatModel(replies=["Mindestens 24 Werktage [1]."])
    answer = Assistant(gated_settings, chat_model=model).ask("Wie viele Werktage Urlaub gibt es?").answer
    assert not answer.abstained
    assert answer.evidence is not None and answer.evidence.sufficient
    assert len(model.calls) == 1


def test_a_small_index_skips_the_check_and_lets_the_model_decide(indexed_settings: Settings) -> None:
    model = ScriptedChatModel(replies=["Dazu steht nichts in den Quellen [1]."])
    answer = Assistant(indexed_settings, chat_model=model).ask("Wie setze ich mein VPN-Passwort zurück?").answer
    assert answer.evidence is None  # fewer hits than answerability.min_candidates
    assert len(model.calls) == 1
