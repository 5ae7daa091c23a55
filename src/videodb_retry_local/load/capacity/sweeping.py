"""The failure sweeper in the model: its schedule, its claims and its events, around the
layer's own ``sweeper.Sweeper`` (paging ``GET /download`` through the request budget).

What ``sweeper_aws`` does, in memory: a claim is taken once (pending, then published; a stale
pending claim is taken over), and each "download failed" event reaches the retry queue through
the ``DownloadFailedRule`` as the whole EventBridge event (the rule has no input transformer).
The sweeper runs on ``rate(SweepRateMinutes minutes)``; a throttled run is dropped (the next
one lists everything again). Its ``now`` is the wall clock at the run's start plus the virtual
time, so VideoDB's ``created_at`` (the sandbox's wall clock) falls in the look-back window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import simpy
from videodb_retry.rules.sweep_cursor import SweepCursor
from videodb_retry.steps.sweeper import RunWindow, Sweeper

from videodb_retry_local.load.capacity import functions
from videodb_retry_local.load.capacity.deployment import Deployment
from videodb_retry_local.load.capacity.gate import SimContext
from videodb_retry_local.load.capacity.sim_lambda import Account
from videodb_retry_local.load.capacity.sim_ports import Record
from videodb_retry_local.load.capacity.sim_sqs import Queue
from videodb_retry_local.load.capacity.sim_videodb import LocalClock

if TYPE_CHECKING:
    from videodb_retry_local.load.capacity.gate import Gated


class Swept(Protocol):
    """What the sweeper's schedule reads and counts on the stack (``stack.Stack``)."""

    env: simpy.Environment
    deployed: Deployment
    clock: LocalClock
    queue: Queue
    account: Account
    record: Record
    gated: Gated | None
    sweeps_failed: int


@dataclass
class SimCursors:
    """``ports.SweepCursors``: where the sweeper's pass stands between runs, in memory (expiry
    is not modelled: a scenario ends long before the cursor's)."""

    cursor: SweepCursor | None = None

    def load(self) -> SweepCursor | None:
        """The stored cursor, if any."""
        return self.cursor

    def save(self, cursor: SweepCursor, expires: datetime) -> None:
        """Store ``cursor`` (the last writer wins)."""
        self.cursor = cursor


@dataclass
class SimClaims:
    """``ports.FailureClaims``: one claim per failure, in memory."""

    claims: dict[str, tuple[str, datetime, datetime]] = field(default_factory=dict)

    def claim(self, claim_id: str, now: datetime, expires: datetime, stale_before: datetime) -> bool:
        """Claim ``claim_id`` as pending; False if published or freshly claimed."""
        held = self.claims.get(claim_id)
        if held is not None and held[2] > now and (held[0] == "published" or held[1] >= stale_before):
            return False
        self.claims[claim_id] = ("pending", now, expires)
        return True

    def mark_published(self, claim_id: str) -> None:
        """The event went out."""
        _, claimed, expires = self.claims[claim_id]
        self.claims[claim_id] = ("published", claimed, expires)

    def forget(self, claim_id: str) -> None:
        """The event did not go out: the next run may publish it."""
        self.claims.pop(claim_id, None)


@dataclass
class SimFailureEvents:
    """``ports.FailureEvents``: each event put on the bus reaches the retry queue."""

    clock: LocalClock
    queue: Queue
    source: str
    detail_type: str
    put_entries: int = 0

    def put(self, details: Sequence[dict[str, Any]], time: datetime) -> list[str | None]:
        """Put the events (all accepted) and deliver them to the queue at the caller's time."""
        for detail in details:
            event = {"source": self.source, "detail-type": self.detail_type, "detail": detail}
            self.queue.send(json.dumps(event), self.clock.now)
        self.put_entries += len(details)
        return [None] * len(details)


def sweeper_schedule(stack: Swept, sweeper_videodb: Any) -> Generator[simpy.Event, Any, None]:
    """The sweeper function on its schedule (a SimPy process)."""
    spec = stack.deployed.functions["sweeper"]
    settings = spec.settings
    events = SimFailureEvents(
        stack.clock, stack.queue, settings.failure_event_source, settings.failure_event_detail_type
    )
    sweeper = Sweeper(sweeper_videodb, settings, claims=SimClaims(), events=events, cursors=SimCursors())
    rate = 60 * int(stack.deployed.parameters.get("SweepRateMinutes", 15))
    wall_start = time.time()
    while True:
        yield stack.env.timeout(rate)
        start = stack.env.now
        if not stack.account.acquire("sweeper", start):
            continue
        stack.clock.now = start + functions.INVOKE_OVERHEAD_SECONDS
        # As functions/sweeper/app.py: the run's time is the invocation's, up to the next run.
        context = SimContext(stack.clock, deadline=start + spec.timeout_seconds)
        run = RunWindow(context, settings.sweep_rate_minutes, clock=lambda: stack.clock.now)
        if stack.gated is not None:
            stack.gated.sweeper_time_left.register(run)
        try:
            sweeper.sweep(
                now=datetime.fromtimestamp(wall_start + stack.clock.now, UTC), time_left=run.seconds_left
            )
        except Exception:  # a failed run is the next run's work (claims not published are retaken)
            stack.sweeps_failed += 1
        stack.record.puts += events.put_entries
        events.put_entries = 0
        duration = min(spec.timeout_seconds, stack.clock.now - start)
        stack.account.release_at("sweeper", duration)
