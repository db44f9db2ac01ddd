"""Chats that outlive a browser tab: turns and feedback in SQLite, one conversation per chat id.

A chat id is an unguessable token (``new_chat_id``); the UI keeps it in the page URL, so reloading or
coming back to that address restores the chat, and nothing of one chat is reachable from another. Turns
are stored as JSON (answers with their sources, as the user saw them), never pickled. Conversations not
touched for ``retention_days`` are deleted with their feedback.

Feedback (thumbs up or down, an optional comment) is stored with the answer it rates, and
:meth:`ConversationStore.export_feedback` turns it into an evaluation folder for ``hauswissen eval``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag.claims import CitationFix
from rag.documents import Passage
from rag.errors import InvalidInputError
from rag.followups import Exchange
from rag.grounding import Grounding
from rag.service import Answer

_CHAT_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_COMMENT_CHARS = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE TABLE IF NOT EXISTS feedback (
    conversation TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    PRIMARY KEY (conversation, seq)
);
"""


def new_chat_id() -> str:
    """A fresh, unguessable chat id (URL-safe)."""
    return secrets.token_urlsafe(18)


def is_chat_id(value: object) -> bool:
    """Whether ``value`` has the form of a chat id (anything else from a URL is ignored)."""
    return isinstance(value, str) and bool(_CHAT_ID.match(value))


def answer_to_record(answer: Answer) -> dict[str, Any]:
    """A JSON-ready record of ``answer`` that :func:`answer_from_record` restores exactly."""
    return {
        "question": answer.question,
        "text": answer.text,
        "sources": [asdict(p) for p in answer.sources],
        "cited": list(answer.cited),
        "language": answer.language,
        "abstained": answer.abstained,
        "timings": dict(answer.timings),
        "search_query": answer.search_query,
        "draft": answer.draft,
        "grounding": answer.grounding.to_dict() if answer.grounding else None,
        "citation_fixes": [f.to_dict() for f in answer.citation_fixes],
    }


def answer_from_record(record: dict[str, Any]) -> Answer:
    """The :class:`~rag.service.Answer` stored by :func:`answer_to_record`."""
    return Answer(
        question=str(record["question"]),
        text=str(record["text"]),
        sources=[Passage(**p) for p in record["sources"]],
        cited=[int(n) for n in record["cited"]],
        language=record["language"],
        abstained=bool(record["abstained"]),
        timings={str(k): float(v) for k, v in record.get("timings", {}).items()},
        search_query=record.get("search_query"),
        draft=record.get("draft"),
        grounding=_grounding(record.get("grounding")),
        citation_fixes=[
            CitationFix(str(f["sentence"]), tuple(int(n) for n in f["cited"]), _now_cited(f))
            for f in record.get("citation_fixes") or []
        ],
    )


def _now_cited(fix: dict[str, Any]) -> tuple[int, ...]:
    # Records of the first version held one number under "source".
    return tuple(int(n) for n in fix["sources"]) if "sources" in fix else (int(fix["source"]),)


def _grounding(record: dict[str, Any] | None) -> Grounding | None:
    if not record:
        return None
    return Grounding(tuple(record["new_terms"]), tuple(record["missing"]), bool(record["grounded"]))


@dataclass(frozen=True)
class Turn:
    """One stored turn: ``kind`` is "question", "answer" or "error"; ``data`` is its JSON payload."""

    seq: int
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Feedback:
    """A rating of one answer, with the answer it rates."""

    conversation: str
    seq: int
    rating: int
    comment: str
    created: float
    answer: Answer


def exchanges(turns: Sequence[Turn]) -> list[Exchange]:
    """The question/answer pairs of a chat (for rewriting follow-ups); errors and refusals are skipped."""
    out: list[Exchange] = []
    for turn in turns:
        if turn.kind == "answer" and not turn.data.get("abstained"):
            out.append(Exchange(str(turn.data["question"]), str(turn.data["text"])))
    return out


