"""The breaker at work (breaker_control.py) with fakes for its store, switch and announcer."""

from __future__ import annotations

import pytest
from videodb_retry.adapters.breaker_aws import StateConflict, SwitchRefused
from videodb_retry.rules.breaker import Bucket, Mode, State, Thresholds
from videodb_retry.steps import breaker_control
from videodb_retry.steps.breaker_control import Breaker, OutcomeCounter, thresholds_from_env

from tests.fakes import FakeAnnouncer, FakeSwitch
from tests.fakes import FakeBreakerStore as FakeStore

NOW = 1_800_000_000.0
TH = Thresholds(
    window_seconds=60, min_attempts=5, failure_ratio=0.8, probe_interval_seconds=60, max_concurrency=5
)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    seen: list[tuple[str, float]] = []
    monkeypatch.setattr(breaker_control, "count", lambda name, value=1: seen.append((name, value)))
    return seen


def make(store: FakeStore, switch: FakeSwitch | None = None, answered: bool = True, now: float = NOW):
    probes: list[float] = []

    def probe() -> bool:
        probes.append(now)
        return answered

    announcer = FakeAnnouncer()
    return Breaker(TH, store, switch or FakeSwitch(), announcer, probe, lambda: now), announcer, probes


def failing_window() -> list[Bucket]:
    start = int(NOW // TH.bucket_seconds) * TH.bucket_seconds
    return [Bucket(start - TH.bucket_seconds, 10, 10)]


def test_tick_opens_switches_stores_and_announces(counted):
    store, switch = FakeStore(buckets=failing_window()), FakeSwitch()
    breaker, announcer, probes = make(store, switch)
    report = breaker.tick()
    assert report.mode == "open" and report.announced == "Retry Paused" and not probes
    # A breaker never stored carries the deployed concurrency; disabled, the mapping ignores it.
    assert switch.applied == [(Mode.OPEN, TH.max_concurrency)]
    assert store.state.mode is Mode.OPEN and store.state.version == 1
    ((kind, detail),) = announcer.events
    assert kind == "Retry Paused" and detail["state"] == "open" and "10 of 10" in detail["reason"]
    assert (breaker_control.Metric.OPENED, 1) in counted and (breaker_control.Metric.OPEN, 1) in counted


def test_a_breaker_never_stored_is_at_the_deployed_concurrency_and_its_first_tick_keeps_it(counted):
    # The template deploys the mapping with MaximumConcurrency = RetryMaxConcurrency; a first
    # tick that ramped from the minimum would lower it (2 -> 4) before raising it again.
    store, switch = FakeStore(), FakeSwitch()
    breaker, announcer, _ = make(store, switch)
    assert breaker.status().concurrency == TH.max_concurrency
    report = breaker.tick()
    assert report.mode == "closed" and report.concurrency == TH.max_concurrency
    assert switch.applied == [(Mode.CLOSED, TH.max_concurrency)] and announcer.events == []


def test_a_refused_switch_stores_nothing_announces_nothing_and_is_counted(counted):
    store = FakeStore(buckets=failing_window())
    breaker, announcer, _ = make(store, FakeSwitch(refuse=True))
    with pytest.raises(SwitchRefused):
        breaker.tick()
    assert store.stored == [] and announcer.events == []
    assert (breaker_control.Metric.SWITCH_ERRORS, 1) in counted


def test_no_probe_before_the_interval_and_one_after(counted):
    opened = State(mode=Mode.OPEN, since=NOW - 30, last_probe_at=NOW - 30, version=3)
    breaker, _, probes = make(FakeStore(opened), answered=False)
    assert not breaker.tick().probed and probes == []
    later, _, probes = make(FakeStore(opened), answered=False, now=NOW + 31)
    report = later.tick()
    assert report.probed and report.mode == "open" and probes == [NOW + 31]


def test_an_answered_probe_resumes_at_the_ramp_start(counted):
    opened = State(mode=Mode.OPEN, since=NOW - 120, last_probe_at=NOW - 120, version=3)
    store, switch = FakeStore(opened), FakeSwitch()
    breaker, announcer, _ = make(store, switch)
    report = breaker.tick()
    assert report.mode == "closed" and report.announced == "Retry Resumed"
    assert switch.applied == [(Mode.CLOSED, 2)] and [k for k, _ in announcer.events] == ["Retry Resumed"]


def test_a_concurrent_change_fails_the_tick_before_it_announces(counted):
    # An operator stores a change between the tick's read and its announcement.
    store = FakeStore(buckets=failing_window())
    breaker, announcer, _ = make(store)
    real_load = store.load
    loads = iter([State(), State(mode=Mode.OPEN, manual=True, version=1)])
    store.load = lambda: next(loads, None) or real_load()  # type: ignore[method-assign]
    with pytest.raises(StateConflict):
        breaker.tick()
    assert announcer.events == [] and store.stored == []


def test_a_refused_store_after_the_event_fails_the_tick(counted):
    store = FakeStore(buckets=failing_window())
    breaker, announcer, _ = make(store)
    store.save = lambda state: (_ for _ in ()).throw(StateConflict("changed"))  # type: ignore[method-assign]
    with pytest.raises(StateConflict):
        breaker.tick()
    # Announced, not stored: the next tick decides again (a repeat at worst, never a loss).
    assert [kind for kind, _ in announcer.events] == ["Retry Paused"]


def test_counting_adds_to_the_current_bucket_and_a_refusal_never_fails_the_batch(counted):
    store = FakeStore()
    counter = OutcomeCounter(TH, store, lambda: NOW + 1)
    counter.record(10, 3)
    counter.record(0, 0)  # an empty batch writes nothing
    assert store.added == [(int((NOW + 1) // TH.bucket_seconds) * TH.bucket_seconds, 10, 3)]
    store.refuse_add = True
    counter.record(10, 10)
    assert (breaker_control.Metric.RECORD_ERRORS, 1) in counted


def test_thresholds_come_from_the_template_environment():
    th = thresholds_from_env(
        {
            "BREAKER_WINDOW_SECONDS": "120",
            "BREAKER_MIN_ATTEMPTS": "7",
            "BREAKER_FAILURE_RATIO": "0.5",
            "BREAKER_PROBE_INTERVAL_SECONDS": "0",
            "RETRY_MAX_CONCURRENCY": "50",
        }
    )
    assert th == Thresholds(120, 7, 0.5, 0, 2, 50)
    assert thresholds_from_env({}) == Thresholds()
