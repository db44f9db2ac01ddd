from __future__ import annotations

from rag.citations import parse_citations
from rag.fusion import reciprocal_rank_fusion
from rag.language import detect_language
from rag.text import keyword_query, keyword_terms


def test_umlaut_spellings_meet_in_one_term() -> None:
    assert keyword_terms("Kündigung") == keyword_terms("Kuendigung") == keyword_terms("KÜNDIGUNG")
    assert keyword_terms("Straße") == keyword_terms("Strasse")


def test_inflected_german_forms_share_a_stem() -> None:
    assert keyword_terms("Kündigungsfristen")[0] == keyword_terms("Kündigungsfrist")[0]
    assert keyword_terms("Werktage")[0] == keyword_terms("Werktagen")[0]


def test_keyword_query_drops_stop_words_and_quotes_terms() -> None:
    q = keyword_query("Wie lange ist die Kündigungsfrist?")
    assert q is not None
    assert '"lang"' in q or '"lange"' in q
    assert '"die"' not in q
    assert keyword_query("?!") is None


def test_rrf_rewards_agreement_between_rankings() -> None:
    fused = reciprocal_rank_fusion({"dense": [1, 2, 3], "keyword": [3, 4, 1]}, k=60)
    assert [d for d, _ in fused][:2] == [1, 3]
    assert abs(fused[0][1] - (1 / 61 + 1 / 63)) < 1e-12


def test_rrf_weights_and_zero_weight() -> None:
    fused = reciprocal_rank_fusion({"dense": [1], "keyword": [2]}, weights={"dense": 0.0, "keyword": 1.0})
    assert fused == [(2, 1 / 61)]


def test_citations_are_normalised_and_unknown_numbers_dropped() -> None:
    out = parse_citations("Es sind 24 Werktage [1, 7]. Siehe auch [Quelle 2] und [9].", n_sources=5)
    assert out.text == "Es sind 24 Werktage [1]. Siehe auch [2] und."
    assert out.cited == [1, 2]
    assert out.dropped == [7, 9]


def test_markdown_links_are_not_taken_for_citations() -> None:
    out = parse_citations("Siehe [1](http://x) und [2]", n_sources=3)
    assert out.cited == [2]


def test_language_of_questions() -> None:
    assert detect_language("Wie viele Urlaubstage habe ich?") == "de"
    assert detect_language("How many days of leave do I get?") == "en"
    assert detect_language("Mindestlohn 2024", default="de") == "de"


def test_words_spelled_alike_in_both_languages_do_not_decide_the_language() -> None:
    # "was", "in", "an", "war" are German and English words; the rest of the question decides.
    assert detect_language("When was the contract signed?") == "en"
    assert detect_language("How old was the founder in the war?") == "en"
    assert detect_language("Was war der Grund für die Kündigung?") == "de"
    assert detect_language("In welchem Monat beginnt die Probezeit?") == "de"
    assert detect_language("An wen schicke ich den Antrag?") == "de"
    # German endings mark content words when no function word votes; English ones do not, as German
    # office words share them. Keyword queries without either take the default.
    assert detect_language("Reisekostenabrechnung Genehmigung", default="en") == "de"
    for keywords in ("Dokumentation Reisekosten", "Meeting Raum buchen", "Installation Drucker", "Lehrling Urlaub"):
        assert detect_language(keywords) == "de", keywords
    assert detect_language("Who is Ursula von der Leyen?") == "en"
    assert detect_language("Ich will Urlaub nehmen") == "de"


def test_sentences_copied_from_a_source_without_a_marker_get_its_number() -> None:
    from rag.citations import attribute_uncited

    sources = [
        "Die werktägliche Arbeitszeit darf acht Stunden nicht überschreiten.",
        "Der gesetzliche Mindesturlaub beträgt 24 Werktage im Jahr bei einer Sechs-Tage-Woche.",
    ]
    text, added = attribute_uncited(
        "Der gesetzliche Mindesturlaub beträgt 24 Werktage im Jahr. Das steht schon in [1]. "
        "Außerdem gibt es Weihnachtsgeld für alle Mitarbeitenden.",
        sources,
    )
    assert added == [2]
    assert text.startswith("Der gesetzliche Mindesturlaub beträgt 24 Werktage im Jahr [2].")
    assert text.endswith("Außerdem gibt es Weihnachtsgeld für alle Mitarbeitenden.")  # unsupported: no marker


def test_a_markdown_link_is_not_a_citation_so_the_copied_sentence_still_gets_its_source() -> None:
    from rag.citations import attribute_uncited

    sources = ["Der gesetzliche Mindesturlaub beträgt 24 Werktage im Jahr bei einer Sechs-Tage-Woche."]
    text, added = attribute_uncited(
        "Der gesetzliche Mindesturlaub beträgt 24 Werktage im Jahr bei einer Sechs-Tage-Woche [3](#t).",
        sources,
    )
    assert added == [1]
    assert text.endswith("[1].")