class ConversationStore:
    """Chats and feedback in one SQLite file. Thread-safe; share one per process."""

    def __init__(self, path: Path, retention_days: float = 30.0) -> None:
        self.path = path
        self.retention_s = retention_days * 86400
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.prune()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def prune(self, now: float | None = None) -> int:
        """Delete conversations idle longer than the retention period; returns how many."""
        cutoff = (now or time.time()) - self.retention_s
        with self._transaction() as db:
            return db.execute("DELETE FROM conversations WHERE updated < ?", (cutoff,)).rowcount

    def turns(self, chat_id: str) -> list[Turn]:
        """The turns of a chat in order (none for an unknown id)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, payload FROM turns WHERE conversation = ? ORDER BY seq", (chat_id,)
            ).fetchall()
        return [Turn(seq, kind, json.loads(payload)) for seq, kind, payload in rows]

    def append(self, chat_id: str, kind: str, data: dict[str, Any]) -> int:
        """Store one turn at the end of a chat (creating the chat); returns its sequence number."""
        if not is_chat_id(chat_id):
            raise InvalidInputError("not a chat id", code="chat_id_invalid")
        payload = json.dumps(data, ensure_ascii=False)
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO conversations (id, created, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated",
                (chat_id, now, now),
            )
            (seq,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE conversation = ?", (chat_id,)
            ).fetchone()
            db.execute(
                "INSERT INTO turns (conversation, seq, kind, payload, created) VALUES (?, ?, ?, ?, ?)",
                (chat_id, seq, kind, payload, now),
            )
        return int(seq)

    def delete(self, chat_id: str) -> None:
        """Forget a chat, its turns and its feedback."""
        with self._transaction() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (chat_id,))

    def rate(self, chat_id: str, seq: int, rating: int, comment: str = "") -> None:
        """Store (or replace) the feedback on answer ``seq`` of a chat.

        Raises:
            InvalidInputError: the rating is not +1/-1, the comment is too long, or no such answer.
        """
        if rating not in (-1, 1):
            raise InvalidInputError("a rating is +1 or -1", code="feedback_invalid")
        comment = comment.strip()
        if len(comment) > MAX_COMMENT_CHARS:
            raise InvalidInputError(
                f"the comment is too long ({len(comment)} > {MAX_COMMENT_CHARS} characters)",
                code="feedback_too_long", length=len(comment), limit=MAX_COMMENT_CHARS,
            )
        with self._transaction() as db:
            row = db.execute(
                "SELECT kind FROM turns WHERE conversation = ? AND seq = ?", (chat_id, seq)
            ).fetchone()
            if row is None or row[0] != "answer":
                raise InvalidInputError("there is no such answer to rate", code="feedback_invalid")
            db.execute(
                "INSERT INTO feedback (conversation, seq, rating, comment, created) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(conversation, seq) DO UPDATE SET rating = excluded.rating, "
                "comment = excluded.comment, created = excluded.created",
                (chat_id, seq, rating, comment, time.time()),
            )

    def ratings(self, chat_id: str) -> dict[int, tuple[int, str]]:
        """(rating, comment) per rated answer of a chat."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, rating, comment FROM feedback WHERE conversation = ?", (chat_id,)
            ).fetchall()
        return {seq: (rating, comment) for seq, rating, comment in rows}

    def feedback(self) -> list[Feedback]:
        """Every stored rating with its answer, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT f.conversation, f.seq, f.rating, f.comment, f.created, t.payload FROM feedback f "
                "JOIN turns t ON t.conversation = f.conversation AND t.seq = f.seq ORDER BY f.created"
            ).fetchall()
        return [
            Feedback(conv, seq, rating, comment, created, answer_from_record(json.loads(payload)))
            for conv, seq, rating, comment, created, payload in rows
        ]

    def export_feedback(self, folder: Path, sources: Sequence[Path]) -> tuple[int, int]:
        """Write rated answers as an evaluation folder; returns (cases, cases to review).

        Answers rated up become ``cases.jsonl`` rows (the standalone question and the documents the
        answer cited, copied into ``documents/`` under their path below their source folder), runnable
        with ``hauswissen eval retrieval|answers FOLDER``. Answers rated down go to ``review.jsonl`` with
        the answer, the comment and every source shown: which document should have answered is for a
        person to decide.
        """
        documents = folder / "documents"
        documents.mkdir(parents=True, exist_ok=True)
        roots = [Path(s).resolve() for s in sources]
        cases: list[dict[str, Any]] = []
        review: list[dict[str, Any]] = []
        for item in self.feedback():
            answer = item.answer
            question = answer.search_query or answer.question
            if item.rating > 0 and not answer.abstained:
                names = [_copy_source(p.path, roots, documents) for _, p in answer.cited_sources()]
                names = list(dict.fromkeys(n for n in names if n))
                if names:
                    cases.append({"question": question, "sources": names, "comment": item.comment})
                    continue
            review.append({
                "question": question,
                "asked": answer.question,
                "rating": item.rating,
                "comment": item.comment,
                "answer": answer.text,
                "sources": [p.path for p in answer.sources],
            })
        _write_jsonl(folder / "cases.jsonl", cases)
        _write_jsonl(folder / "review.jsonl", review)
        return len(cases), len(review)


def _copy_source(path: str, roots: Sequence[Path], documents: Path) -> str | None:
    """Copy an indexed file below its source folder into ``documents``; its relative name, or None."""
    source = Path(path)
    for root in roots:
        try:
            relative = source.resolve().relative_to(root)
        except (ValueError, OSError):
            continue
        if not source.is_file() or source.is_symlink():
            return None
        target = documents / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        return relative.as_posix()
    return None


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
