"""The one service object the UI and CLI call: ``Assistant.ask(question, access)``.

It validates the question, retrieves passages the caller may see, prompts the chat model, streams the
answer and, once the stream ends, maps ``[n]`` markers to the sources that were shown.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.answerability import AnswerabilityCheck, Evidence
from rag.citations import attribute_uncited, parse_citations
from rag.claims import CitationFix, Claim, cited_numbers, extract_claims, fix_citations
from rag.config import Settings
from rag.documents import Passage
from rag.embedding import Embedder, create_embedder
from rag.errors import BackendError, InvalidInputError
from rag.followups import Exchange, standalone_question
from rag.grounding import Grounding, assess_grounding
from rag.language import Language, detect_language
from rag.prompting import NOT_FOUND, build_messages, location_label
from rag.queueing import GenerationQueue, Ticket
from rag.reranking import create_reranker
from rag.retrieval import HybridSearch
from rag.sanitize import sanitize_markdown
from rag.store import IndexReader, IndexStats

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

logger = logging.getLogger(__name__)


@dataclass
class Answer:
    """A finished answer. ``sources`` are numbered 1..n as the model saw them."""

    question: str
    text: str
    sources: list[Passage]
    cited: list[int]
    language: Language
    abstained: bool
    timings: dict[str, float] = field(default_factory=dict)
    search_query: str | None = None
    """What retrieval searched for when it differs from ``question`` (a follow-up made standalone)."""
    evidence: Evidence | None = None
    """How well the sources support an answer; an answer declined for weak evidence was never generated."""
    grounding: Grounding | None = None
    """How much of what the written answer adds the sources contain (None: not checked)."""
    draft: str | None = None
    """The model's answer when it was withdrawn as not grounded in the sources (``text`` then says
    "not found")."""
    citation_fixes: list[CitationFix] = field(default_factory=list)
    """Sentences whose citation was moved to the sources that say them (``text`` has the new markers)."""

    @property
    def markdown(self) -> str:
        """The answer, sanitised for rendering."""
        return sanitize_markdown(self.text)

    @property
    def claims(self) -> list[Claim]:
        """Each sentence with its citation and a quote checked against the cited source (none when
        the answer abstained)."""
        if self.abstained:
            return []
        return extract_claims(self.text, [p.text for p in self.sources])

    def cited_sources(self) -> list[tuple[int, Passage]]:
        """(number, passage) for every source the answer cites, in citation order."""
        return [(n, self.sources[n - 1]) for n in self.cited]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form: ``answer`` and ``sources`` (n, document, path, page, text, ...)."""
        return {
            "question": self.question,
            "answer": self.text,
            "language": self.language,
            "abstained": self.abstained,
            "cited": self.cited,
            "search_query": self.search_query,
            "evidence": self.evidence.to_dict() if self.evidence else None,
            "grounding": self.grounding.to_dict() if self.grounding else None,
            "draft": self.draft,
            "citation_fixes": [f.to_dict() for f in self.citation_fixes],
            "claims": [c.to_dict() for c in self.claims],
            "sources": [
                {
                    "n": n,
                    "document": p.document,
                    "path": p.path,
                    "title": p.title,
                    "page": p.page,
                    "page_end": p.page_end,
                    "page_label": p.page_label,
                    "section": p.section,
                    "text": p.text,
                    "cited": n in self.cited,
                    "score": round(p.score, 6),
                }
                for n, p in enumerate(self.sources, 1)
            ],
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class Retrieval:
    """What retrieval found for a question, and the answerability check's verdict on it."""

    sources: list[Passage]
    evidence: Evidence | None
    """``None`` when the check did not apply (off, RRF fusion, or too few hits to judge)."""

    @property
    def answerable(self) -> bool:
        """There are sources, and the check (where it applied) found them evidence enough."""
        return bool(self.sources) and (self.evidence is None or self.evidence.sufficient)


class _HeldDeltas(Iterator[str]):
    """A model's deltas holding a queue ticket until they end, fail or are closed.

    The ticket is also released if the stream is dropped unread: an abandoned answer must not keep
    the model's slot (a generator that never started would not run its ``finally``).
    """

    def __init__(self, ticket: Ticket, deltas: Iterator[str]) -> None:
        self._deltas = deltas
        self._release = weakref.finalize(self, ticket.release)

    def __next__(self) -> str:
        try:
            return next(self._deltas)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the model's stream, then free the ticket for the next in line."""
        try:
            close = getattr(self._deltas, "close", None)
            if close is not None:
                close()
        finally:
            self._release()


class AnswerStream:
    """Iterate for text deltas as they are generated; then read :attr:`answer`."""

    def __init__(
        self,
        question: str,
        language: Language,
        sources: list[Passage],
        deltas: Iterator[str],
        started: float,
        retrieval_s: float,
        search_query: str | None = None,
        evidence: Evidence | None = None,
        min_grounding: float = 0.0,
    ) -> None:
        self.question = question
        self._min_grounding = min_grounding
        self.evidence = evidence
        self.language = language
        self.sources = sources
        self.search_query = search_query
        self._deltas = deltas
        self._parts: list[str] = []
        self._started = started
        self._timings = {"retrieval_s": retrieval_s}
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for delta in self._deltas:
                if "first_token_s" not in self._timings:
                    self._timings["first_token_s"] = time.perf_counter() - self._started
                self._parts.append(delta)
                yield delta
        finally:
            self.close()
        self._finish()

    def close(self) -> None:
        """Stop generating (frees the local model at once when a reader gives up early)."""
        close = getattr(self._deltas, "close", None)
        if close is not None:
            close()

    def _finish(self) -> None:
        if self._answer is not None:
            return
        self._timings["total_s"] = time.perf_counter() - self._started
        raw = "".join(self._parts).strip()
        parsed = parse_citations(raw, len(self.sources))
        abstained = not self.sources or _is_refusal(parsed.text)
        text, cited = parsed.text, parsed.cited
        grounding, draft = None, None
        if not abstained and self._min_grounding > 0:
            # What the model read: each source with its label; what was asked: the question as put and
            # its standalone rewrite (a follow-up's answer may repeat either).
            labels = [f"{p.document}, {location_label(p, self.language)}" for p in self.sources]
            asked = " ".join(filter(None, [self.question, self.search_query]))
            grounding = assess_grounding(
                asked, text, [p.text for p in self.sources], self.language,
                min_found=self._min_grounding, labels=labels,
            )
            if grounding is not None and not grounding.grounded:
                abstained, draft, text = True, text or None, ""
        fixes: list[CitationFix] = []
        if not abstained:
            source_texts = [p.text for p in self.sources]
            text, _ = attribute_uncited(text, source_texts)
            text, fixes = fix_citations(text, source_texts)
            cited = cited_numbers(text, len(self.sources))
        self._answer = Answer(
            question=self.question,
            text=text or NOT_FOUND[self.language],
            sources=self.sources,
            cited=[] if abstained else cited,
            language=self.language,
            abstained=abstained,
            timings=self._timings,
            search_query=self.search_query,
            evidence=self.evidence,
            grounding=grounding,
            draft=draft,
            citation_fixes=fixes,
        )

    @property
    def answer(self) -> Answer:
        """The finished answer; consumes any part of the stream not read yet."""
        if self._answer is None:
            for _ in self:
                pass
        assert self._answer is not None
        return self._answer


def _normalise(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


_REFUSALS = [_normalise(t) for t in NOT_FOUND.values()]


def _is_refusal(text: str) -> bool:
    norm = _normalise(text)
    return any(r in norm for r in _REFUSALS)


def clean_question(question: str, max_chars: int) -> str:
    """Strip control characters and whitespace; refuse empty or over-long questions.

    Raises:
        InvalidInputError: the question is empty or longer than ``max_chars``.
    """
    text = "".join(ch if unicodedata.category(ch)[0] != "C" or ch in "\n\t" else " " for ch in question)
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise InvalidInputError("the question is empty", code="question_empty")
    if len(text) > max_chars:
        raise InvalidInputError(
            f"the question is too long ({len(text)} > {max_chars} characters)",
            code="question_too_long", length=len(text), limit=max_chars,
        )
    return text


class Assistant:
    """Retrieval plus generation over one index. Thread-safe; share one per process.

    Dependencies may be injected (tests use a hashing embedder and a scripted chat model); otherwise
    they are built from ``settings`` on first use.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        reader: IndexReader | None = None,
        chat_model: BaseChatModel | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder or create_embedder(settings.embedder)
        self.reader = reader or IndexReader(settings.index_dir, self.embedder.identity)
        self.search_engine = HybridSearch(
            self.reader, self.embedder, settings.retrieval, create_reranker(settings.retrieval, self.embedder)
        )
        self._chat_model = chat_model
        self.generation_queue = GenerationQueue(settings.llm.max_concurrent, settings.llm.max_waiting)
        self.answerability = AnswerabilityCheck(settings.answerability, self.reader)

    @property
    def chat_model(self) -> BaseChatModel:
        if self._chat_model is None:
            from rag.chat import create_chat_model

            self._chat_model = create_chat_model(self.settings.llm, self.models_dir)
        return self._chat_model

    @property
    def models_dir(self) -> Path:
        return self.settings.paths.models_dir

    def default_access(self) -> tuple[str, ...]:
        return tuple(self.settings.retrieval.default_access)

    def search(self, question: str, access: Sequence[str] | None = None, k: int | None = None) -> list[Passage]:
        """Passages for ``question`` that ``access`` may see (the configured default when None)."""
        self.reader.refresh()
        tokens = tuple(access) if access is not None else self.default_access()
        return self.search_engine.search(question, tokens, k)

    def retrieve(
        self, query: str, access: Sequence[str] | None = None, language: Language | None = None
    ) -> Retrieval:
        """The passages ``ask`` would give the model for ``query``, and whether they are evidence enough.

        ``language`` is the user's; the check uses the language of ``query`` itself, with the user's as
        the tie-break (the configured UI language when None).
        """
        self.reader.refresh()
        tokens = tuple(access) if access is not None else self.default_access()
        sources, ranking = self.search_engine.search_ranked(query, tokens)
        query_language = detect_language(query, default=language or self.settings.ui.language)
        candidates = len(ranking.dense) if ranking else 0
        return Retrieval(sources, self._evidence(query, sources, candidates, query_language))

    def ask(
        self,
        question: str,
        access: Sequence[str] | None = None,
        history: Sequence[Exchange] | None = None,
        *,
        on_wait: Callable[[int], None] | None = None,
    ) -> AnswerStream:
        """Answer ``question`` from the documents ``access`` may see; returns a stream.

        With ``history`` (the chat so far), a follow-up is first rewritten into a standalone question,
        which is what retrieval searches for (``Answer.search_query``); the model still answers the
        question as asked.

        The chat model is used through :attr:`generation_queue`: when it is busy, this call waits its
        turn (up to ``llm.queue_timeout_s``), calling ``on_wait(place)`` from this thread with the
        place in line (1 = next) when waiting starts, when the place changes and every few seconds.
        The returned stream holds the model until it ends, fails or is closed; close it when
        stopping early.

        Raises:
            InvalidInputError: empty or over-long question.
            BusyError: the queue is full (code ``busy``) or the wait timed out (``busy_timeout``).
        """
        from rag.chat import stream_text

        started = time.perf_counter()
        text = clean_question(question, self.settings.ui.max_question_chars)
        language = detect_language(text, default=self.settings.ui.language)
        # A follow-up's rewrite already needs the model: its ticket is kept through retrieval for the
        # answer, so the user waits in line once instead of twice (and is never refused halfway).
        ticket = self._take_turn(on_wait) if history else None
        try:
            query = self._standalone(text, history or (), language)
            found = self.retrieve(query, access, language)
            sources, evidence = found.sources, found.evidence
            retrieval_s = time.perf_counter() - started
            if not found.answerable:
                if ticket is not None:
                    ticket.release()
                deltas: Iterator[str] = iter([NOT_FOUND[language]])
            else:
                ticket = ticket if ticket is not None else self._take_turn(on_wait)
                messages = self.prompt(text, sources, language, search_query=query)
                deltas = _HeldDeltas(ticket, stream_text(self.chat_model, messages))
        except BaseException:
            if ticket is not None:
                ticket.release()
            raise
        return AnswerStream(
            text, language, sources, deltas, started, retrieval_s, None if query == text else query, evidence,
            self.settings.answerability.min_answer_grounding,
        )

    def _evidence(
        self, query: str, sources: list[Passage], candidates: int, language: Language
    ) -> Evidence | None:
        """The answerability check's verdict; ``None`` when it does not apply.

        It is off for RRF fusion (its scale assumes z-scores) and when the caller's part of the index
        yields fewer than ``answerability.min_candidates`` hits: among a handful of chunks no hit can
        stand out by much, so a low z-score says nothing there.
        """
        check = self.answerability
        if (
            not sources
            or not check.enabled
            or self.settings.retrieval.fusion != "zscore"
            or candidates < check.settings.min_candidates
        ):
            return None
        return self.answerability.assess(query, sources, language)

    def prompt(
        self, question: str, sources: Sequence[Passage], language: Language, search_query: str | None = None
    ) -> list[BaseMessage]:
        """The messages the chat model gets for ``question`` over ``sources`` (as configured); a follow-up's
        ``search_query`` (its standalone rewrite) helps choose what of each source the model reads."""
        return build_messages(
            question, sources, language, search_query=search_query,
            excerpt_chars=self.settings.retrieval.excerpt_chars, inline_quotes=self.settings.llm.inline_quotes,
        )

    def _take_turn(self, on_wait: Callable[[int], None] | None) -> Ticket:
        """An active ticket of the generation queue (waiting for it if need be)."""
        ticket = self.generation_queue.enter()
        ticket.wait(self.settings.llm.queue_timeout_s, on_wait)
        return ticket

    def _standalone(self, question: str, history: Sequence[Exchange], language: Language) -> str:
        try:
            return standalone_question(self.chat_model, question, history, language)
        except BackendError as e:
            # Searching for the question as asked still helps; the answer itself reports the failure.
            logger.warning("rewriting a follow-up failed: %s", e)
            return question

    def status(self) -> IndexStats:
        self.reader.refresh()
        return self.reader.stats()
