"""The circuit breaker's rules (layers/shared/videodb_retry/rules/breaker.py), over classes of inputs."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from videodb_retry.rules import breaker
from videodb_retry.rules.breaker import PAUSED, RESUMED, Bucket, Mode, State, Thresholds

thresholds_st = st.builds(
    Thresholds,
    window_seconds=st.integers(1, 3600),
    min_attempts=st.integers(1, 500),
    failure_ratio=st.floats(0.05, 1.0),
    probe_interval_seconds=st.integers(0, 3600),
    ramp_start=st.integers(2, 10),
    max_concurrency=st.integers(2, 1000),
)
NOW = 1_800_000_000.0
# The rules are cheap; 60 examples each keep the file to a few seconds on a shared machine.
few = settings(max_examples=60, deadline=None)


def window_of(attempts: int, failures: int, th: Thresholds, now: float = NOW) -> list[Bucket]:
    """``attempts`` / ``failures`` spread over the buckets of the window ending at ``now``."""
    starts = breaker.window_starts(now, th)
    buckets = []
    for i, start in enumerate(starts):
        a = attempts // len(starts) + (1 if i < attempts % len(starts) else 0)
        f = failures // len(starts) + (1 if i < failures % len(starts) else 0)
        buckets.append(Bucket(start, a, min(a, f)))
    return buckets


@few
@given(th=thresholds_st, attempts=st.integers(0, 5000), share=st.floats(0, 1))
def test_opens_exactly_when_enough_attempts_mostly_failed(th, attempts, share):
    failures = int(attempts * share)
    buckets = window_of(attempts, failures, th)
    counted, failed = breaker.totals(buckets, 0.0, NOW, th)
    assert (counted, failed) == (attempts, sum(b.failures for b in buckets))
    change = breaker.on_tick(State(concurrency=th.max_concurrency), buckets, NOW, th)
    should = counted >= th.min_attempts and failed >= th.failure_ratio * counted
    assert (change.state.mode is Mode.OPEN) == should
    assert (change.announce == PAUSED) == should
    if should:
        assert change.state.since == NOW and not change.state.manual
        assert f"{failed} of {counted}" in change.state.reason


@few
@given(th=thresholds_st, attempts=st.integers(1, 5000))
def test_failures_from_before_the_last_change_never_count(th, attempts):
    buckets = window_of(attempts, attempts, th)
    since = NOW + 0.5  # closed just after every bucket of the window began
    assert breaker.totals(buckets, since, NOW, th) == (0, 0)
    closed = State(mode=Mode.CLOSED, since=since, concurrency=th.max_concurrency)
    assert breaker.on_tick(closed, buckets, NOW, th).state.mode is Mode.CLOSED


@few
@given(th=thresholds_st, age=st.integers(1, 10_000))
def test_buckets_older_than_the_window_are_ignored(th, age):
    old = NOW - th.window_seconds - th.bucket_seconds - age
    bucket = Bucket(breaker.bucket_start(old, th), 10_000, 10_000)
    assert breaker.totals([bucket], 0.0, NOW, th) == (0, 0)


@few
@given(th=thresholds_st)
def test_the_window_is_covered_by_its_buckets(th):
    starts = breaker.window_starts(NOW, th)
    assert starts == sorted(starts) and starts[-1] == breaker.bucket_start(NOW, th)
    assert starts[-1] + th.bucket_seconds > NOW >= starts[-1]
    assert NOW - starts[0] >= th.window_seconds - th.bucket_seconds
    assert len(starts) <= 100  # one BatchGetItem call


@few
@given(th=thresholds_st, ticks=st.integers(1, 20))
def test_ramp_doubles_from_the_start_and_never_passes_the_maximum(th, ticks):
    state = breaker.close(State(mode=Mode.OPEN), NOW, "probe answered", th).state
    assert state.concurrency == min(th.ramp_start, th.max_concurrency)
    seen = [state.concurrency]
    for i in range(ticks):
        state = breaker.on_tick(state, [], NOW + i + 1, th).state
        seen.append(state.concurrency)
    assert all(b <= max(2 * a, th.max_concurrency) and b >= a for a, b in itertools.pairwise(seen))
    assert max(seen) <= th.max_concurrency
    if ticks >= 10:
        assert seen[-1] == th.max_concurrency


@few
@given(th=thresholds_st, elapsed=st.floats(0, 10_000))
def test_probes_are_bounded_by_the_interval(th, elapsed):
    opened = breaker.open_(State(), NOW, "failing", manual=False).state
    due = breaker.probe_due(opened, NOW + elapsed, th)
    assert due == (elapsed >= th.probe_interval_seconds)
    failed = breaker.after_probe(opened, False, NOW + elapsed, th)
    assert failed.state.mode is Mode.OPEN and failed.announce is None
    assert failed.state.probes == 1 and failed.state.last_probe_at == NOW + elapsed
    assert breaker.probe_due(failed.state, NOW + elapsed, th) == (th.probe_interval_seconds == 0)


@few
@given(th=thresholds_st)
def test_an_answered_probe_closes_and_announces(th):
    opened = breaker.open_(State(), NOW, "failing", manual=False).state
    change = breaker.after_probe(opened, True, NOW + 60, th)
    assert change.state.mode is Mode.CLOSED and change.announce == RESUMED
    assert change.state.since == NOW + 60


@few
@given(th=thresholds_st, elapsed=st.floats(0, 1e6))
def test_opened_by_hand_never_probes_and_stays_open(th, elapsed):
    state = breaker.open_(State(), NOW, "opened by hand: maintenance", manual=True).state
    assert not breaker.probe_due(state, NOW + elapsed, th)
    assert breaker.on_tick(state, window_of(0, 0, th), NOW + elapsed, th).state == state
    closed = breaker.close(state, NOW + elapsed, "closed by hand", th)
    assert closed.state.mode is Mode.CLOSED and not closed.state.manual and closed.announce == RESUMED


def test_opening_an_open_breaker_by_hand_keeps_it_open_and_makes_it_manual():
    auto = breaker.open_(State(), NOW, "failing", manual=False).state
    change = breaker.open_(auto, NOW + 5, "opened by hand: x", manual=True)
    assert change.announce is None and change.state.manual and change.state.since == NOW


def test_flapping_api_reopens_during_the_ramp():
    th = Thresholds(window_seconds=60, min_attempts=5, failure_ratio=0.8, max_concurrency=8)
    state = breaker.close(breaker.open_(State(), NOW, "x", False).state, NOW + 60, "probe", th).state
    later = NOW + 60 + th.bucket_seconds
    buckets = [Bucket(breaker.bucket_start(later, th), 6, 6)]
    change = breaker.on_tick(state, buckets, later, th)
    assert change.state.mode is Mode.OPEN and change.announce == PAUSED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_seconds": 0},
        {"min_attempts": 0},
        {"failure_ratio": 0},
        {"failure_ratio": 1.5},
        {"ramp_start": 1},
        {"max_concurrency": 1001},
        {"probe_interval_seconds": -1},
    ],
)
def test_thresholds_out_of_range_are_refused(kwargs):
    with pytest.raises(ValueError):
        Thresholds(**kwargs)


def test_a_lowered_maximum_applies_at_once():
    th = Thresholds(max_concurrency=4)
    state = replace(State(), concurrency=50)
    assert breaker.on_tick(state, [], NOW, th).state.concurrency == 4
