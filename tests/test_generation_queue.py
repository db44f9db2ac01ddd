"""The generation queue: fair order, live places, refusal when full, release on every way out, and load."""

from __future__ import annotations

import functools
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from rag.chat import ScriptedChatModel
from rag.config import Settings
from rag.embedding import HashingEmbedder
from rag.errors import BackendError, BusyError
from rag.followups import Exchange
from rag.queueing import GenerationQueue, Ticket
from rag.service import Assistant
from tests.conftest import build_index
from ui.i18n import error_text, translate

QUESTION = "Wie viele Werktage Urlaub gibt es?"


def _in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def queued_settings(settings_factory: Callable[..., Settings]) -> Callable[..., Settings]:
    """Indexed settings with the queue limits given (``max_concurrent=1, max_waiting=2`` ...)."""

    def make(**llm: object) -> Settings:
        # The scripted model's reply is in no source: the grounding check would withdraw it, and these
        # tests are about the queue, not the answer.
        made = settings_factory(
            answerability__min_answer_grounding="0", **{f"llm__{key}": str(value) for key, value in llm.items()}
        )
        build_index(made.index_dir, HashingEmbedder(made.embedder.dimension))
        return made

    return make


# --- the queue on its own ----------------------------------------------------------------------


def test_a_free_slot_is_taken_at_once_without_waiting() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=2)
    places: list[int] = []
    with queue.enter() as ticket:
        ticket.wait(0.1, on_wait=places.append)
        assert ticket.active
        assert ticket.place == 0
        assert (queue.active, queue.waiting) == (1, 0)
    assert places == []
    assert ticket.released
    assert (queue.active, queue.waiting) == (0, 0)


def test_waiting_requests_are_admitted_first_come_first_served() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=10)
    holder = queue.enter()
    tickets = [queue.enter() for _ in range(6)]
    assert [t.place for t in tickets] == [1, 2, 3, 4, 5, 6]
    order: list[int] = []

    def user(n: int, ticket: Ticket) -> Callable[[], None]:
        def run() -> None:
            with ticket:
                ticket.wait(10)
                order.append(n)

        return run

    # Start the threads in reverse: the order of admission is the order of entering, not of waiting.
    threads = [_in_thread(user(n, t)) for n, t in reversed(list(enumerate(tickets)))]
    holder.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4, 5]
    assert (queue.active, queue.waiting) == (0, 0)


def test_a_waiter_is_told_its_place_each_time_it_moves_up() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=5)
    first, second, third = queue.enter(), queue.enter(), queue.enter()
    places: list[int] = []
    told = threading.Condition()

    def on_wait(place: int) -> None:
        with told:
            places.append(place)
            told.notify_all()

    def wait_for(place: int) -> None:
        with told:
            assert told.wait_for(lambda: place in places, timeout=5), places

    thread = _in_thread(lambda: third.wait(10, on_wait=on_wait, every_s=60))
    wait_for(2)
    first.release()
    wait_for(1)
    second.release()
    thread.join(5)
    assert places == [2, 1]
    assert third.active
    third.release()


def test_the_place_is_repeated_while_the_line_does_not_move() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=1)
    holder = queue.enter()
    places: list[int] = []
    with pytest.raises(BusyError):
        queue.enter().wait(0.35, on_wait=places.append, every_s=0.05)
    assert len(places) >= 3
    assert set(places) == {1}
    holder.release()


def test_a_full_line_refuses_at_once_with_busy_and_the_numbers_the_ui_shows() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=2)
    held = [queue.enter() for _ in range(3)]
    started = time.monotonic()
    with pytest.raises(BusyError) as info:
        queue.enter()
    assert time.monotonic() - started < 0.5
    assert info.value.code == "busy"
    assert info.value.params == {"waiting": 2, "limit": 2}
    assert (queue.active, queue.waiting) == (1, 2)
    german = error_text("de", info.value.code, info.value.params, str(info.value))
    assert "2 Fragen" in german and "erneut" in german
    assert "2 questions" in error_text("en", info.value.code, info.value.params, str(info.value))
    for ticket in held:
        ticket.release()


def test_without_a_waiting_room_a_busy_model_refuses_the_next_request() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=0)
    with queue.enter(), pytest.raises(BusyError):
        queue.enter()
    queue.enter().release()


