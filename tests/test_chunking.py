"""Chunking: sections start chunks, limits hold, offsets index the full text, pages are right."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from ingest.chunking import MAX_SECTION_CHARS, Chunker, chunk_document
from ingest.parsing import Element, ParsedDocument, parse_file
from rag.documents import ChunkDraft

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "docs"


def count_words(text: str) -> int:
    """A cheap tokenizer: one token per word plus two special tokens, like a real one adds."""
    return len(text.split()) + 2


def _doc(*elements: Element) -> ParsedDocument:
    return ParsedDocument(
        path=Path("test.md"), title="Test", kind="md", page_label="page", elements=list(elements)
    )


def _text(text: str, heading: str | None = None, page: int | None = None) -> Element:
    return Element(text, "text", page, heading)


def _title(text: str, page: int | None = None) -> Element:
    return Element(text, "title", page, text)


def _sentences(count: int, words: int = 6, start: int = 0) -> str:
    """``count`` distinct sentences of ``words`` words each."""
    return " ".join(
        "Satz " + str(i) + " " + " ".join(f"wort{i}x{j}" for j in range(words - 3)) + " endet."
        for i in range(start, start + count)
    )


def _assert_consistent(full_text: str, chunks: list[ChunkDraft], max_tokens: int, count=count_words) -> None:
    assert chunks
    for chunk in chunks:
        assert chunk.text.strip() == chunk.text != ""
        assert full_text[chunk.start : chunk.end] == chunk.text
        assert count(chunk.text) <= max_tokens
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_full_text_joins_the_elements_with_blank_lines() -> None:
    doc = _doc(
        _title("§ 1 Zweck"), _text("Erster Absatz.", "§ 1 Zweck"), _text("Zweiter Absatz.", "§ 1 Zweck")
    )

    full_text, chunks = chunk_document(doc, count_words, 100, 10)

    assert full_text == "§ 1 Zweck\n\nErster Absatz.\n\nZweiter Absatz."
    assert [(c.start, c.end, c.section) for c in chunks] == [(0, len(full_text), "§ 1 Zweck")]


def test_each_heading_starts_a_new_chunk() -> None:
    doc = _doc(
        _title("§ 1 Urlaubsanspruch"),
        _text("Jeder Arbeitnehmer hat Anspruch auf Urlaub.", "§ 1 Urlaubsanspruch"),
        _title("§ 2 Geltungsbereich"),
        _text("Arbeitnehmer sind Arbeiter und Angestellte.", "§ 2 Geltungsbereich"),
    )

    full_text, chunks = chunk_document(doc, count_words, 200, 20)

    _assert_consistent(full_text, chunks, 200)
    assert [c.section for c in chunks] == ["§ 1 Urlaubsanspruch", "§ 2 Geltungsbereich"]
    assert chunks[0].text == "§ 1 Urlaubsanspruch\n\nJeder Arbeitnehmer hat Anspruch auf Urlaub."
    assert chunks[1].text.startswith("§ 2 Geltungsbereich\n\n")


def test_headings_directly_above_each_other_stay_with_the_following_text() -> None:
    doc = _doc(
        _title("Erster Abschnitt"),
        _title("§ 1 Zweck"),
        _text("Zweck des Gesetzes ist es.", "§ 1 Zweck"),
    )

    _, chunks = chunk_document(doc, count_words, 200, 20)

    assert len(chunks) == 1
    assert chunks[0].text.startswith("Erster Abschnitt\n\n§ 1 Zweck\n\n")
    assert chunks[0].section == "§ 1 Zweck"


def test_a_change_of_heading_without_title_element_starts_a_chunk() -> None:
    doc = _doc(_text("Vorspann ohne Überschrift."), _text("Text unter A.", "A"))

    _, chunks = chunk_document(doc, count_words, 200, 20)

    assert [(c.text, c.section) for c in chunks] == [
        ("Vorspann ohne Überschrift.", None),
        ("Text unter A.", "A"),
    ]


def test_paragraphs_of_a_long_section_are_packed_whole_up_to_the_limit() -> None:
    paragraphs = [_text(_sentences(2, start=2 * i), "§ 7") for i in range(10)]  # 12 words each
    doc = _doc(_title("§ 7"), *paragraphs)

    full_text, chunks = chunk_document(doc, count_words, 40, 0)

    _assert_consistent(full_text, chunks, 40)
    assert len(chunks) > 3
    paragraph_texts = {p.text for p in paragraphs}
    for chunk in chunks:
        parts = [p for p in chunk.text.split("\n\n") if p != "§ 7"]
        assert all(p in paragraph_texts for p in parts), "a paragraph that fits was split"
    assert all(c.section == "§ 7" for c in chunks)


def test_a_long_single_paragraph_is_split_at_sentence_boundaries() -> None:
    paragraph = _sentences(30)
    doc = _doc(_text(paragraph))

    full_text, chunks = chunk_document(doc, count_words, 30, 0)

    _assert_consistent(full_text, chunks, 30)
    assert len(chunks) >= 8
    for chunk in chunks:
        assert chunk.text.startswith("Satz ")
        assert chunk.text.endswith("endet.")
    assert " ".join(c.text for c in chunks) == paragraph


def test_abbreviations_and_ordinals_do_not_end_a_sentence() -> None:
    sentence = "Nach § 7 Abs. 3 BUrlG gilt bis zum 31. März z. B. die Frist, vgl. Nr. 2 dort."
    doc = _doc(_text(" ".join([sentence] * 6)))

    _, chunks = chunk_document(doc, count_words, 40, 0)

    assert len(chunks) > 1
    assert all(c.text.startswith("Nach § 7") and c.text.endswith("dort.") for c in chunks)


def test_overlap_repeats_whole_trailing_sentences_within_a_section() -> None:
    doc = _doc(_title("§ 9"), _text(_sentences(20), "§ 9"))

    full_text, chunks = chunk_document(doc, count_words, 30, 8)

    _assert_consistent(full_text, chunks, 30)
    assert len(chunks) > 2
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.start < previous.end, "no overlap"
        repeated = full_text[chunk.start : previous.end]
        assert repeated.startswith("Satz ") and repeated.endswith("endet.")
        assert count_words(repeated) - 2 <= 8
        assert chunk.end > previous.end


def test_no_overlap_is_carried_across_sections() -> None:
    doc = _doc(
        _title("A"),
        _text(_sentences(8), "A"),
        _title("B"),
        _text(_sentences(8, start=100), "B"),
    )

    _, chunks = chunk_document(doc, count_words, 30, 10)

    first_b = next(c for c in chunks if c.section == "B")
    last_a = [c for c in chunks if c.section == "A"][-1]
    assert first_b.start > last_a.end
    assert first_b.text.startswith("B\n\n")


def test_a_sentence_longer_than_the_limit_is_split_between_words() -> None:
    words = [f"wort{i}" for i in range(200)]
    doc = _doc(_text(" ".join(words)))

    full_text, chunks = chunk_document(doc, count_words, 25, 5)

    _assert_consistent(full_text, chunks, 25)
    assert " ".join(c.text for c in chunks).split() == words


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    def count_chars(text: str) -> int:
        return len(text) // 4 + 2

    doc = _doc(_text("x" * 1000))

    full_text, chunks = chunk_document(doc, count_chars, 52, 0)

    _assert_consistent(full_text, chunks, 52, count_chars)
    assert "".join(c.text for c in chunks) == "x" * 1000


def test_blank_elements_make_no_empty_chunks() -> None:
    doc = _doc(_text("  "), _text("Inhalt."), _text("\n"), _title("Ende"))

    full_text, chunks = chunk_document(doc, count_words, 50, 10)

    assert full_text == "Inhalt.\n\nEnde"
    assert [c.text for c in chunks] == ["Inhalt.", "Ende"]


def test_a_chunk_knows_its_first_and_last_page() -> None:
    doc = _doc(_text("Seite eins.", page=1), _text("Seite zwei.", page=2), _text("Noch zwei.", page=2))

    _, chunks = chunk_document(doc, count_words, 50, 0)
    assert [(c.page, c.page_end) for c in chunks] == [(1, 2)]

    _, small = chunk_document(doc, count_words, 5, 0)
    assert [(c.page, c.page_end) for c in small] == [(1, None), (2, None), (2, None)]


def test_max_tokens_that_leave_no_room_for_text_are_refused() -> None:
    with pytest.raises(ValueError, match="leaves no room"):
        chunk_document(_doc(_text("Text.")), count_words, 2, 0)


def test_chunking_a_sample_law_stays_within_limits_and_follows_its_paragraphs() -> None:
    doc = parse_file(SAMPLES / "burlg.md")

    full_text, chunks = chunk_document(doc, count_words, 120, 20)

    _assert_consistent(full_text, chunks, 120)
    sections = [c.section for c in chunks]
    assert sections.count("§ 1 Urlaubsanspruch") == 1
    section_3 = next(c for c in chunks if c.section == "§ 3 Dauer des Urlaubs")
    assert section_3.text.startswith("§ 3 Dauer des Urlaubs\n\n(1) Der Urlaub")
    assert len(set(sections)) == len([e for e in doc.elements if e.kind == "title"])


@pytest.fixture(scope="module")
def e5_count_tokens():
    from rag.embedding import E5Embedder

    return E5Embedder().count_tokens


@pytest.mark.slow
def test_chunks_of_a_real_law_fit_the_real_tokenizer(e5_count_tokens) -> None:
    doc = parse_file(SAMPLES / "arbzg.md")

    full_text, chunks = chunk_document(doc, e5_count_tokens, 300, 40)

    _assert_consistent(full_text, chunks, 300, e5_count_tokens)
    long_section = [c for c in chunks if c.section == "§ 7 Abweichende Regelungen"]
    assert len(long_section) > 1
    assert long_section[0].text.startswith("§ 7 Abweichende Regelungen")
    assert max(e5_count_tokens(c.text) for c in chunks) > 250, "chunks are packed, not split per paragraph"


@pytest.mark.slow
def test_pdf_chunks_cite_the_pages_their_text_comes_from(e5_count_tokens) -> None:
    doc = parse_file(SAMPLES / "hinweisblatt-verbraucherinsolvenz.pdf")

    full_text, chunks = chunk_document(doc, e5_count_tokens, 300, 40)

    _assert_consistent(full_text, chunks, 300, e5_count_tokens)
    spans = []
    offset = 0
    for element in doc.elements:
        spans.append((offset, offset + len(element.text), element.page))
        offset += len(element.text) + 2
    for chunk in chunks:
        pages = [page for start, end, page in spans if start < chunk.end and end > chunk.start]
        assert chunk.page == pages[0]
        assert chunk.page_end == (pages[-1] if pages[-1] != pages[0] else None)
    assert any(c.page_end for c in chunks), "some chunk should span a page break"
    cited = {c.page for c in chunks} | {c.page_end for c in chunks if c.page_end}
    assert cited == set(range(1, 13))
    signature = next(c for c in chunks if "eigenhändig unterschreiben" in c.text)
    assert signature.page == 3
    assert signature.section == "Anlage 3 (Abtretungserklärung nach § 287 Abs. 2 InsO)"


@pytest.mark.parametrize("name", ["hinweisblatt-verbraucherinsolvenz.pdf", "arbzg.md", "tzbfg-befristung.html"])
@pytest.mark.parametrize(("max_tokens", "overlap"), [(300, 40), (40, 10)])
def test_a_document_chunked_part_by_part_gives_the_chunks_of_the_whole(
    name: str, max_tokens: int, overlap: int
) -> None:
    doc = parse_file(SAMPLES / name)
    _, whole = chunk_document(doc, count_words, max_tokens, overlap)
    rng = random.Random(name)

    for _ in range(5):
        chunker = Chunker(count_words, max_tokens, overlap)
        chunks, rest = [], list(doc.elements)
        while rest:
            size = rng.randint(0, 9)  # empty parts too, as a PDF's last part is
            chunks += chunker.add(rest[:size])
            rest = rest[size:]
        chunks += chunker.finish()
        assert chunks == whole


def test_a_chunker_returns_a_sections_chunks_once_the_next_section_begins() -> None:
    chunker = Chunker(count_words, 100, 10)

    assert chunker.add([_title("§ 1 Zweck"), _text("Erster Absatz.", "§ 1 Zweck")]) == []
    closed = chunker.add([_title("§ 2 Dauer"), _text("Zweiter Absatz.", "§ 2 Dauer")])
    assert [(c.text, c.section) for c in closed] == [("§ 1 Zweck\n\nErster Absatz.", "§ 1 Zweck")]
    assert [(c.text, c.start) for c in chunker.finish()] == [("§ 2 Dauer\n\nZweiter Absatz.", 27)]


def test_a_long_document_without_headings_has_its_first_chunks_final_long_before_its_end() -> None:
    paragraphs = [_text(_sentences(8, start=8 * i), page=1 + i // 10) for i in range(600)]  # ~200 pages
    chunker = Chunker(count_words, 300, 40)

    early = chunker.add(paragraphs[:300])
    rest = chunker.add(paragraphs[300:]) + chunker.finish()

    assert early and sum(len(c.text) for c in early) > len(early) * 100
    full_text, whole = chunk_document(_doc(*paragraphs), count_words, 300, 40)
    assert early + rest == whole
    _assert_consistent(full_text, whole, 300)
    held = sum(len(p.text) for p in paragraphs[:300]) - (early[-1].end - early[0].start)
    assert held < 2 * MAX_SECTION_CHARS  # only the open run waits for more


def test_a_long_run_of_headings_alone_is_cut_too() -> None:
    titles = [_title(f"Abschnitt {i}: " + _sentences(20, start=20 * i)) for i in range(200)]  # ~200k chars
    chunker = Chunker(count_words, 300, 40)

    early = chunker.add(titles)

    assert early  # not all held until the end
    full_text, whole = chunk_document(_doc(*titles, _text("Schluss.", "Abschnitt 199")), count_words, 300, 40)
    assert early + chunker.add([_text("Schluss.", "Abschnitt 199")]) + chunker.finish() == whole
    _assert_consistent(full_text, whole, 300)
