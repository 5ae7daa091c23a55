"""The calibration's virtual time (capacity.stepped_clock) and its result type (capacity.counts)."""

from __future__ import annotations

import threading

from videodb_retry_local.load.capacity.counts import Counts
from videodb_retry_local.load.capacity.stepped_clock import SteppedClock

BOUND_S = 10.0  # real-time bound of every wait in these tests (never reached when they pass)


def _worker(
    clock: SteppedClock, name: str, waits: list[float], seen: list[tuple[str, float]]
) -> threading.Thread:
    def run() -> None:
        try:
            for seconds in waits:
                clock.sleep(seconds)
                seen.append((name, clock()))
        finally:
            clock.finished()

    clock.started()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _drive(clock: SteppedClock) -> None:
    while clock.wait_idle(BOUND_S) and (wake := clock.next_wake()) is not None:
        clock.advance_to(wake)


def test_concurrent_waits_overlap_and_wake_in_time_order() -> None:
    clock = SteppedClock(100.0)
    seen: list[tuple[str, float]] = []
    threads = [_worker(clock, "a", [5, 5], seen), _worker(clock, "b", [3, 1, 10], seen)]
    _drive(clock)
    for thread in threads:
        thread.join(BOUND_S)
    # Each worker's waits add up on its own: b's 3 s do not delay a's 5 s.
    assert seen == [("b", 103.0), ("b", 104.0), ("a", 105.0), ("a", 110.0), ("b", 114.0)]
    assert clock() == 114.0


def test_time_stands_still_while_a_worker_works() -> None:
    clock = SteppedClock(0.0)
    clock.started()
    assert not clock.wait_idle(0.01)  # a working thread keeps the driver from moving time on
    clock.finished()
    assert clock.wait_idle(BOUND_S)
    assert clock.next_wake() is None and clock() == 0.0


def test_a_poke_wakes_the_idle_consumer_without_moving_time() -> None:
    clock = SteppedClock(7.0)
    woke_at: list[float] = []

    def consumer() -> None:
        clock.wait_for_poke()
        woke_at.append(clock())
        clock.finished()

    clock.started()
    thread = threading.Thread(target=consumer, daemon=True)
    thread.start()
    assert clock.wait_idle(BOUND_S)
    clock.poke()
    thread.join(BOUND_S)
    assert woke_at == [7.0]
    assert clock.wait_idle(BOUND_S)


def test_counts_differences_name_each_differing_field() -> None:
    one = Counts(10, 20, 5, 40, {"Download Retry Succeeded": 5}, {"poison": 1}, 100.0)
    same = Counts(
        10, 20, 5, 40, {"Download Retry Succeeded": 5, "Download Retry Failed": 0}, {"poison": 1}, 100.0
    )
    other = Counts(11, 20, 5, 41, {"Download Retry Succeeded": 4}, {}, 90.0)
    assert one.differences(same) == []  # a zero count is no count
    assert [line.split(":")[0] for line in one.differences(other)] == [
        "posts",
        "transitions",
        "outcome_events",
        "dead_letters",
        "drain_seconds",
    ]
