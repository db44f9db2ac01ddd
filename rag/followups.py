"""Follow-up questions made standalone before retrieval: "und wie lange gilt das?" needs the chat so far.

The chat model rewrites the latest question using the last few turns; retrieval then searches for the
rewrite, and the answer shows it on demand. The rewrite is only a search query: it is shown escaped and
never becomes an instruction. When the model's reply does not look like one question (empty, several
lines of prose, far longer than the question, an answer instead of a question), the question is used
as asked, so a bad rewrite can cost recall but never the user's words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from rag.citations import MARKER
from rag.language import Language

HISTORY_TURNS = 3
"""Earlier question/answer pairs the rewrite sees: follow-ups refer to the last few, rarely further."""

_ANSWER_CHARS = 400
_REPLY_CHARS = 400

_SYSTEM = {
    "de": (
        "Sie formulieren die letzte Frage eines Gesprächs so um, dass sie ohne das Gespräch verständlich "
        "ist: Ersetzen Sie Wörter wie \"das\", \"dort\" oder \"er\" durch das, worauf sie sich beziehen. "
        "Beantworten Sie die Frage nicht. Ist die Frage schon eigenständig, geben Sie sie unverändert aus. "
        "Geben Sie nur die eine umformulierte Frage aus."
    ),
    "en": (
        "You rewrite the last question of a conversation so that it can be understood without the "
        "conversation: replace words like \"that\", \"there\" or \"he\" with what they refer to. Do not "
        "answer the question. If the question already stands alone, output it unchanged. Output only the "
        "one rewritten question."
    ),
}
_EXAMPLE = {
    "de": (
        "Bisher:\nFrage: Wie viele Urlaubstage stehen Arbeitnehmern zu?\n"
        "Antwort: Der Urlaub beträgt jährlich mindestens 24 Werktage.\n\n"
        "Letzte Frage: Und ab wann gilt das?",
        "Ab wann gilt der Anspruch auf mindestens 24 Werktage Urlaub im Jahr?",
    ),
    "en": (
        "So far:\nQuestion: How many days of leave do employees get?\n"
        "Answer: Leave is at least 24 working days a year.\n\n"
        "Last question: And from when does that apply?",
        "From when does the entitlement to at least 24 working days of leave a year apply?",
    ),
}
_LABELS = {
    "de": ("Bisher", "Frage", "Antwort", "Letzte Frage"),
    "en": ("So far", "Question", "Answer", "Last question"),
}
_PREFIX = re.compile(
    r"^\s*(?:(?:umformulierte|eigenständige|letzte)\s+frage|(?:rewritten|standalone|last)\s+question|"
    r"frage|question)\s*:\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Exchange:
    """One earlier turn of a chat: what was asked and what was answered."""

    question: str
    answer: str


def _excerpt(answer: str) -> str:
    text = " ".join(MARKER.sub("", answer).split())
    return text if len(text) <= _ANSWER_CHARS else text[:_ANSWER_CHARS].rsplit(" ", 1)[0] + " …"


def rewrite_messages(question: str, history: Sequence[Exchange], language: Language) -> list[BaseMessage]:
    """The prompt for :func:`standalone_question`: rules, one worked example, the last turns."""
    so_far, q_label, a_label, last = _LABELS[language]
    lines = [f"{so_far}:"]
    for turn in history[-HISTORY_TURNS:]:
        lines += [f"{q_label}: {' '.join(turn.question.split())}", f"{a_label}: {_excerpt(turn.answer)}"]
    example_in, example_out = _EXAMPLE[language]
    return [
        SystemMessage(_SYSTEM[language]),
        HumanMessage(example_in),
        AIMessage(example_out),
        HumanMessage("\n".join(lines) + f"\n\n{last}: {' '.join(question.split())}"),
    ]


def clean_rewrite(reply: str, question: str) -> str:
    """The model's rewrite if it looks like one question, else ``question`` unchanged."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return question
    text = _PREFIX.sub("", lines[0]).strip().strip("\"'„“”»«").strip()
    if len(text) < 3 or len(text) > max(300, 4 * len(question)):
        return question
    if not text.endswith("?") and question.rstrip().endswith("?"):
        # An answer or a remark, not a question: searching for it would drift away from what was asked.
        return question
    return text


def standalone_question(
    model: BaseChatModel, question: str, history: Sequence[Exchange], language: Language
) -> str:
    """``question`` rewritten to stand alone, using ``history``; ``question`` itself without history.

    Raises:
        BackendError: the chat model failed.
    """
    if not history:
        return question
    from rag.chat import stream_text

    # Read only the first line (and not too much of it): the rewrite is one line, and stopping the
    # stream early frees the model without a backend-specific token cap.
    parts: list[str] = []
    stream = stream_text(model, rewrite_messages(question, history, language))
    try:
        for piece in stream:
            parts.append(piece)
            reply = "".join(parts).lstrip()
            if "\n" in reply or len(reply) > _REPLY_CHARS:
                break
    finally:
        stream.close()
    return clean_rewrite("".join(parts), question)
