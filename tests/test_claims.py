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


def test_an_inline_quote_cut_from_inside_a_word_is_not_verified() -> None:
    # "zulässig ohne Zustimmung" stands in "unzulässig ohne Zustimmung", which says the opposite.
    source = "Die Kündigung ist unzulässig ohne Zustimmung des Betriebsrats."
    [claim] = extract_claims("Es heißt: „zulässig ohne Zustimmung des Betriebsrats“ [1].", [source])
    assert not claim.verified
    [claim] = extract_claims("Es heißt: „unzulässig ohne Zustimmung des Betriebsrats“ [1].", [source])
    assert claim.verified
    # A footnote mark or a unit glued to a number does not continue the quote's word.
    footnoted = source.replace("Zustimmung", "Zustimmung¹")
    [claim] = extract_claims("Es heißt: „unzulässig ohne Zustimmung“ [1].", [footnoted])
    assert claim.verified


def test_an_inline_quote_is_found_across_hyphenation_whitespace_and_quote_styles() -> None:
    source = 'Der Urlaub be-\ntr\u00e4gt  j\u00e4hrlich mindestens\n24 Werktage.'
    [claim] = extract_claims("Es heißt: »Der Urlaub beträgt jährlich mindestens 24 Werktage« [1].", [source])
    assert claim.verified and claim.quote == "Der Urlaub beträgt jährlich mindestens 24 Werktage"
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


def test_the_inline_quote_prompt_asks_for_quotes_and_its_example_passes_the_check() -> None:
    from rag.prompting import _EXAMPLE_SOURCES, build_messages

    for language in ("de", "en"):
        plain, quoted = (build_messages("Frage?", [], language, inline_quotes=q) for q in (False, True))
        assert "„…“" in str(quoted[0].content) or '"…"' in str(quoted[0].content)
        assert str(plain[0].content) != str(quoted[0].content)
        example_sources = [text for _, _, text in _EXAMPLE_SOURCES[language]]
        [claim] = extract_claims(str(quoted[2].content), example_sources)
        assert claim.citation == 2 and claim.verified, claim


def test_with_inline_quotes_the_models_own_quote_is_checked(indexed_settings: Settings) -> None:
    settings = indexed_settings.model_copy(
        update={"llm": indexed_settings.llm.model_copy(update={"inline_quotes": True})}
    )
    seen: list[str] = []

    def respond(messages: list) -> str:  # type: ignore[type-arg]
        seen.append(str(messages[0].content))
        return ("Der Urlaub beträgt 24 Werktage [1] „Der Urlaub beträgt jährlich mindestens 24 Werktage“. "
                "Er verfällt nie [1] „Der Urlaub verfällt nie“.")

    answer = Assistant(settings, chat_model=ScriptedChatModel(respond=respond)).ask(
        "Wie viele Werktage Urlaub gibt es?"
    ).answer
    assert "„…“" in seen[0]
    real, fabricated = answer.claims
    assert real.quote == "Der Urlaub beträgt jährlich mindestens 24 Werktage" and real.verified
    assert fabricated.quote == "Der Urlaub verfällt nie" and not fabricated.verified


def test_a_verbatim_inline_quote_that_does_not_say_what_the_claim_says_is_unverified() -> None:
    claim_text = "Man bekommt dreißig Urlaubstage bezahlt [1] „Der Urlaub beträgt jährlich mindestens 24 Werktage“."
    [claim] = extract_claims(claim_text, [URLAUB])
    assert claim.quote == "Der Urlaub beträgt jährlich mindestens 24 Werktage" and not claim.verified
    [supported] = extract_claims(
        "Der Urlaub beträgt mindestens 24 Werktage [1] „Der Urlaub beträgt jährlich mindestens 24 Werktage“.", [URLAUB]
    )
    assert supported.verified


def test_a_short_claim_with_a_real_quote_is_unverified_when_its_number_is_not_there() -> None:
    quote = "„Der Urlaub beträgt jährlich mindestens 24 Werktage“"
    [wrong] = extract_claims(f"Es sind 30 Tage [1] {quote}.", [URLAUB])
    assert not wrong.verified
    [right] = extract_claims(f"Es sind 24 Werktage [1] {quote}.", [URLAUB])
    assert right.verified


def test_a_day_before_a_month_and_a_reference_before_a_number_end_no_sentence() -> None:
    from rag.claims import split_sentences

    text = "Sie gilt ab 1. März 2024. Siehe S. 12 und Abs. 2. Ende."
    assert split_sentences(text) == ["Sie gilt ab 1. März 2024.", "Siehe S. 12 und Abs. 2.", "Ende."]


MINDESTLOHN = [
    "Der Mindestlohn beträgt ab 1. Januar 2024 brutto 12,41 Euro je Zeitstunde.",
    "Mindestlohn 2015: 8,50 Euro; 2017: 8,84 Euro; 2019: 9,19 Euro.",
]


