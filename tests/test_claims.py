"""Claims: every sentence with its citation and a quote checked against the cited source."""

from __future__ import annotations

from rag.chat import ScriptedChatModel
from rag.claims import extract_claims, normalise_quote
from rag.config import Settings
from rag.prompting import NOT_FOUND
from rag.service import Assistant

URLAUB = (
    "Jeder Arbeitnehmer hat in jedem Kalenderjahr Anspruch auf bezahlten Erholungsurlaub. "
    "Der Urlaub beträgt jährlich mindestens 24 Werktage."
)
INSOLVENZ = "Das Insolvenzgericht prüft den Antrag auf Restschuldbefreiung."


def test_a_supported_sentence_gets_a_verbatim_quote_from_its_source() -> None:
    [claim] = extract_claims("Der Urlaub beträgt mindestens 24 Werktage im Jahr [1].", [URLAUB, INSOLVENZ])
    assert claim.citation == 1 and claim.verified
    assert claim.quote == "Der Urlaub beträgt jährlich mindestens 24 Werktage."
    assert claim.quote in URLAUB
    assert claim.text == "Der Urlaub beträgt mindestens 24 Werktage im Jahr."


def test_a_citation_of_a_source_that_does_not_say_it_is_unverified() -> None:
    [claim] = extract_claims("Der Urlaub beträgt mindestens 24 Werktage [2].", [URLAUB, INSOLVENZ])
    assert claim.citation == 2 and not claim.verified


def test_of_several_citations_the_supporting_one_is_kept() -> None:
    [claim] = extract_claims("Der Urlaub beträgt mindestens 24 Werktage [2][1].", [URLAUB, INSOLVENZ])
    assert claim.citation == 1 and claim.verified


def test_a_fabricated_inline_quote_is_never_verified() -> None:
    [claim] = extract_claims('Das Gesetz sagt: „Der Urlaub beträgt 30 Werktage im Jahr“ [1].', [URLAUB])
    assert claim.quote == "Der Urlaub beträgt 30 Werktage im Jahr" and not claim.verified


def test_an_inline_quote_is_found_across_hyphenation_whitespace_and_quote_styles() -> None:
    source = 'Der Urlaub be-\ntr\u00e4gt  j\u00e4hrlich "mindestens"\n24 Werktage.'
    [claim] = extract_claims("Es heißt: „Der Urlaub beträgt jährlich „mindestens“ 24 Werktage“ [1].", [source])
    assert claim.verified
    assert normalise_quote("a\u00adb  „c“") == 'ab "c"'


def test_sentences_without_citation_and_numbers_pointing_nowhere_have_no_source() -> None:
    claims = extract_claims("Das ist allgemein bekannt. Der Urlaub beträgt 24 Werktage [7].", [URLAUB])
    assert [(c.citation, c.quote, c.verified) for c in claims] == [(None, None, False), (None, None, False)]


def test_ask_json_carries_claims_and_abstention(indexed_settings: Settings) -> None:
    data = Assistant(indexed_settings).ask("Wie viele Werktage Urlaub gibt es?").answer.to_dict()
    assert data["abstained"] is False
    [claim] = data["claims"]  # type: ignore[misc]
    assert set(claim) == {"text", "citation", "quote", "verified"}
    assert claim["citation"] == 1 and claim["verified"] is True


def test_an_abstaining_answer_has_no_claims(indexed_settings: Settings) -> None:
    model = ScriptedChatModel(replies=[NOT_FOUND["de"]])
    answer = Assistant(indexed_settings, chat_model=model).ask("Wie viele Werktage Urlaub gibt es?").answer
    assert answer.abstained
    assert answer.to_dict()["claims"] == []
