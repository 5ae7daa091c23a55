"""Every change of the breaker is announced exactly once, whatever AWS refuses on the way.

The tick switches the mapping, then announces, then stores: a refused switch or a refused
``PutEvents`` leaves nothing stored, so the next tick decides again from the stored state and
announces then. Properties over generated sequences of ticks in which Lambda, EventBridge or
DynamoDB refuse, against the in-memory fakes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from videodb_retry.adapters.breaker_aws import StateConflict
from videodb_retry.rules.breaker import PAUSED, RESUMED, Bucket, Mode, State, Thresholds
from videodb_retry.steps import breaker_control
from videodb_retry.steps.breaker_control import Breaker

from tests.fakes import FakeAnnouncer, FakeBreakerStore, FakeSwitch

NOW = 1_800_000_000.0
TH = Thresholds(
    window_seconds=60, min_attempts=5, failure_ratio=0.8, probe_interval_seconds=60, max_concurrency=5
)


@pytest.fixture(autouse=True)
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    seen: list[tuple[str, float]] = []
    monkeypatch.setattr(breaker_control, "count", lambda name, value=1: seen.append((name, value)))
    return seen


def failing_buckets(now: float) -> list[Bucket]:
    start = int(now // TH.bucket_seconds) * TH.bucket_seconds
    return [Bucket(start, 10, 10)]


class RefusingStore(FakeBreakerStore):
    """The fake store whose next save can be refused (DynamoDB throttled, or a conflict)."""

    refuse_save = False

    def save(self, state: State) -> State:
        if self.refuse_save:
            raise StateConflict("refused")
        return super().save(state)


def test_a_refused_retry_paused_stores_nothing_and_the_next_tick_announces_it(counted):
    store = FakeBreakerStore(buckets=failing_buckets(NOW))
    switch, refusing = FakeSwitch(), FakeAnnouncer(refuse=True)
    with pytest.raises(RuntimeError, match="refused Retry Paused"):
        Breaker(TH, store, switch, refusing, lambda: True, lambda: NOW).tick()
    assert store.stored == [], "the open state was stored though Retry Paused was refused"
    assert (breaker_control.Metric.SWITCH_ERRORS, 1) in counted
    announcer = FakeAnnouncer()
    report = Breaker(TH, store, switch, announcer, lambda: True, lambda: NOW + 1).tick()
    assert [kind for kind, _ in announcer.events] == [PAUSED]
    assert report.mode is Mode.OPEN and store.state.mode is Mode.OPEN
    assert switch.applied[-1][0] is Mode.OPEN


def test_a_refused_retry_resumed_stores_nothing_and_the_next_tick_announces_it():
    opened = State(mode=Mode.OPEN, since=NOW - 120, last_probe_at=NOW - 120, version=4)
    store, switch = FakeBreakerStore(opened), FakeSwitch()
    with pytest.raises(RuntimeError, match="refused Retry Resumed"):
        Breaker(TH, store, switch, FakeAnnouncer(refuse=True), lambda: True, lambda: NOW).tick()
    assert store.stored == [] and store.state == opened
    announcer = FakeAnnouncer()
    report = Breaker(TH, store, switch, announcer, lambda: True, lambda: NOW + 1).tick()
    assert [kind for kind, _ in announcer.events] == [RESUMED]
    assert report.mode is Mode.CLOSED and store.state.mode is Mode.CLOSED


def test_a_refused_announcement_by_hand_stores_nothing():
    store = FakeBreakerStore()
    with pytest.raises(RuntimeError):
        Breaker(TH, store, FakeSwitch(), FakeAnnouncer(refuse=True), lambda: True, lambda: NOW).open_by_hand(
            "maintenance"
        )
    assert store.stored == []


@dataclass(frozen=True)
class Tick:
    """One tick and what AWS refuses in it."""

    failing: bool  # the window holds mostly failed retries
    answered: bool  # a probe, if one is due, is answered
    switch_refuses: bool
    announcer_refuses: bool
    store_refuses: bool
    minutes: int  # time since the previous tick


ticks = st.builds(
    Tick,
    failing=st.booleans(),
    answered=st.booleans(),
    switch_refuses=st.booleans(),
    announcer_refuses=st.booleans(),
    store_refuses=st.integers(0, 9).map(lambda n: n == 0),
    minutes=st.integers(1, 3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ticks, min_size=1, max_size=25))
def test_every_stored_change_is_announced_once_and_the_mapping_follows(sequence):
    store, switch = RefusingStore(), FakeSwitch()
    now = NOW
    announced: list[str] = []
    refused_store_after_announcing = 0
    for tick in sequence:
        now += 60 * tick.minutes
        store._buckets = failing_buckets(now) if tick.failing else []
        switch.refuse = tick.switch_refuses
        store.refuse_save = tick.store_refuses
        announcer = FakeAnnouncer(refuse=tick.announcer_refuses)
        before = store.state
        try:
            report = Breaker(TH, store, switch, announcer, lambda a=tick.answered: a, lambda n=now: n).tick()
        except Exception:
            # A failed tick stores nothing; only a refused store can follow an announcement.
            assert store.state == before
            if announcer.events:
                assert tick.store_refuses
                refused_store_after_announcing += 1
            announced += [kind for kind, _ in announcer.events]
            continue
        announced += [kind for kind, _ in announcer.events]
        # After a tick that went through, the mapping is as the stored state says.
        assert switch.applied[-1][0] is store.state.mode is report.mode
    # Each stored change of mode was announced, in order; only a store refused after the
    # event went out can add a repeat (the event is then announced again, never lost).
    modes = [State().mode] + [state.mode for state in store.stored]
    changes = [PAUSED if b is Mode.OPEN else RESUMED for a, b in itertools.pairwise(modes) if a != b]
    assert len(announced) - len(changes) <= refused_store_after_announcing
    deduplicated = [kind for i, kind in enumerate(announced) if i == 0 or kind != announced[i - 1]]
    assert deduplicated[: len(changes)] == changes
    if refused_store_after_announcing == 0:
        assert announced == changes