def test_a_sentence_citing_a_neighbour_is_moved_to_the_source_that_says_it() -> None:
    from rag.claims import fix_citations

    text, [fix] = fix_citations("Der Mindestlohn 2024 beträgt 12,41 € [2].", MINDESTLOHN)
    assert text == "Der Mindestlohn 2024 beträgt 12,41 € [1]."
    assert (fix.cited, fix.sources) == ((2,), (1,))
    assert fix.to_dict() == {"sentence": "Der Mindestlohn 2024 beträgt 12,41 €.", "cited": [2], "sources": [1]}
    [claim] = extract_claims(text, MINDESTLOHN)
    assert claim.citation == 1 and claim.verified


def test_a_citation_is_kept_when_one_cited_source_says_it_or_no_source_does() -> None:
    from rag.claims import fix_citations

    supported = "Der Urlaub beträgt mindestens 24 Werktage [2][1]."
    assert fix_citations(supported, [URLAUB, INSOLVENZ]) == (supported, [])
    # A number no source has: no source verifies it, so it stays where the model put it (and unverified).
    invented = "Der Mindestlohn 2024 beträgt 13,50 € [2]."
    assert fix_citations(invented, MINDESTLOHN) == (invented, [])
    uncited = "Der Mindestlohn 2024 beträgt 12,41 €."
    assert fix_citations(uncited, MINDESTLOHN) == (uncited, [])


def test_only_the_wrongly_cited_sentence_moves_and_the_answer_keeps_its_lines() -> None:
    from rag.claims import fix_citations

    answer = "Der Urlaub beträgt mindestens 24 Werktage [1].\n- Das Insolvenzgericht prüft den Antrag [1][3]. Ende."
    text, [fix] = fix_citations(answer, [URLAUB, INSOLVENZ, "Etwas anderes."])
    assert text == "Der Urlaub beträgt mindestens 24 Werktage [1].\n- Das Insolvenzgericht prüft den Antrag [2]. Ende."
    assert fix.cited == (1, 3) and fix.sources == (2,)


def test_a_marker_after_the_full_stop_moves_with_its_sentence() -> None:
    from rag.claims import fix_citations

    text, [fix] = fix_citations("Der Mindestlohn 2024 beträgt 12,41 €. [2] Mehr weiß ich nicht.", MINDESTLOHN)
    assert text == "Der Mindestlohn 2024 beträgt 12,41 € [1]. Mehr weiß ich nicht."
    assert fix.sources == (1,)


def test_sentence_spans_point_at_each_sentence_and_lines_end_sentences_only_when_asked() -> None:
    from rag.claims import sentence_spans

    text = "  Erster Satz [1].\n- Zweiter am 1. März 2024 [2].  Dritter!\n\n"
    assert [text[a:b] for a, b in sentence_spans(text, lines=True)] == [
        "Erster Satz [1].", "- Zweiter am 1. März 2024 [2].", "Dritter!",
    ]
    wrapped = "Der Urlaub beträgt\njährlich 24 Werktage. Ende."
    assert [wrapped[a:b] for a, b in sentence_spans(wrapped)] == ["Der Urlaub beträgt\njährlich 24 Werktage.", "Ende."]


def test_an_answers_list_items_are_claims_of_their_own() -> None:
    answer = (
        "Es gilt:\n- Der Urlaub beträgt mindestens 24 Werktage [1].\n"
        "* Das Insolvenzgericht prüft den Antrag [2].\n- [1]"
    )
    claims = extract_claims(answer, [URLAUB, INSOLVENZ])
    assert [(c.text, c.citation, c.verified) for c in claims] == [
        ("Es gilt:", None, False),
        ("Der Urlaub beträgt mindestens 24 Werktage.", 1, True),
        ("Das Insolvenzgericht prüft den Antrag.", 2, True),
    ]


def test_of_several_cited_sources_the_one_with_the_claims_number_verifies_it() -> None:
    sources = ["Der Urlaub beträgt 24 Werktage im Jahr.", "Laut Tarifvertrag beträgt der Urlaub 30 Werktage im Jahr."]
    [claim] = extract_claims("Der Urlaub beträgt 30 Werktage im Jahr [1][2].", sources)
    assert claim.citation == 2 and claim.verified