def test_a_wait_that_times_out_is_busy_and_gives_up_the_place() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=2)
    holder, late = queue.enter(), queue.enter()
    started = time.monotonic()
    with pytest.raises(BusyError) as info:
        late.wait(0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert info.value.code == "busy_timeout"
    assert info.value.params == {"place": 1, "waited_s": 0}
    assert late.released
    assert queue.waiting == 0
    assert "Nummer 1" in error_text("de", info.value.code, info.value.params, str(info.value))
    holder.release()


def test_a_failing_callback_gives_up_the_place() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=2)
    holder, waiter = queue.enter(), queue.enter()

    def leave(place: int) -> None:
        raise KeyboardInterrupt  # e.g. the UI session stopped while waiting

    with pytest.raises(KeyboardInterrupt):
        waiter.wait(5, on_wait=leave)
    assert waiter.released
    assert queue.waiting == 0
    holder.release()


def test_leaving_with_an_error_frees_the_slot_for_the_next_in_line() -> None:
    queue = GenerationQueue(max_active=1, max_waiting=2)
    nxt = None
    with pytest.raises(RuntimeError), queue.enter():
        nxt = queue.enter()
        raise RuntimeError("generation failed")
    assert nxt is not None and nxt.active
    nxt.release()
    nxt.release()  # twice is harmless
    assert (queue.active, queue.waiting) == (0, 0)


def test_several_slots_admit_several_at_once() -> None:
    queue = GenerationQueue(max_active=2, max_waiting=1)
    a, b, c = queue.enter(), queue.enter(), queue.enter()
    assert (a.active, b.active, c.place) == (True, True, 1)
    a.release()
    assert c.active
    for ticket in (b, c):
        ticket.release()


def test_the_waiting_message_names_the_place_in_both_languages() -> None:
    assert translate("de", "queue_waiting", place=2) == (
        "Viele Anfragen gleichzeitig – Sie sind Nummer 2 in der Warteschlange."
    )
    assert "number 2" in translate("en", "queue_waiting", place=2)


# --- the queue inside Assistant.ask ------------------------------------------------------------


def test_a_second_question_waits_its_turn_and_is_told_its_place(queued_settings: Callable[..., Settings]) -> None:
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=2), chat_model=ScriptedChatModel())
    first = assistant.ask(QUESTION)
    deltas = iter(first)
    next(deltas)
    places: list[int] = []
    texts: list[str] = []
    thread = _in_thread(lambda: texts.append(assistant.ask(QUESTION, on_wait=places.append).answer.text))
    assert _eventually(lambda: places == [1])
    assert assistant.generation_queue.waiting == 1
    first.close()
    thread.join(5)
    assert texts == ["Scripted answer [1]."]
    assert (assistant.generation_queue.active, assistant.generation_queue.waiting) == (0, 0)


def test_a_full_queue_refuses_the_question_before_the_model_is_called(
    queued_settings: Callable[..., Settings],
) -> None:
    model = ScriptedChatModel()
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=0), chat_model=model)
    first = assistant.ask(QUESTION)
    reading = iter(first)  # kept: a dropped iterator closes the stream
    next(reading)
    with pytest.raises(BusyError) as info:
        assistant.ask(QUESTION)
    assert info.value.code == "busy"
    assert len(model.calls) == 1
    first.close()
    assert assistant.ask(QUESTION).answer.text == "Scripted answer [1]."


def test_a_question_that_waits_too_long_is_refused_as_busy(queued_settings: Callable[..., Settings]) -> None:
    assistant = Assistant(
        queued_settings(max_concurrent=1, max_waiting=1, queue_timeout_s=0.2), chat_model=ScriptedChatModel()
    )
    first = assistant.ask(QUESTION)
    reading = iter(first)  # kept: a dropped iterator closes the stream
    next(reading)
    with pytest.raises(BusyError) as info:
        assistant.ask(QUESTION)
    assert info.value.code == "busy_timeout"
    assert assistant.generation_queue.waiting == 0
    first.close()


def test_reading_to_the_end_frees_the_queue(queued_settings: Callable[..., Settings]) -> None:
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=0), chat_model=ScriptedChatModel())
    for _ in range(3):
        assert assistant.ask(QUESTION).answer.cited == [1]
    assert assistant.generation_queue.active == 0


def test_closing_a_stream_early_frees_the_queue(queued_settings: Callable[..., Settings]) -> None:
    model = ScriptedChatModel(replies=["ein langer Text mit vielen Wörtern [1]"])
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=0), chat_model=model)
    stream = assistant.ask(QUESTION)
    reading = iter(stream)
    next(reading)
    assert assistant.generation_queue.active == 1
    stream.close()
    assert assistant.generation_queue.active == 0
    assert not model.is_busy


def test_an_abandoned_generator_frees_the_queue(queued_settings: Callable[..., Settings]) -> None:
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=0), chat_model=ScriptedChatModel())
    deltas = iter(assistant.ask(QUESTION))
    next(deltas)
    del deltas  # the reader went away mid-answer without closing anything
    gc.collect()
    assert assistant.generation_queue.active == 0


