"""The generation queue: a fair, bounded line in front of the chat model ("you are number 2").

An embedded model answers one question at a time and a model server only a few; without a bound,
every extra user would pile up waiting on a lock or a socket. :class:`GenerationQueue` admits up to
``max_active`` generations, lets up to ``max_waiting`` more wait in first-come order, and refuses the
rest at once with :class:`~rag.errors.BusyError`, so a user hears "busy" instead of waiting forever.

    ticket = queue.enter()                      # BusyError when the line is full
    with ticket:
        ticket.wait(timeout_s, on_wait=show)   # show(place): 1 = next; BusyError on timeout
        ...generate...                           # leaving the block frees the slot
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from rag.errors import BusyError

__all__ = ["GenerationQueue", "Ticket"]

WaitCallback = Callable[[int], None]

_WAITING, _ACTIVE, _RELEASED = "waiting", "active", "released"


class Ticket:
    """One request's place in a :class:`GenerationQueue`; get one from :meth:`GenerationQueue.enter`.

    A ticket is waiting, then active (allowed to generate), then released. Release it when done:
    :meth:`release`, or leave its ``with`` block. Releasing twice is harmless.
    """

    def __init__(self, queue: GenerationQueue) -> None:
        self._queue = queue
        self._state = _WAITING

    @property
    def active(self) -> bool:
        """Whether this ticket may generate now."""
        with self._queue._cond:
            return self._state == _ACTIVE

    @property
    def released(self) -> bool:
        """Whether this ticket has left the queue."""
        with self._queue._cond:
            return self._state == _RELEASED

    @property
    def place(self) -> int:
        """The live place in line: 1 = next to be admitted; 0 once active or released."""
        with self._queue._cond:
            return self._queue._place(self)

    def wait(self, timeout_s: float, on_wait: WaitCallback | None = None, *, every_s: float = 5.0) -> None:
        """Block until this ticket is active; returns at once if it already is.

        Args:
            timeout_s: Longest wait in seconds.
            on_wait: Called with the place in line (1 = next) when waiting starts, whenever the place
                changes and every ``every_s`` seconds meanwhile; from this thread, with no lock held.
                If it raises, the ticket leaves the line and the error propagates.
            every_s: Seconds between repeated calls of ``on_wait`` while the place stays the same.

        Raises:
            BusyError: still waiting after ``timeout_s`` (code ``busy_timeout``; the ticket has left
                the line), or the ticket was released meanwhile (code ``busy``).
        """
        cond = self._queue._cond
        deadline = time.monotonic() + timeout_s
        told_place, told_at = 0, 0.0
        try:
            while True:
                with cond:
                    while True:
                        if self._state == _ACTIVE:
                            return
                        if self._state == _RELEASED:
                            raise BusyError(
                                "the request left the queue before its turn",
                                code="busy", waiting=len(self._queue._line), limit=self._queue.max_waiting,
                            )
                        place = self._queue._place(self)
                        now = time.monotonic()
                        if now >= deadline:
                            raise BusyError(
                                f"still number {place} in the queue after {timeout_s:.0f} s; try again later",
                                code="busy_timeout", place=place, waited_s=round(timeout_s),
                            )
                        due = told_at + every_s
                        if on_wait is not None and (place != told_place or now >= due):
                            break
                        wake = deadline if on_wait is None else min(deadline, due)
                        cond.wait(wake - now)
                # The callback may be slow (a UI redraw): never call it with the queue's lock held.
                assert on_wait is not None
                on_wait(place)
                told_place, told_at = place, time.monotonic()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Leave the line or free the slot; the next ticket in line is admitted."""
        self._queue._release(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


class GenerationQueue:
    """A fair (first come, first served) bounded queue of generations. Thread-safe.

    Args:
        max_active: Generations allowed at the same time.
        max_waiting: Requests allowed to wait for a slot; one more is refused at once.
    """

    def __init__(self, max_active: int, max_waiting: int) -> None:
        if max_active < 1 or max_waiting < 0:
            raise ValueError("max_active must be at least 1 and max_waiting at least 0")
        self.max_active = max_active
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._active: set[Ticket] = set()
        self._line: deque[Ticket] = deque()

    @property
    def active(self) -> int:
        """Generations running now."""
        with self._cond:
            return len(self._active)

    @property
    def waiting(self) -> int:
        """Requests waiting in line now."""
        with self._cond:
            return len(self._line)

    def enter(self) -> Ticket:
        """Take a ticket: active at once when a slot is free and nobody waits, else in line.

        Raises:
            BusyError: ``max_waiting`` requests are already waiting (code ``busy``; params ``waiting``,
                ``limit``).
        """
        with self._cond:
            ticket = Ticket(self)
            if not self._line and len(self._active) < self.max_active:
                ticket._state = _ACTIVE
                self._active.add(ticket)
            elif len(self._line) >= self.max_waiting:
                raise BusyError(
                    f"too many questions at once: {len(self._line)} are already waiting; try again later",
                    code="busy", waiting=len(self._line), limit=self.max_waiting,
                )
            else:
                self._line.append(ticket)
            return ticket

    def _place(self, ticket: Ticket) -> int:
        return self._line.index(ticket) + 1 if ticket._state == _WAITING else 0

    def _release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket._state == _ACTIVE:
                self._active.discard(ticket)
            elif ticket._state == _WAITING:
                self._line.remove(ticket)
            else:
                return
            ticket._state = _RELEASED
            while self._line and len(self._active) < self.max_active:
                admitted = self._line.popleft()
                admitted._state = _ACTIVE
                self._active.add(admitted)
            # Everyone's place may have moved: wake all waiters (a handful) to re-read theirs.
            self._cond.notify_all()