def test_a_citation_moves_only_for_a_clear_winner_with_words_enough_to_tell() -> None:
    from rag.claims import fix_citations

    # Half the terms: a verification, but not enough to overrule the model's choice.
    negated = ["Die Kündigung bedarf der Schriftform.", "Eine Abmahnung kann mündlich erfolgen; die Kündigung ebenso."]
    assert fix_citations("Die Kündigung muss schriftlich erfolgen [1].", negated)[1] == []
    # A runner-up close behind: no clear winner.
    said = "Das Insolvenzgericht in Bonn prüft den Antrag auf Restschuldbefreiung schnell"
    close = [f"{said}.", "Etwas anderes.", "Das Insolvenzgericht in Bonn prüft den Antrag auf Restschuldbefreiung."]
    assert fix_citations(f"{said} [2].", close)[1] == []
    # A list of references is not a claim.
    references = "Quellen:\n[2] Urlaub\n[1] Insolvenz"
    assert fix_citations(references, [URLAUB, INSOLVENZ]) == (references, [])
    # A markdown link is not a citation.
    link = "Das Insolvenzgericht prüft den Antrag [1](http://example.org)."
    assert fix_citations(link, [URLAUB, INSOLVENZ]) == (link, [])


def test_a_moved_marker_keeps_its_place_and_the_rest_of_the_answer_is_untouched() -> None:
    from rag.claims import fix_citations

    text, [fix] = fix_citations("[2] Der Mindestlohn 2024 beträgt 12,41 €.\nEs gilt ab Januar ...", MINDESTLOHN)
    assert text == "[1] Der Mindestlohn 2024 beträgt 12,41 €.\nEs gilt ab Januar ..."
    assert fix.sources == (1,)


def test_a_numbered_lists_items_are_verified_without_their_numbers() -> None:
    sources = ["Die Kaution beträgt höchstens drei Monatsmieten.", "Der Mieter zahlt die Nebenkosten monatlich."]
    answer = (
        "Es gilt:\n1. Die Kaution beträgt höchstens drei Monatsmieten [1].\n"
        "2. Der Mieter zahlt die Nebenkosten monatlich [2]."
    )
    claims = extract_claims(answer, sources)
    assert [(c.text, c.citation, c.verified) for c in claims][1:] == [
        ("Die Kaution beträgt höchstens drei Monatsmieten.", 1, True),
        ("Der Mieter zahlt die Nebenkosten monatlich.", 2, True),
    ]
    [date] = extract_claims("1. März 2024 ist der Stichtag [1].", ["Stichtag ist der 1. März 2024."])
    assert date.text == "1. März 2024 ist der Stichtag." and date.verified


def test_sources_that_say_it_equally_well_are_all_cited() -> None:
    from rag.claims import fix_citations

    table = "Gültig ab: 01.01.2024; Mindestlohn je Zeitstunde (brutto, €): 12,41"
    sources = [table, table.replace("12,41", "12.41 €"), "Gültig ab: 01.01.2015; Mindestlohn je Zeitstunde: 8,50"]
    text, [fix] = fix_citations("Der Mindestlohn ab 2024 beträgt 12,41 € je Zeitstunde [3].", sources)
    assert text == "Der Mindestlohn ab 2024 beträgt 12,41 € je Zeitstunde [1][2]."
    assert fix.sources == (1, 2)
    assert [(c.citation, c.verified) for c in extract_claims(text, sources)] == [(1, True)]


def test_a_tables_row_is_the_quote_not_the_start_of_the_table() -> None:
    rows = [f"Gültig ab: 01.01.{year}; Mindestlohn je Zeitstunde (brutto, €): {wage}; Rechtsgrundlage: Verordnung"
            for year, wage in [(2015, "8,50"), (2017, "8,84"), (2019, "9,19"), (2024, "12,41"), (2025, "12,82")]]
    table = "\n\n".join(rows)
    [claim] = extract_claims("Der Mindestlohn 2024 beträgt 12,41 € [1].", [table])
    assert claim.verified and claim.quote == rows[3]
    # A sentence wrapped over lines in a PDF stays whole when it is short enough to quote.
    wrapped = "Der Urlaub beträgt\njährlich mindestens 24 Werktage."
    [whole] = extract_claims("Der Urlaub beträgt mindestens 24 Werktage [1].", [wrapped])
    assert whole.quote == "Der Urlaub beträgt jährlich mindestens 24 Werktage."


def test_a_long_sentence_wrapped_over_lines_is_quoted_whole_not_by_a_line() -> None:
    sentence = (
        "Der Anspruch auf den Mindestlohn von 12,41 Euro je Zeitstunde besteht für alle Beschäftigten des\n"
        "Unternehmens nicht, soweit sie als Auszubildende nach dem Berufsbildungsgesetz beschäftigt sind oder\n"
        "als Praktikantinnen und Praktikanten ein verpflichtendes Praktikum im Rahmen ihres Studiums leisten."
    )
    [claim] = extract_claims("Der Anspruch auf den Mindestlohn von 12,41 Euro besteht [1].", [sentence])
    assert claim.quote is not None and claim.quote.startswith("Der Anspruch") and claim.quote.endswith(" …")
