"""Virtual time for many concurrent executions: it stands still while anything works and jumps
to the next wake-up once everything waits.

``bench``'s ``VirtualClock`` skips each wait as it comes, which is right for one execution at a
time; with hundreds running at once, every execution's wait would push everyone's clock. Here a
waiting thread sleeps until the virtual time reaches its wake-up, and the driver (one thread:
the queue consumer) moves the time on only when no registered thread is working: the way a
discrete-event simulation advances, with the emulated stack's threads as its processes.

A thread counts as working from :meth:`SteppedClock.started` (called by whoever starts it, so
no gap exists between a start and the thread running) to :meth:`SteppedClock.finished`, except
while it is inside :meth:`SteppedClock.sleep` (until a virtual time) or
:meth:`SteppedClock.wait_for_poke` (until the driver pokes it: the queue consumer, when a
message is due).
"""

from __future__ import annotations

import heapq
import itertools
import threading


class SteppedClock:
    """A virtual clock advanced by its driver; ``clock()`` reads the virtual time in seconds."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._working = 0  # registered threads not inside sleep()
        self._sleepers: list[tuple[float, int, threading.Event]] = []  # heap of wake-ups
        self._order = itertools.count()  # ties wake in the order they slept
        self._idlers: list[threading.Event] = []  # wait for a poke, not for a time
        self._changed = threading.Condition()

    def __call__(self) -> float:
        with self._changed:
            return self._now

    def started(self) -> None:
        """A worker thread is about to run (counted as working until :meth:`finished`)."""
        with self._changed:
            self._working += 1

    def finished(self) -> None:
        """A worker thread ended."""
        with self._changed:
            self._working -= 1
            self._changed.notify_all()

    def sleep(self, seconds: float) -> None:
        """Block the calling worker until the virtual time has moved ``seconds`` on."""
        if seconds <= 0:
            return
        woken = threading.Event()
        with self._changed:
            heapq.heappush(self._sleepers, (self._now + float(seconds), next(self._order), woken))
            self._working -= 1
            self._changed.notify_all()
        # The driver counts the sleeper as working again before it sets the event (advance_to).
        woken.wait()

    def wait_for_poke(self) -> None:
        """Block the calling worker until :meth:`poke` (a consumer with nothing to receive)."""
        woken = threading.Event()
        with self._changed:
            self._idlers.append(woken)
            self._working -= 1
            self._changed.notify_all()
        woken.wait()

    def poke(self) -> bool:
        """Wake every worker waiting in :meth:`wait_for_poke`, at the present virtual time;
        False when none was waiting."""
        with self._changed:
            waiting = bool(self._idlers)
            self._wake(self._idlers)
            self._idlers = []
            return waiting

    def wait_idle(self, timeout: float) -> bool:
        """Wait (real time) until no worker is working; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._working <= 0, timeout)

    def next_wake(self) -> float | None:
        """The earliest virtual time a sleeper waits for, or None when none sleeps."""
        with self._changed:
            return self._sleepers[0][0] if self._sleepers else None

    def advance_to(self, when: float) -> None:
        """Move the virtual time to ``when`` (never back) and wake every sleeper due by then."""
        with self._changed:
            self._now = max(self._now, when)
            due = []
            while self._sleepers and self._sleepers[0][0] <= self._now:
                due.append(heapq.heappop(self._sleepers)[2])
            self._wake(due)

    def release_all(self) -> None:
        """Wake every waiting worker at once (the run is over or gave up: none may hang)."""
        with self._changed:
            self._wake([woken for _, _, woken in self._sleepers] + self._idlers)
            self._sleepers, self._idlers = [], []

    def _wake(self, events: list[threading.Event]) -> None:
        # Counted as working before they run (under the lock): wait_idle must not see a gap.
        self._working += len(events)
        for woken in events:
            woken.set()

    @property
    def sleeping(self) -> int:
        """How many workers sleep until a time now."""
        with self._changed:
            return len(self._sleepers)
