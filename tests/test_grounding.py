"""The grounding check: an answer must add something the sources say, and invent no number."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rag.chat import ScriptedChatModel
from rag.claims import extract_claims
from rag.config import Settings
from rag.conversations import answer_from_record, answer_to_record
from rag.embedding import HashingEmbedder
from rag.followups import Exchange
from rag.grounding import assess_grounding
from rag.prompting import NOT_FOUND
from rag.service import Answer, Assistant
from tests.conftest import build_index

SOURCES = [
    "Der Urlaub beträgt jährlich mindestens 24 Werktage.",
    "Die werktägliche Arbeitszeit der Arbeitnehmer darf acht Stunden nicht überschreiten.",
    "Luthers Schriften waren weit verbreitet und erreichten bereits 1519 Frankreich, England und Italien.",
]


def _grounded(question: str, answer: str, language: str = "de") -> bool | None:
    grounding = assess_grounding(question, answer, SOURCES, language, min_found=0.5)  # type: ignore[arg-type]
    return None if grounding is None else grounding.grounded


def test_an_answer_that_adds_what_the_sources_say_is_grounded() -> None:
    grounding = assess_grounding("Wie viele Urlaubstage gibt es?", "Es gibt 24 Werktage Urlaub [1].", SOURCES,
                                 "de", min_found=0.5)
    assert grounding is not None and grounding.grounded
    assert grounding.new_terms == ("24", "werktag")
    assert grounding.missing == ()


def test_a_link_in_the_answer_adds_its_text_but_not_its_address_or_number() -> None:
    # "[3](url)" is a link, not a citation: neither the 3 nor the address's 2024 is a number to find.
    answer = "Es gibt 24 Werktage Urlaub [1], siehe [3](https://intranet.example/urlaub/2024)."
    assert _grounded("Wie viele Urlaubstage gibt es?", answer)
    assert not _grounded("Wie viele Urlaubstage gibt es?", "Siehe [Zusatzurlaub für alle](https://intranet.example/z).")
    assert _grounded("Wie viele Urlaubstage gibt es?", "Es gibt 24 Werktage [1], siehe [3](https://x.example/a%202024.pdf).")
    assert not _grounded("Seit wann gibt es Urlaub?", "Seit [2031](https://x.example/r) gibt es 24 Werktage [1].")
    # An address with parentheses is a link's too; a title is prose the user reads, so it is checked.
    asked, answer = "Wie viele Urlaubstage gibt es?", "Es gibt 24 Werktage [1], siehe "
    assert _grounded(asked, answer + "[3](https://x.example/Urlaub_(2031)).")
    assert _grounded(asked, answer + '[3](https://x.example/u "Werktage").')
    assert not _grounded(asked, answer + '[3](x "zusätzlich 30 Tage Sonderurlaub ab 2031").')
    assert not _grounded(asked, answer + "[3](x (zusätzlich 30 Tage Sonderurlaub ab 2031)).")
    assert not _grounded(asked, answer + "[3](<zusätzlich 30 Tage Sonderurlaub ab 2031>).")
    # Only an address is no claim, and only a number where a citation would stand is none.
    assert not _grounded(asked, answer + "[3](zusätzlich-30-Tage-Sonderurlaub-ab-2031).")
    assert not _grounded(asked, "Es gibt [30](https://x.example) Werktage [1].")
    assert _grounded(asked, "Es gibt 24 Werktage [3](https://x.example/2031)[1].")
    assert _grounded(asked, "Es gibt 24 Werktage [1], siehe [Urlaubsantrag](formulare/urlaubsantrag-2031.pdf).")
    # "([1](url))" stands where a citation would; its 1 is no number the sources must hold.
    assert not _grounded("Darf die Arbeitszeit acht Stunden überschreiten?",
                         "Die Arbeitszeit darf acht Stunden überschreiten ([1](https://x.example/a)).")


def test_words_that_only_frame_a_question_are_still_words_an_answer_must_find() -> None:
    # "Name" and "Bezeichnung" frame a question, but in an answer they are claims about the source.
    sources = ["Im Antrag ist die Personalnummer anzugeben."]
    grounding = assess_grounding("Was muss im Antrag stehen?", "Im Antrag müssen Name, Bezeichnung und "
                                 "Personalnummer stehen [1].", sources, "de", min_found=0.5)
    assert grounding is not None and not grounding.grounded


def test_an_answer_that_only_restates_the_question_is_not_grounded() -> None:
    grounding = assess_grounding("Welche Schrift Luthers wurde später entdeckt?",
                                 "Luthers Schrift wurde später entdeckt [1].", SOURCES, "de", min_found=0.5)
    assert grounding is not None
    assert not grounding.grounded
    assert grounding.new_terms == ()


def test_an_invented_number_is_never_grounded_even_beside_words_the_sources_have() -> None:
    assert not _grounded("Wie viele Urlaubstage gibt es?", "Es gibt 30 Werktage Urlaub jährlich [1].")
    grounding = assess_grounding("Wie viele Urlaubstage gibt es?", "Es gibt 30 Werktage Urlaub jährlich [1].",
                                 SOURCES, "de", min_found=0.5)
    assert grounding is not None and grounding.missing == ("30",)


def test_words_no_source_has_are_not_grounded() -> None:
    assert not _grounded("Wer hat die Holzschnitte für Luthers Bibel geliefert?",
                         "Die Holzschnitte stammen von Johann Sebastian Bach [3].")


def test_a_number_spelled_out_in_the_source_counts_as_found() -> None:
    assert _grounded("Wie lange darf man täglich arbeiten?", "Höchstens 8 Stunden am Tag [2].")


@pytest.mark.parametrize(
    ("answer", "source"),
    [
        ("Der Zuschuss beträgt 1500 Euro [1].", "Der Zuschuss beträgt 1.500 Euro."),
        ("Der Zuschuss beträgt 1.500 Euro [1].", "Der Zuschuss beträgt 1500 Euro."),
        ("Die Regel gilt ab dem 1.3.2024 [1].", "Die Regel gilt ab 01.03.2024."),
        ("Die Kernzeit beginnt um 9:00 Uhr [1].", "Die Kernzeit beginnt um 9 Uhr."),
        ("Die Einarbeitung dauert 1 Tag [1].", "Die Einarbeitung dauert einen Tag."),
        ("Der Zuschlag beträgt 25 Prozent [1].", "Es wird ein Zuschlag von 25 % gezahlt."),
        ("Erstattet werden 0,30 Euro je Kilometer [1].", "Je Kilometer werden 0,30 € erstattet."),
        ("Es sind vier Wochen [1].", "Die Kündigungsfrist beträgt 4 Wochen."),
    ],
)
def test_a_number_written_another_way_is_the_same_number(answer: str, source: str) -> None:
    grounding = assess_grounding("Was gilt?", answer, [source], "de", min_found=0.5)
    assert grounding is not None and grounding.grounded, grounding


def test_a_number_that_is_only_part_of_a_larger_one_is_not_found() -> None:
    grounding = assess_grounding("Wie viele Einwohner hatte die Stadt im 2. Jahrhundert?",
                                 "Im 2. Jahrhundert hatte die Stadt 3.000 Einwohner [1].",
                                 ["Im 2. Jahrhundert lebten dort 2.000 Menschen, heute 300."], "de", min_found=0.5)
    assert grounding is not None and not grounding.grounded
    assert "3.000" in grounding.missing


def test_a_sentence_with_an_invented_number_is_unverified_beside_a_grounded_one() -> None:
    answer = "Der Urlaub beträgt 24 Werktage [1]. Der Urlaub wird um 14 Werktage verlängert [1]."
    assert _grounded("Wie viel Urlaub gibt es?", answer)
    claims = extract_claims(answer, SOURCES[:1])
    assert [c.verified for c in claims] == [True, False]


def test_a_claim_with_a_number_its_source_lacks_is_never_verified() -> None:
    (claim,) = extract_claims("Der Urlaub beträgt jährlich 30 Werktage [1].", SOURCES[:1])
    assert not claim.verified


def test_numbers_are_checked_against_sources_in_every_language() -> None:
    sources = ["Employees may work from home up to 3 days a week.", "Die Kantine ist von 11 bis 14 Uhr offen."]
    kept = assess_grounding("Wie viele Tage Homeoffice?", "Bis zu 3 Tage pro Woche [1].", sources, "de",
                            min_found=0.5)
    assert kept is not None and kept.grounded
    invented = assess_grounding("How many days?", "30 working days [1].", SOURCES, "en", min_found=0.5)
    assert invented is not None and not invented.grounded and invented.missing == ("30",)


def test_a_spelled_number_in_the_answer_is_checked_like_digits() -> None:
    assert _grounded("Wie viele Bälle fing er ab?", "Er fing acht Bälle ab [2].")
    assert not _grounded("Wie viele Bälle fing er ab?", "Er fing neun Bälle ab [2].")


def test_one_grounded_sentence_grounds_the_answer() -> None:
    answer = "Der Urlaub beträgt 24 Werktage [1]. Dazu kommen Brückentage nach Absprache."
    assert _grounded("Wie viel Urlaub gibt es?", answer)


def test_a_yes_or_no_is_an_answer_unless_it_confirms_a_number_no_source_has() -> None:
    assert _grounded("Gibt es Urlaub?", "Ja [1].")
    assert _grounded("Bekomme ich Urlaub?", "Ja, Sie bekommen Urlaub [1].")
    assert not _grounded("Gibt es Urlaub?", "Ja, 40 Werktage [1].")
    assert not _grounded("Darf ich 30 Tage Urlaub nehmen?", "Ja, Sie dürfen 30 Tage Urlaub nehmen [1].")


def test_picking_one_of_the_alternatives_the_question_offers_is_an_answer() -> None:
    sources = ["Der Antrag ist schriftlich zu stellen."]
    grounding = assess_grounding("Muss der Antrag schriftlich oder mündlich gestellt werden?", "Schriftlich [1].",
                                 sources, "de", min_found=0.5)
    assert grounding is not None and grounding.grounded


def test_an_answer_in_another_language_than_every_source_is_checked_for_numbers_only() -> None:
    assert _grounded("How many days of leave are there?", "There are 24 working days [1].", "en") is None


def test_a_source_in_the_answers_language_is_checked_beside_others() -> None:
    sources = [*SOURCES, "Employees get 30 days of annual leave."]
    grounding = assess_grounding("How many days of leave?", "Employees get 30 days [4].", sources, "en",
                                 min_found=0.5)
    assert grounding is not None and grounding.grounded


# --- in the service ----------------------------------------------------------------------------


def _answer(settings: Settings, reply: str, question: str) -> Answer:
    return Assistant(settings, chat_model=ScriptedChatModel(replies=[reply])).ask(question).answer


def test_an_ungrounded_answer_is_withdrawn_and_kept_as_a_draft(indexed_settings: Settings) -> None:
    answer = _answer(indexed_settings, "Es gibt 40 Werktage Urlaub [1].", "Wie viele Werktage Urlaub gibt es?")
    assert answer.abstained
    assert answer.text == NOT_FOUND["de"]
    assert answer.draft == "Es gibt 40 Werktage Urlaub [1]."
    assert answer.cited == [] and answer.claims == []
    assert answer.sources  # the closest sources are still offered
    data = answer.to_dict()
    assert data["abstained"] is True
    assert data["draft"] == "Es gibt 40 Werktage Urlaub [1]."
    assert data["grounding"] == {"new_terms": ["40"], "missing": ["40"], "found": 0.0, "grounded": False}


def test_a_grounded_answer_is_kept_with_its_grounding(indexed_settings: Settings) -> None:
    answer = _answer(indexed_settings, "Es gibt 24 Werktage [1].", "Wie viel Urlaub gibt es?")
    assert not answer.abstained
    assert answer.draft is None
    assert answer.grounding is not None and answer.grounding.grounded
    assert answer.cited == [1]


def test_the_check_can_be_turned_off(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(answerability__min_answer_grounding="0")
    build_index(settings.index_dir, HashingEmbedder(settings.embedder.dimension))
    answer = _answer(settings, "Es gibt 40 Werktage Urlaub [1].", "Wie viele Werktage Urlaub gibt es?")
    assert not answer.abstained
    assert answer.grounding is None


@pytest.mark.parametrize("reply", ["Es gibt 40 Werktage Urlaub [1].", "Es gibt 24 Werktage [1]."])
def test_a_stored_answer_keeps_its_draft_and_grounding(indexed_settings: Settings, reply: str) -> None:
    answer = _answer(indexed_settings, reply, "Wie viele Werktage Urlaub gibt es?")
    restored = answer_from_record(answer_to_record(answer))
    assert restored.draft == answer.draft
    assert restored.grounding == answer.grounding
    assert restored.abstained == answer.abstained


def test_what_the_model_read_includes_each_sources_label(indexed_settings: Settings) -> None:
    answer = _answer(indexed_settings, "Das regelt § 3 des Gesetzes zur Dauer des Urlaubs [2].",
                     "Wo steht die Dauer des Urlaubs?")
    assert not answer.abstained, answer.grounding


def test_a_follow_up_answer_may_repeat_the_rewritten_question(indexed_settings: Settings) -> None:
    replies = ["Wie viele Werktage Urlaub gibt es nach dem Bundesurlaubsgesetz?",
               "Nach dem Bundesurlaubsgesetz gibt es Werktage Urlaub [1]."]
    model = ScriptedChatModel(replies=replies)
    history = [Exchange("Was regelt das Bundesurlaubsgesetz?", "Den Urlaub [1].")]
    answer = Assistant(indexed_settings, chat_model=model).ask("und wie viele Tage?", history=history).answer
    assert answer.search_query == replies[0]
    # It adds nothing to the rewritten question: withdrawn, though every word is new to "und wie viele Tage?".
    assert answer.abstained
    assert answer.draft == replies[1]


def test_an_empty_reply_is_withdrawn_without_a_draft(indexed_settings: Settings) -> None:
    answer = _answer(indexed_settings, " ", "Wie viele Werktage Urlaub gibt es?")
    assert answer.abstained
    assert answer.draft is None


def test_a_no_stands_even_when_the_question_brought_a_number_the_sources_lack() -> None:
    assert _grounded("Darf man 12 Stunden am Tag arbeiten?", "Nein [2].")


def test_naming_an_alternative_the_sources_do_not_name_is_not_an_answer() -> None:
    sources = ["Der Antrag ist schriftlich zu stellen."]
    question = "Muss der Antrag schriftlich oder mündlich gestellt werden?"
    picked = assess_grounding(question, "Mündlich [1].", sources, "de", min_found=0.5)
    assert picked is not None and not picked.grounded


def test_a_sentence_opening_with_doch_is_no_yes() -> None:
    assert not _grounded("Wer lieferte die Holzschnitte?", "Doch die Holzschnitte lieferte Johann Sebastian Bach [1].")


def test_a_number_from_a_label_counts_only_where_the_answer_refers_to_it() -> None:
    labels = ["burlg.md, Seite 3, § 3 Dauer des Urlaubs"]
    cited = assess_grounding("Wo steht das?", "Das steht in § 3 [1].", SOURCES[:1], "de", min_found=0.5,
                             labels=labels)
    assert cited is not None and cited.grounded
    counted = assess_grounding("Wie viele Wochen?", "Es sind 3 Wochen [1].", SOURCES[:1], "de", min_found=0.5,
                               labels=labels)
    assert counted is not None and not counted.grounded
