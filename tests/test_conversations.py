"""Chats persisted in SQLite, feedback on answers, and feedback exported as an evaluation folder."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from rag.claims import CitationFix
from rag.conversations import (
    ConversationStore,
    answer_from_record,
    answer_to_record,
    exchanges,
    is_chat_id,
    new_chat_id,
)
from rag.documents import Passage
from rag.errors import InvalidInputError
from rag.evaluation.datasets import load_eval_set
from rag.service import Answer


def _answer(question: str, source_path: str, *, abstained: bool = False, query: str | None = None) -> Answer:
    passage = Passage(
        chunk_id=7, doc_id="d1", path=source_path, title="Urlaub", text="Der Urlaub beträgt 24 Werktage.",
        start=0, end=31, page=2, section="§ 3", score=0.5, scores={"dense": 0.4},
    )
    return Answer(
        question=question, text="Der Urlaub beträgt 24 Werktage [1].", sources=[passage],
        cited=[] if abstained else [1], language="de", abstained=abstained, timings={"total_s": 1.5},
        search_query=query,
    )


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    return ConversationStore(tmp_path / "conversations.sqlite")


def test_an_answer_survives_the_round_trip_through_json_unchanged() -> None:
    answer = _answer("Wie viel Urlaub?", "/docs/burlg.md", query="Wie viel Urlaub gibt es?")
    restored = answer_from_record(json.loads(json.dumps(answer_to_record(answer))))
    assert restored == answer
    assert restored.claims == answer.claims


def test_a_corrected_citation_is_kept_with_the_stored_answer() -> None:
    answer = dataclasses.replace(
        _answer("Wie viel Urlaub?", "/docs/burlg.md"),
        citation_fixes=[CitationFix("Der Urlaub beträgt 24 Werktage.", (2, 3), (1,))],
    )
    restored = answer_from_record(json.loads(json.dumps(answer_to_record(answer))))
    assert restored.citation_fixes == answer.citation_fixes
    older = {k: v for k, v in answer_to_record(answer).items() if k != "citation_fixes"}
    assert answer_from_record(older).citation_fixes == []
    sentence = "Der Urlaub beträgt 24 Werktage."
    first_form = {**older, "citation_fixes": [{"sentence": sentence, "cited": [2], "source": 1}]}
    assert answer_from_record(first_form).citation_fixes == [CitationFix(sentence, (2,), (1,))]


def test_chat_ids_are_unguessable_and_anything_else_is_rejected() -> None:
    ids = {new_chat_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_chat_id(i) and len(i) >= 24 for i in ids)
    for bad in ["", "abc", "../../etc/passwd", "x" * 65, "a b c d e f g h i j k l", None, 123]:
        assert not is_chat_id(bad)


def test_turns_come_back_in_order_after_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    chat = new_chat_id()
    first = ConversationStore(path)
    first.append(chat, "question", {"text": "Wie viel Urlaub?"})
    first.append(chat, "answer", answer_to_record(_answer("Wie viel Urlaub?", "/docs/a.md")))
    first.close()
    turns = ConversationStore(path).turns(chat)
    assert [(t.seq, t.kind) for t in turns] == [(1, "question"), (2, "answer")]
    assert answer_from_record(turns[1].data).cited == [1]


def test_one_chat_never_sees_another_chats_turns(store: ConversationStore) -> None:
    a, b = new_chat_id(), new_chat_id()
    store.append(a, "question", {"text": "Geheimnis von A"})
    store.append(b, "question", {"text": "Frage von B"})
    assert [t.data["text"] for t in store.turns(a)] == ["Geheimnis von A"]
    assert [t.data["text"] for t in store.turns(b)] == ["Frage von B"]
    assert store.turns(new_chat_id()) == []


def test_deleting_a_chat_removes_its_turns_and_feedback(store: ConversationStore) -> None:
    chat = new_chat_id()
    store.append(chat, "question", {"text": "q"})
    seq = store.append(chat, "answer", answer_to_record(_answer("q", "/docs/a.md")))
    store.rate(chat, seq, 1)
    store.delete(chat)
    assert store.turns(chat) == [] and store.feedback() == []


def test_idle_conversations_are_pruned_after_the_retention_period(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite", retention_days=1)
    old, fresh = new_chat_id(), new_chat_id()
    store.append(old, "question", {"text": "alt"})
    store.append(fresh, "question", {"text": "neu"})
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE conversations SET updated = updated - 2 * 86400 WHERE id = ?", (old,))
    assert store.prune() == 1
    assert store.turns(old) == [] and len(store.turns(fresh)) == 1


def test_an_invalid_chat_id_is_refused_when_writing(store: ConversationStore) -> None:
    with pytest.raises(InvalidInputError) as e:
        store.append("../x", "question", {"text": "q"})
    assert e.value.code == "chat_id_invalid"


def test_feedback_is_stored_per_answer_and_can_be_changed(store: ConversationStore) -> None:
    chat = new_chat_id()
    question = store.append(chat, "question", {"text": "q"})
    seq = store.append(chat, "answer", answer_to_record(_answer("q", "/docs/a.md")))
    store.rate(chat, seq, -1, "  falsche Zahl  ")
    store.rate(chat, seq, 1)
    assert store.ratings(chat) == {seq: (1, "")}
    with pytest.raises(InvalidInputError):
        store.rate(chat, question, 1)  # a question is not an answer
    with pytest.raises(InvalidInputError):
        store.rate(chat, seq, 0)
    with pytest.raises(InvalidInputError) as e:
        store.rate(chat, seq, 1, "x" * 5000)
    assert e.value.code == "feedback_too_long"


def test_exchanges_skip_refusals_and_errors(store: ConversationStore) -> None:
    chat = new_chat_id()
    store.append(chat, "question", {"text": "a"})
    store.append(chat, "answer", answer_to_record(_answer("a", "/docs/a.md")))
    store.append(chat, "question", {"text": "b"})
    store.append(chat, "answer", answer_to_record(_answer("b", "/docs/a.md", abstained=True)))
    store.append(chat, "error", {"key": "backend_error"})
    assert [e.question for e in exchanges(store.turns(chat))] == ["a"]


def test_exported_feedback_is_an_evaluation_folder_the_harness_loads(store: ConversationStore, tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    (sources / "hr").mkdir(parents=True)
    (sources / "hr" / "urlaub.md").write_text("# Urlaub\n\nDer Urlaub beträgt 24 Werktage.\n", encoding="utf-8")
    chat = new_chat_id()
    up = store.append(chat, "answer", answer_to_record(
        _answer("und wie lange?", str(sources / "hr" / "urlaub.md"), query="Wie lange ist der Urlaub?")
    ))
    down = store.append(chat, "answer", answer_to_record(_answer("Gehalt?", str(sources / "hr" / "urlaub.md"))))
    outside = store.append(chat, "answer", answer_to_record(_answer("Anderes?", "/nirgendwo/x.md")))
    store.rate(chat, up, 1, "gut")
    store.rate(chat, down, -1, "falsches Dokument")
    store.rate(chat, outside, 1)

    out = tmp_path / "export"
    assert store.export_feedback(out, [sources]) == (1, 2)

    cases = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert cases == [{"question": "Wie lange ist der Urlaub?", "sources": ["hr/urlaub.md"], "comment": "gut"}]
    review = [json.loads(line) for line in (out / "review.jsonl").read_text().splitlines()]
    assert [(r["rating"], r["comment"]) for r in review] == [(-1, "falsches Dokument"), (1, "")]
    eval_set = load_eval_set(out)
    assert list(eval_set.queries.values()) == ["Wie lange ist der Urlaub?"]
