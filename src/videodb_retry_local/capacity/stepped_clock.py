"""Virtual time for many concurrent executions: it stands still while anything works and jumps
to the next wake-up once everything waits.

``bench``'s ``VirtualClock`` skips each wait as it comes, which is right for one execution at a
time; with hundreds running at once, every execution's wait would push everyone's clock. Here a
waiting thread sleeps until the virtual time reaches its wake-up, and the driver (one thread:
the queue consumer) moves the time on only when no registered thread is working: the way a
discrete-event simulation advances, with the emulated stack's threads as its processes.

A thread counts as working from :meth:`SteppedClock.started` (called by whoever starts it, so
no gap exists between a start and the thread running) to :meth:`SteppedClock.finished`, except
while it is inside :meth:`SteppedClock.sleep`.
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
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, woken = heapq.heappop(self._sleepers)
                self._working += 1  # before it runs: wait_idle must not see a gap
                woken.set()

    def release_all(self) -> None:
        """Wake every sleeper at once (the run is over or gave up: no thread may hang)."""
        with self._changed:
            while self._sleepers:
                _, _, woken = heapq.heappop(self._sleepers)
                self._working += 1
                woken.set()

    @property
    def sleeping(self) -> int:
        """How many workers sleep now."""
        with self._changed:
            return len(self._sleepers)
