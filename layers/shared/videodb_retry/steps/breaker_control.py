"""The circuit breaker at work: the breaker function's tick and manual switch, and the retry
function's counting. Typed against small Protocols; ``breaker_aws`` holds the AWS adapters,
``breaker`` the rules."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from videodb_retry.errors import RequestDeferred, TransientError
from videodb_retry.observability import count, logger
from videodb_retry.ports import Announcer, BreakerStore, BreakerSwitch
from videodb_retry.rules import breaker
from videodb_retry.rules.breaker import Announcement, Change, Mode, State, StateConflict, Thresholds


class Metric:
    """Metric names of the breaker (namespace as the other metrics)."""

    OPEN = "BreakerOpen"  # 1 while open, 0 while closed: one value per tick (alarm, dashboard)
    OPENED = "BreakerOpened"
    CLOSED = "BreakerClosed"
    PROBES = "BreakerProbes"
    SWITCH_ERRORS = "BreakerSwitchErrors"  # the mapping switch or the announcement refused
    RECORD_ERRORS = "BreakerRecordErrors"


# One cheap call to VideoDB: True when it answered (any answer but a transient failure).
Probe = Callable[[], bool]


class DownloadLister(Protocol):
    """The one VideoDB call the probe makes (``VideoDB.list_downloads``)."""

    def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, Any]]: ...


def probe_answered(videodb: DownloadLister) -> bool:
    """One cheap, read-only call (the first download of the list): did VideoDB answer?"""
    try:
        videodb.list_downloads(page_index=0, count=1)
    except RequestDeferred:
        # Not VideoDB's answer: our own budget had no token; the next tick probes again.
        logger.info("probe: deferred by the request budget")
        return False
    except TransientError as exc:
        logger.info("probe: VideoDB still failing", extra={"error": f"{type(exc).__name__}: {exc}"})
        return False
    except Exception as exc:  # a permanent refusal (e.g. 403) is still an answer
        logger.info("probe: VideoDB answered with an error", extra={"error": type(exc).__name__})
    return True


def thresholds_from_env(env: Mapping[str, str] | None = None) -> Thresholds:
    """The breaker's thresholds from the environment the template gives the functions."""
    env = os.environ if env is None else env
    d = Thresholds()
    return Thresholds(
        window_seconds=int(env.get("BREAKER_WINDOW_SECONDS") or d.window_seconds),
        min_attempts=int(env.get("BREAKER_MIN_ATTEMPTS") or d.min_attempts),
        failure_ratio=float(env.get("BREAKER_FAILURE_RATIO") or d.failure_ratio),
        probe_interval_seconds=int(env.get("BREAKER_PROBE_INTERVAL_SECONDS") or d.probe_interval_seconds),
        max_concurrency=int(env.get("RETRY_MAX_CONCURRENCY") or d.max_concurrency),
    )


def enabled_from_env(env: Mapping[str, str] | None = None) -> bool:
    """True unless BREAKER_ENABLED is "false" (the template's BreakerEnabled)."""
    env = os.environ if env is None else env
    return (env.get("BREAKER_ENABLED") or "true").lower() != "false"