def test_a_stream_dropped_unread_frees_the_queue(queued_settings: Callable[..., Settings]) -> None:
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=0), chat_model=ScriptedChatModel())
    stream = assistant.ask(QUESTION)
    assert assistant.generation_queue.active == 1
    del stream
    gc.collect()
    assert assistant.generation_queue.active == 0


def test_a_failing_model_frees_the_queue(queued_settings: Callable[..., Settings]) -> None:
    model = ScriptedChatModel(replies=["a b c"], error=RuntimeError("decode failed"))
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=0), chat_model=model)
    with pytest.raises(BackendError):
        list(assistant.ask(QUESTION))
    assert assistant.generation_queue.active == 0


def test_questions_without_sources_do_not_queue(settings_factory: Callable[..., Settings]) -> None:
    assistant = Assistant(settings_factory(llm__max_waiting="0"), chat_model=ScriptedChatModel())
    with assistant.generation_queue.enter():
        answer = assistant.ask(QUESTION).answer
    assert answer.abstained


def test_a_follow_up_queues_once_for_its_rewrite_and_its_answer(queued_settings: Callable[..., Settings]) -> None:
    model = ScriptedChatModel(replies=["Wie viele Werktage Urlaub gibt es im Jahr?", "24 Werktage [1]."])
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=0), chat_model=model)
    history = [Exchange("Was regelt das BUrlG?", "Den Urlaub [1].")]
    with assistant.generation_queue.enter(), pytest.raises(BusyError):
        assistant.ask("Und wie viele Tage?", history=history)
    assert model.calls == []
    stream = assistant.ask("Und wie viele Tage?", history=history)
    assert assistant.generation_queue.active == 1
    assert stream.answer.text == "24 Werktage [1]."
    assert assistant.generation_queue.active == 0


# --- load ----------------------------------------------------------------------------------------


@dataclass
class _Outcomes:
    answered: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    failed: list[BaseException] = field(default_factory=list)
    places: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def test_twenty_five_users_are_each_answered_or_told_busy_and_nothing_hangs(
    queued_settings: Callable[..., Settings],
) -> None:
    users, limit_s = 25, 30.0
    # The model's own lock gives up after 1 s: were two generations let through at once, one would fail.
    model = ScriptedChatModel(
        replies=["Der Urlaub beträgt jährlich mindestens 24 Werktage [1]."], token_delay_s=0.02, wait_timeout_s=1.0
    )
    assistant = Assistant(queued_settings(max_concurrent=1, max_waiting=8, queue_timeout_s=20), chat_model=model)
    assistant.search(QUESTION)  # open the index before the clock starts
    outcomes = _Outcomes()
    start = threading.Barrier(users)
    baseline = threading.active_count()

    def user(n: int) -> None:
        def on_wait(place: int) -> None:
            with outcomes.lock:
                outcomes.places.append(place)

        start.wait()
        try:
            stream = assistant.ask(QUESTION, on_wait=on_wait)
            if n % 5 == 0:
                next(iter(stream))
                stream.close()  # this user gives up after the first word
            else:
                assert stream.answer.cited == [1]
            with outcomes.lock:
                outcomes.answered += 1
        except BusyError as e:
            with outcomes.lock:
                outcomes.refused[str(e.code)] = outcomes.refused.get(str(e.code), 0) + 1
        except BaseException as e:
            with outcomes.lock:
                outcomes.failed.append(e)

    began = time.monotonic()
    threads = [_in_thread(functools.partial(user, n)) for n in range(users)]
    for thread in threads:
        thread.join(max(0.0, limit_s - (time.monotonic() - began)))
    elapsed = time.monotonic() - began

    assert not [t for t in threads if t.is_alive()], "some users hang"
    assert outcomes.failed == []
    assert outcomes.answered + sum(outcomes.refused.values()) == users
    assert set(outcomes.refused) <= {"busy"}
    # Nobody can be refused before one active and eight waiting requests fill the queue.
    assert outcomes.answered >= 1 + 8
    assert outcomes.refused, "a slow model with 25 simultaneous users must refuse some"
    assert max(outcomes.places) <= 8
    assert elapsed < limit_s
    assert (assistant.generation_queue.active, assistant.generation_queue.waiting) == (0, 0)
    assert not model.is_busy
    assert _eventually(lambda: threading.active_count() <= baseline)
    print(  # the numbers behind the report; shown with pytest -s
        f"\nload: {users} users, answered {outcomes.answered}, refused {outcomes.refused}, "
        f"highest place {max(outcomes.places)}, {elapsed:.2f} s"
    )
