"""The request budget in the model: the ``RequestGate`` port in memory on the virtual clock,
deciding through the same ``Budgets`` rule, and VideoDB wired behind ``GatedVideoDB`` per
function exactly as ``functions/*/app.py`` wire it (the retry function waits while its
invocation has time, the poll function never waits, the breaker's probe takes a PROBE token).

``request_gate_aws.DynamoDBRequestGate`` keeps one item per class and one-second window (a
conditional ADD); here the count per (class, window) is a dict, and each take is one write of
that window's key in the hot-key counts (``HotKeys``: one partition, 1,000 writes/s).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from videodb_retry.rules.budgets import Budgets, RequestKind, request_class, window_of
from videodb_retry.steps.gated_videodb import GatedVideoDB, TimeLeft, no_patience

from videodb_retry_local.load.capacity.deployment import Deployment
from videodb_retry_local.load.capacity.sim_lambda import HotKeys
from videodb_retry_local.load.capacity.sim_sqs import Queue
from videodb_retry_local.load.capacity.sim_videodb import LocalClock, SimVideoDB


@dataclass
class SimGate:
    """``ports.RequestGate``: admissions per (class, window), decided by ``Budgets.admits``."""

    budgets: Budgets
    hot: HotKeys
    used: Counter[tuple[str, int]] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def take(self, kind: RequestKind, now: float) -> bool:
        """True (and counted) when a request of ``kind`` may go in ``now``'s window."""
        key = (request_class(kind).value, window_of(now))
        if not self.hot.write(f"gate#{key[0]}#{key[1]}", now):
            self.refused[kind.value] += 1
            return False
        if not self.budgets.admits(kind, self.used[key]):
            self.refused[kind.value] += 1
            return False
        self.used[key] += 1
        return True


@dataclass
class SimContext:
    """The Lambda context as ``TimeLeft`` reads it: time left on the invocation's local clock."""

    clock: LocalClock
    deadline: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's timeout."""
        return int(max(0.0, self.deadline - self.clock.now) * 1000)


@dataclass
class SimDeferrals:
    """``ports.Deferrals``: the record back on the retry queue as a new message, delayed."""

    clock: LocalClock
    queue: Queue
    deferred: int = 0

    def defer(self, body: str, message_attributes: dict[str, Any], delay_seconds: int) -> None:
        """Send ``body`` again (its receive count starts again)."""
        self.deferred += 1
        self.queue.send(body, self.clock.now, min(int(delay_seconds), 900), dict(message_attributes or {}))


@dataclass
class Gated:
    """What the gated design adds to the stack: the gate, the retry invocation's context."""

    gate: SimGate
    retry_context: SimContext
    time_left: TimeLeft
    # Registered per run with the run's window (sweeping.py, as functions/sweeper/app.py does).
    sweeper_time_left: TimeLeft


class Wired(Protocol):
    """What the wiring reads and keeps on the stack (``stack.Stack``)."""

    deployed: Deployment
    hot: HotKeys
    gated: Gated | None


def gated_wiring(function: str, videodb: SimVideoDB, stack: Wired) -> Any:
    """VideoDB behind the request budget, per function, as the handlers wire it."""
    settings = stack.deployed.functions[function].settings
    if stack.gated is None:
        gate = SimGate(settings.budgets, stack.hot)
        context = SimContext(videodb.clock)
        reserve = settings.connect_timeout_seconds + settings.read_timeout_seconds + 5
        time_left = TimeLeft(reserve_seconds=reserve)
        time_left.register(context)
        # The sweeper's reserve, as functions/sweeper/app.py sets it.
        sweeper_time_left = TimeLeft(reserve_seconds=reserve + 5)
        stack.gated = Gated(gate, context, time_left, sweeper_time_left)
    gated = stack.gated
    clock = videodb.clock
    if function == "retry":
        return GatedVideoDB(videodb, gated.gate, clock.time, clock.sleep, patience=gated.time_left.patience)
    if function == "breaker":
        return GatedVideoDB(videodb, gated.gate, clock.time, clock.sleep, list_kind=RequestKind.PROBE)
    if function == "sweeper":
        patience = gated.sweeper_time_left.patience
        return GatedVideoDB(videodb, gated.gate, clock.time, clock.sleep, patience=patience)
    return GatedVideoDB(videodb, gated.gate, clock.time, clock.sleep, patience=no_patience)