@dataclass(frozen=True)
class Report:
    """What one tick or manual switch did (``to_dict``: what the function returns)."""

    mode: Mode
    reason: str
    manual: bool
    since: float
    concurrency: int
    probes: int
    probed: bool = False
    announced: str | None = None
    mapping_changed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the breaker function returns and ``videodb-retry breaker`` prints."""
        return {**asdict(self), "mode": self.mode.value}


class Breaker:
    """Reads the counts, applies the rules, switches the mapping, stores and announces."""

    def __init__(
        self,
        thresholds: Thresholds,
        store: BreakerStore,
        switch: BreakerSwitch,
        announcer: Announcer,
        probe: Probe,
        clock: Callable[[], float],
    ) -> None:
        self._thresholds = thresholds
        self._store = store
        self._switch = switch
        self._announcer = announcer
        self._probe = probe
        self._clock = clock

    def tick(self) -> Report:
        """The scheduled run: open on failures, probe while open, ramp up while closed."""
        now, state = self._clock(), self._load()
        probed = False
        if state.mode is Mode.CLOSED:
            starts = breaker.window_starts(now, self._thresholds)
            change = breaker.on_tick(state, self._store.buckets(starts), now, self._thresholds)
        elif breaker.probe_due(state, now, self._thresholds):
            probed = True
            count(Metric.PROBES)
            change = breaker.after_probe(state, self._probe(), now, self._thresholds)
        else:
            change = Change(state)
        return self._carry_out(state, change, now, probed)

    def open_by_hand(self, reason: str) -> Report:
        """An operator pauses retries: open, and stay open (no probes) until closed by hand."""
        now = self._clock()
        state = self._load()
        change = breaker.open_(state, now, f"opened by hand: {reason}", manual=True)
        return self._carry_out(state, change, now, probed=False)

    def close_by_hand(self, reason: str) -> Report:
        """An operator resumes retries: close at once, ramping up from the start."""
        now = self._clock()
        state = self._load()
        change = breaker.close(state, now, f"closed by hand: {reason}", self._thresholds)
        return self._carry_out(state, change, now, probed=False)

    def status(self) -> Report:
        """The stored state, unchanged."""
        state = self._load()
        return _report(state, probed=False, announced=None, changed=False)

    def _load(self) -> State:
        return breaker.as_deployed(self._store.load(), self._thresholds)

    def _carry_out(self, before: State, change: Change, now: float, probed: bool) -> Report:
        """Switch the mapping, announce, then store: the stored state is the commit.

        - The switch first: it is idempotent (``apply`` compares the mapping with the decision),
          and what fails most (Lambda refusing, a missing grant) fails before anything is said.
        - The announcement before the store: a refused ``PutEvents`` leaves nothing stored, so
          the next tick decides again from the stored state and announces then (never lost).
          The stored version is read again just before: a change someone else stored since this
          tick read the state (an operator's switch) fails the tick before it says anything.
          The mapping is left as switched, not switched back: the next tick's switch makes it
          match whatever that tick decides (a no-op when it decides the same), so a reverting
          call that could itself fail, and a disable/enable churn, are avoided.
        - The store last: only a change that was announced is stored, so the next tick never
          finds a change it did not announce. Were the store itself refused after the event
          went out (a write landing between that read and this one, DynamoDB throttled past its
          retries), the next tick may announce the change again: a repeat, never a loss.
        """
        state = change.state
        try:
            changed = self._switch.apply(state.mode, state.concurrency)
        except Exception as exc:
            self._refused("could not switch the event source mapping", exc)
            raise
        if change.announce:
            if self._store.load().version != before.version:
                # An operator (or another tick) stored a change since this tick read the state:
                # its own announcement stands; this one is not made (the next tick decides again).
                raise StateConflict("the breaker's state changed meanwhile; nothing announced")
            announcement = Announcement.of(change.announce, state, now)
            try:
                self._announcer.announce(announcement.detail_type, announcement.detail())
            except Exception as exc:
                self._refused(f"could not announce {change.announce}; nothing stored", exc)
                raise
        if state != before:
            state = self._store.save(state)
        if change.announce:
            count(Metric.OPENED if state.mode is Mode.OPEN else Metric.CLOSED)
            logger.warning("circuit breaker " + state.mode.value, extra={"reason": state.reason})
        count(Metric.OPEN, 1 if state.mode is Mode.OPEN else 0)
        return _report(state, probed, change.announce, changed)

    @staticmethod
    def _refused(what: str, exc: Exception) -> None:
        # Loud, never silent: logged with AWS's reason and counted (the Errors alarm sees the
        # failed tick too); the caller re-raises so the tick fails.
        count(Metric.SWITCH_ERRORS)
        logger.error(what, extra={"error": f"{type(exc).__name__}: {exc}"})


class OutcomeCounter:
    """The retry function's part: after each batch, add its counts to the current bucket."""

    def __init__(self, thresholds: Thresholds, store: BreakerStore, clock: Callable[[], float]) -> None:
        self._thresholds = thresholds
        self._store = store
        self._clock = clock

    def record(self, attempts: int, failures: int) -> None:
        """Count a batch. A refused write is logged and counted, never fails the batch: the
        records were handled, and a missing count only delays the breaker."""
        if attempts <= 0:
            return
        try:
            self._store.add(breaker.bucket_start(self._clock(), self._thresholds), attempts, failures)
        except Exception as exc:
            count(Metric.RECORD_ERRORS)
            logger.error("could not count the batch for the circuit breaker", extra={"error": str(exc)})


def _report(state: State, probed: bool, announced: str | None, changed: bool) -> Report:
    return Report(
        mode=state.mode,
        reason=state.reason,
        manual=state.manual,
        since=state.since,
        concurrency=state.concurrency,
        probes=state.probes,
        probed=probed,
        announced=announced,
        mapping_changed=changed,
    )
