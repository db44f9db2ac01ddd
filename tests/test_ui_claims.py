"""The chat marks sentences no cited source supports and highlights the supporting quote in its source."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from ui_support import APP, build_index, configured_app

import ui.runtime
from rag.chat import ScriptedChatModel
from rag.claims import normalise_quote
from rag.config import Settings
from rag.service import Assistant
from ui.escaping import _normalised, escape_inline, escape_markdown, quote_highlighted

SUPPORTED = "Der Urlaub beträgt jährlich mindestens 24 Werktage"
INVENTED = "Zusätzlich gibt es zehn Tage Bildungsurlaub für alle Beschäftigten"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    data = tmp_path / "data"
    with configured_app(tmp_path, data, monkeypatch):
        build_index(data)
        model = ScriptedChatModel(replies=[f"{SUPPORTED} [1]. {INVENTED} [1]."])

        def create(settings: Settings) -> Assistant:
            return Assistant(settings, chat_model=model)

        monkeypatch.setattr(ui.runtime, "create_assistant", create)
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        yield at


def test_an_unsupported_sentence_is_named_and_the_supporting_quote_is_highlighted(app: AppTest) -> None:
    app.chat_input[0].set_value("Wie viele Werktage Urlaub gibt es?").run()
    assert not app.exception
    captions = [c.value for c in app.caption]
    assert any("Nicht durch die zitierten Quellen belegt" in c for c in captions)
    assert any("Bildungsurlaub" in c for c in captions)
    assert not any("24 Werktage" in c for c in captions)
    assert any(f"> **{escape_markdown(SUPPORTED + '.')}**" in m.value for m in app.markdown)


def test_highlights_stay_literal_text() -> None:
    text = "Vorher. <script>x</script> [a](javascript:y) steht hier. Danach."
    shown = quote_highlighted(text, ["<script>x</script> [a](javascript:y) steht hier."])
    inner = escape_markdown("<script>x</script> [a](javascript:y) steht hier.")
    assert shown == f"> {escape_markdown('Vorher. ')}**{inner}**{escape_markdown(' Danach.')}  "
    assert quote_highlighted("abc", ["not there"]) == "> abc  "


def test_a_quote_the_passage_wraps_over_lines_is_highlighted_on_each_line() -> None:
    # Quotes are one line; PDF passages keep their line breaks.
    passage = "Vorher. Der Urlaub beträgt\n24 Werktage im Jahr. Danach."
    shown = quote_highlighted(passage, ["Der Urlaub beträgt 24 Werktage im Jahr."])
    assert shown == "> Vorher\\. **Der Urlaub beträgt**  \n> **24 Werktage im Jahr\\.** Danach\\.  "


def test_a_quote_is_found_as_the_claim_check_compares_it_over_hyphenation_ligatures_and_quote_marks() -> None:
    # The claim check verifies "Werktage" in "Werk-\ntage" and "„Urlaub“" in "»Urlaub«"; the UI marks it too.
    passage = "Vorher. Der Urlaub beträgt 24 Werk-\ntage. Er heißt »Erholungs\ufb01rst«. Danach."
    shown = quote_highlighted(passage, ["Der Urlaub beträgt 24 Werktage.", "er heißt „Erholungsfirst“."])
    assert shown == (
        "> Vorher\\. **Der Urlaub beträgt 24 Werk\\-**  \n> **tage\\.** **Er heißt "
        + escape_markdown("»Erholungs\ufb01rst«.") + "** Danach\\.  "
    )


def test_the_highlighter_normalises_a_passage_exactly_as_the_claim_check_does() -> None:
    # Whatever the claim check verifies, the highlighter can find: the same normal form, character by character.
    rng = random.Random(0)
    alphabet = list("abcÄßﬁ- \n\t\u00ad\u0308\u0301„“»«'Ａ1.")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert _normalised(text)[0].strip() == normalise_quote(text), repr(text)
    assert quote_highlighted("Es gilt A-\nB-\nC heute.", ["ABC heute"]).count("**") == 6
    assert "**" not in quote_highlighted("Die Kündigung ist unzulässig ohne Zustimmung.", ["zulässig ohne Zustimmung."])
    # A picked quote reads the passage's line breaks as spaces: "Werk- tage" is found as written.
    assert quote_highlighted("Es sind 24 Werk-\ntage im Jahr.", ["24 Werk- tage im Jahr."]).count("**") == 4
    # A quote cut inside a word ("…") is found by its beginning.
    assert quote_highlighted("Urlaubsanspruchsberechnung gilt.", ["Urlaubsanspruchs …"]).count("**") == 2
    assert _normalised("\u1100\u1161\u11a8")[0] == normalise_quote("\u1100\u1161\u11a8")  # jamo compose


def test_bold_runs_to_the_next_space_so_it_opens_and_closes_next_to_punctuation() -> None:
    # CommonMark ignores "**" between a letter and punctuation ("Werktage.**Danach").
    passage = "Vorher. Der Urlaub beträgt 24 Werktage.Danach mehr."
    shown = quote_highlighted(passage, ["Der Urlaub beträgt 24 Werktage."])
    assert shown == "> Vorher\\. **" + escape_markdown("Der Urlaub beträgt 24 Werktage.Danach") + "** mehr\\.  "


def test_indented_passage_lines_are_not_read_as_code() -> None:
    assert quote_highlighted("Kopf\n\n    Der Urlaub gilt.", ["Der Urlaub gilt."]) == (
        "> Kopf  \n>\n> **" + escape_markdown("Der Urlaub gilt.") + "**  "
    )


def test_a_long_row_cut_with_an_ellipsis_is_highlighted_by_its_beginning() -> None:
    row = "Gültig ab: 01.01.2024; Mindestlohn je Zeitstunde (brutto, €): 12,41; " + "Anmerkung " * 30
    shown = quote_highlighted(row + "\n\nGültig ab: 01.01.2022", [row[:200].rsplit(" ", 1)[0] + " …"])
    assert shown.startswith("> **" + escape_markdown("Gültig ab: 01.01.2024; Mindestlohn"))


def test_a_quote_past_the_shown_length_brings_its_part_of_the_passage_into_view() -> None:
    passage = "Einleitung ohne Belang. " * 80 + "Die Kündigungsfrist beträgt drei Monate. " + "Weiterer Text. " * 150
    shown = quote_highlighted(passage, ["Die Kündigungsfrist beträgt drei Monate."], limit=1500)
    assert "**" + escape_markdown("Die Kündigungsfrist beträgt drei Monate.") + "**" in shown
    assert shown.startswith("> … ") and shown.endswith("…  ")
    assert len(shown) < 1700


def test_a_quote_past_the_shown_length_of_a_passage_with_one_word_per_line_is_brought_into_view() -> None:
    passage = "\n".join(f"Zelle{i}" for i in range(400)) + "\nDie Kündigungsfrist beträgt drei Monate."
    shown = quote_highlighted(passage, ["Die Kündigungsfrist beträgt drei Monate."], limit=1500)
    assert shown.endswith("**" + escape_markdown("Die Kündigungsfrist beträgt drei Monate.") + "**  ")
    assert shown.startswith("> … Zelle")


def _cite_a_neighbour(messages: list) -> str:  # type: ignore[type-arg]
    """Cite a source other than the one holding the sentence (as small models often do)."""
    prompt = str(messages[-1].content)
    ids = re.findall(r'<source id="(\d+)"', prompt)
    blocks = re.split(r'<source id="\d+"', prompt)[1:]
    holder = next(n for n, block in zip(ids, blocks, strict=True) if "24 Werktage" in block)
    other = next(n for n in ids if n != holder)
    return f"{SUPPORTED} [{other}]."


def test_a_wrongly_cited_sentence_shows_the_corrected_source_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with configured_app(tmp_path, data, monkeypatch):
        build_index(data)
        model = ScriptedChatModel(respond=_cite_a_neighbour)
        monkeypatch.setattr(ui.runtime, "create_assistant", lambda settings: Assistant(settings, chat_model=model))
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        at.chat_input[0].set_value("Wie viele Werktage Urlaub gibt es?").run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert any("Quellenangabe berichtigt" in c and "24 Werktage" in c for c in captions), captions
    assert not any("Nicht durch die zitierten Quellen belegt" in c for c in captions)
    assert any(f"> **{escape_markdown(SUPPORTED + '.')}**" in m.value for m in at.markdown)


def test_a_corrected_citations_sentence_is_shown_as_text() -> None:
    from rag.claims import CitationFix
    from rag.documents import Passage
    from rag.service import Answer

    hostile = "<img src=x onerror=alert(1)> [a](javascript:alert(1)) {source} gilt"
    passage = Passage(chunk_id=1, doc_id="d", path="/a.md", title="a", text=hostile, start=0, end=len(hostile))
    answer = Answer(
        question="q", text=f"{hostile} [1].", sources=[passage], cited=[1], language="de", abstained=False,
        citation_fixes=[CitationFix(hostile, (2,), (1,))],
    )
    at = AppTest.from_function(_render, args=(answer,))
    at.run()
    assert not at.exception
    [note] = [c.value for c in at.caption if "Quellenangabe berichtigt" in c.value]
    assert escape_inline(hostile) in note  # literal text: no tag, no link, no format field


def _render(answer: object) -> None:
    from ui.sources import render_answer

    render_answer(answer, "de")  # type: ignore[arg-type]
