"""The circuit breaker's rules: when retries pause, when a probe is due, how they resume.

Pure decisions over plain values (no AWS, no HTTP, no clock of its own), so every rule is
tested on its own and the adapters (``breaker_aws``) only carry them out:

- **closed**: the retry queue is consumed. When, over the last ``window_seconds`` (counted
  from when the breaker last closed), at least ``min_attempts`` records were tried and at
  least ``failure_ratio`` of them failed transiently, it **opens**.
- **open**: the retry queue's event source mapping is disabled, so messages wait without
  their receive counts growing. At most one probe per ``probe_interval_seconds``; the first
  probe VideoDB answers **closes** it again. Opened by hand, it probes not and stays open
  until closed by hand.
- **ramp**: on closing, the mapping's MaximumConcurrency starts at ``ramp_start`` and doubles
  on each tick up to ``max_concurrency``, so thousands of waiting messages do not hit a
  recovering API at once. Failing again during the ramp opens it again (a flapping API).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

# SQS event source mappings accept MaximumConcurrency 2..1000 (Lambda's documented range).
MIN_MAPPING_CONCURRENCY = 2
MAX_MAPPING_CONCURRENCY = 1000


class Mode(enum.StrEnum):
    """Whether the retry queue is being consumed."""

    CLOSED = "closed"
    OPEN = "open"


@dataclass(frozen=True)
class Thresholds:
    """The breaker's parameters (template: Breaker* and RetryMaxConcurrency)."""

    window_seconds: int = 300
    min_attempts: int = 20
    failure_ratio: float = 0.8
    probe_interval_seconds: int = 60
    ramp_start: int = MIN_MAPPING_CONCURRENCY
    max_concurrency: int = 5

    def __post_init__(self) -> None:
        if self.window_seconds < 1 or self.min_attempts < 1 or self.probe_interval_seconds < 0:
            raise ValueError(
                "window_seconds and min_attempts must be positive, the probe interval not negative"
            )
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        for name in ("ramp_start", "max_concurrency"):
            if not MIN_MAPPING_CONCURRENCY <= getattr(self, name) <= MAX_MAPPING_CONCURRENCY:
                raise ValueError(f"{name} must be {MIN_MAPPING_CONCURRENCY}..{MAX_MAPPING_CONCURRENCY}")

    @property
    def bucket_seconds(self) -> int:
        """Width of one counting bucket: the window is read as about six of them."""
        return max(1, self.window_seconds // 6)


@dataclass(frozen=True)
class Bucket:
    """Records the retry function tried in one bucket of time, and how many failed transiently."""

    start: int
    attempts: int
    failures: int


@dataclass(frozen=True)
class State:
    """The breaker as stored (one item); ``since`` is when the mode last changed."""

    mode: Mode = Mode.CLOSED
    since: float = 0.0
    reason: str = ""
    manual: bool = False
    concurrency: int = MIN_MAPPING_CONCURRENCY
    last_probe_at: float = 0.0
    probes: int = 0
    version: int = 0


class StateConflict(Exception):
    """Someone else changed the breaker's state since it was read (try again on the next tick)."""


@dataclass(frozen=True)
class Change:
    """What a decision changed: the new state and the event to announce (if any)."""

    state: State
    announce: str | None = None  # "Retry Paused" / "Retry Resumed"


PAUSED = "Retry Paused"
RESUMED = "Retry Resumed"


@dataclass(frozen=True)
class Announcement:
    """A Retry Paused / Retry Resumed event: the breaker as it stands after the change."""

    detail_type: str
    mode: Mode
    reason: str
    manual: bool
    since: float
    at: float
    concurrency: int  # the mapping's MaximumConcurrency while closed; 0 while open (none)

    @classmethod
    def of(cls, detail_type: str, state: State, now: float) -> Announcement:
        """The event announcing ``state``, reached at ``now``."""
        return cls(
            detail_type=detail_type,
            mode=state.mode,
            reason=state.reason,
            manual=state.manual,
            since=state.since,
            at=now,
            concurrency=state.concurrency if state.mode is Mode.CLOSED else 0,
        )

    def detail(self) -> dict[str, Any]:
        """The event's detail, as EventBridge carries it."""
        return {
            "state": self.mode.value,
            "reason": self.reason,
            "manual": self.manual,
            "since": self.since,
            "at": self.at,
            "concurrency": self.concurrency,
        }


def bucket_start(now: float, thresholds: Thresholds) -> int:
    """The start of the bucket ``now`` falls in (what the retry function adds its counts to)."""
    width = thresholds.bucket_seconds
    return int(now // width) * width


def window_starts(now: float, thresholds: Thresholds) -> list[int]:
    """Starts of the buckets that make up the window ending at ``now`` (newest last)."""
    width = thresholds.bucket_seconds
    newest = bucket_start(now, thresholds)
    count = -(-thresholds.window_seconds // width)  # ceil
    return [newest - width * i for i in reversed(range(count))]


def totals(buckets: Iterable[Bucket], since: float, now: float, thresholds: Thresholds) -> tuple[int, int]:
    """(attempts, failures) in the window, counting only buckets begun at or after ``since``:
    failures from before the breaker last closed must not open it again."""
    oldest = now - thresholds.window_seconds
    attempts = failures = 0
    for bucket in buckets:
        # A bucket counts whole, when it began after the last change and ends inside the window.
        if bucket.start >= since and bucket.start + thresholds.bucket_seconds > oldest:
            attempts += max(0, bucket.attempts)
            failures += max(0, min(bucket.failures, bucket.attempts))
    return attempts, failures


def trip_reason(attempts: int, failures: int, thresholds: Thresholds) -> str | None:
    """Why the breaker should open, or None: enough attempts, and most of them failing."""
    if attempts < thresholds.min_attempts or failures < thresholds.failure_ratio * attempts:
        return None
    return (
        f"{failures} of {attempts} retries failed transiently in the last "
        f"{thresholds.window_seconds} s (threshold {thresholds.failure_ratio:.0%} of at least "
        f"{thresholds.min_attempts})"
    )


def as_deployed(state: State, thresholds: Thresholds) -> State:
    """A breaker never stored (``version`` 0) is closed with the mapping as the template
    deployed it: ``MaximumConcurrency`` is ``RetryMaxConcurrency``, so its first tick leaves it
    there (a ramp from the minimum would lower it first) and its status says so."""
    if state.version == 0:
        return replace(state, concurrency=thresholds.max_concurrency)
    return state


def on_tick(state: State, buckets: Iterable[Bucket], now: float, thresholds: Thresholds) -> Change:
    """The scheduled decision while closed: open on failures, else ramp up one step."""
    if state.mode is Mode.OPEN:
        return Change(state)
    attempts, failures = totals(buckets, state.since, now, thresholds)
    reason = trip_reason(attempts, failures, thresholds)
    if reason is not None:
        return open_(state, now, reason, manual=False)
    target = min(thresholds.max_concurrency, max(state.concurrency, thresholds.ramp_start) * 2)
    if state.concurrency >= thresholds.max_concurrency:
        target = thresholds.max_concurrency  # a lowered RetryMaxConcurrency applies at once
    return Change(replace(state, concurrency=target)) if target != state.concurrency else Change(state)


def probe_due(state: State, now: float, thresholds: Thresholds) -> bool:
    """True when the breaker is open by itself and the last probe is old enough."""
    return (
        state.mode is Mode.OPEN
        and not state.manual
        and now - state.last_probe_at >= thresholds.probe_interval_seconds
    )


def after_probe(state: State, answered: bool, now: float, thresholds: Thresholds) -> Change:
    """The probe's verdict: VideoDB answered -> close (ramp from the start); else stay open."""
    probed = replace(state, last_probe_at=now, probes=state.probes + 1)
    if not answered:
        return Change(probed)
    return close(probed, now, "VideoDB answered the probe", thresholds)


def open_(state: State, now: float, reason: str, manual: bool) -> Change:
    """Open (or, when already open, mark it manual): retries pause."""
    if state.mode is Mode.OPEN:
        return Change(
            replace(state, manual=state.manual or manual, reason=reason if manual else state.reason)
        )
    # last_probe_at = now: the first probe comes one interval after opening, not at once.
    opened = replace(
        state, mode=Mode.OPEN, since=now, reason=reason, manual=manual, last_probe_at=now, probes=0
    )
    return Change(opened, PAUSED)


def close(state: State, now: float, reason: str, thresholds: Thresholds) -> Change:
    """Close: retries resume at ``ramp_start`` concurrency (no event if already closed)."""
    if state.mode is Mode.CLOSED:
        return Change(replace(state, manual=False))
    start = min(thresholds.ramp_start, thresholds.max_concurrency)
    closed = replace(state, mode=Mode.CLOSED, since=now, reason=reason, manual=False, concurrency=start)
    return Change(closed, RESUMED)
