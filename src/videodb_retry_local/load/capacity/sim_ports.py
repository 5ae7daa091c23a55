"""In-memory implementations of the layer's ports on the model's virtual clock.

Each is what the AWS adapter does, reduced to what the capacity model counts: the ledger
(``ledger.DynamoDBLedger``: a completed step replays, a raising one is forgotten, entries expire
after the idempotency window), the DLQ (``dead_letter.DeadLetterQueue``), workflow starts
(``workflow.WorkflowStarter``: a name runs once; StartExecution's token bucket), outcomes
(``outcomes_aws.OutcomePublisher``: re-queue first, then the event), visibility changes
(``queue_aws.VisibilityBackoff``), each download's retry sequences (``sequence_aws``: a
conditional write on the record's version), the breaker's store, switch and announcer (``breaker_aws``:
the counting bucket is one hot DynamoDB key). Side effects are stamped with the calling
invocation's local time (``clock``), not the simulation's, so an invocation that slept acts late.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from videodb_retry.adapters.breaker_aws import StateConflict
from videodb_retry.adapters.workflow import execution_name
from videodb_retry.errors import StepInProgress, TransientError
from videodb_retry.rules.breaker import Bucket, Mode, State
from videodb_retry.rules.messages import RetryRequest
from videodb_retry.rules.outcomes import Outcome
from videodb_retry.rules.sequence import SequenceConflict, SequenceRecord

from videodb_retry_local.load.capacity.sim_lambda import HotKeys, TokenBucket
from videodb_retry_local.load.capacity.sim_sqs import Queue
from videodb_retry_local.load.capacity.sim_videodb import LocalClock


@dataclass
class Ledger:
    """The attempt ledger (``ports.Ledger``) with its expiry; ``current`` is the attempt whose
    step is running (the simulated VideoDB reads it to tell a duplicate POST)."""

    clock: LocalClock
    expiry_seconds: int
    hot: HotKeys
    done: dict[tuple[str, str, int], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    running: set[tuple[str, str, int]] = field(default_factory=set)
    current: tuple[str, int] | None = None

    def once(
        self, step: str, request: RetryRequest, work: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Run ``work`` once per (step, download, attempt) within the expiry."""
        key = (step, request.download_id, request.attempt)
        if key in self.running:
            raise StepInProgress(step)
        stored = self.done.get(key)
        if stored is not None and stored[0] > self.clock.now:
            return dict(stored[1]), True
        self.hot.write(f"ledger#{request.download_id}", self.clock.now)
        self.running.add(key)
        self.current = (request.download_id, request.attempt)
        try:
            result = work()
        finally:
            self.running.discard(key)
            self.current = None
        self.done[key] = (self.clock.now + self.expiry_seconds, dict(result))
        return result, False

    def register_lambda_context(self, context: Any) -> None:
        """Nothing to register: the model's invocations know their own time."""


@dataclass
class Sequences:
    """``ports.SequenceStore``: each download's sequence record with optimistic versions, as
    ``sequence_aws.DynamoDBSequenceStore`` keeps it (one write of the download's key per save)."""

    clock: LocalClock
    hot: HotKeys
    records: dict[str, SequenceRecord] = field(default_factory=dict)
    saves: int = 0

    def load(self, download_id: str) -> SequenceRecord | None:
        """The stored record, if any."""
        return self.records.get(download_id)

    def save(self, record: SequenceRecord, expires_at: float) -> None:
        """Store ``record`` as the next version if the stored one is still ``record.version``
        (expiry is not modelled: a record outlives every scenario's reports)."""
        stored = self.records.get(record.download_id)
        if (stored.version if stored else 0) != record.version:
            raise SequenceConflict(record.download_id)
        self.hot.write(f"sequence#{record.download_id}", self.clock.now)
        self.records[record.download_id] = replace(record, version=record.version + 1)
        self.saves += 1


@dataclass
class Record:
    """Everything the stack announced or dead-lettered, for the accounting."""

    events: Counter[str] = field(default_factory=Counter)  # outcome detail-type -> count
    announcements: Counter[str] = field(default_factory=Counter)  # Retry Paused / Resumed
    settled: dict[str, float] = field(default_factory=dict)  # download id -> when it ended for good
    dead_letters: Counter[str] = field(default_factory=Counter)  # error_code -> count
    last_end: float = 0.0
    puts: int = 0

    def outcome(self, detail_type: str, detail: dict[str, Any], at: float) -> None:
        """An outcome event; a download is settled by its success or its last failure."""
        self.events[detail_type] += 1
        self.puts += 1
        self.last_end = max(self.last_end, at)
        if detail.get("status") == "done" or not detail.get("will_retry", False):
            self.settled.setdefault(str(detail.get("download_id")), at)

    def dead_letter(self, code: str, download_id: str | None, at: float) -> None:
        """A message moved to the DLQ (by the function with a reason, or by redrive)."""
        self.dead_letters[code] += 1
        self.last_end = max(self.last_end, at)
        if download_id is not None:
            self.settled.setdefault(download_id, at)


@dataclass
class DeadLetters:
    """``ports.DeadLetters``: the DLQ, counted by error code."""

    clock: LocalClock
    record: Record

    def send(
        self,
        body: str,
        reason: str,
        error_code: str,
        source_message_id: str,
        download_id: str | None = None,
        receive_count: int | None = None,
    ) -> None:
        """Send one dead letter."""
        self.record.dead_letter(error_code, download_id, self.clock.now)


@dataclass
class Workflows:
    """``ports.Workflows``: one execution per name; StartExecution throttled by its bucket."""

    clock: LocalClock
    bucket: TokenBucket
    start_execution: Callable[[str, dict[str, Any], float], None]
    names: set[str] = field(default_factory=set)
    throttled: int = 0

    def start(self, state: dict[str, Any]) -> bool:
        """Start the workflow for ``state`` at the caller's time; False if its name exists."""
        name = execution_name(state["download_id"], state["job_id"])
        if name in self.names:
            return False
        if not self.bucket.take(self.clock.now):
            self.throttled += 1
            raise TransientError("StartExecution: ThrottlingException (rate exceeded)")
        self.names.add(name)
        self.start_execution(name, json.loads(json.dumps(state)), self.clock.now)
        return True


@dataclass
class Outcomes:
    """``ports.OutcomeSink``: re-queue first (if attempts remain), then the event."""

    clock: LocalClock
    queue: Queue
    record: Record
    requeue_delay_seconds: int

    def settle(self, outcome: Outcome) -> None:
        """Re-queue and announce ``outcome``."""
        if outcome.will_retry:
            self.queue.send(
                outcome.next_request().to_body(), self.clock.now, min(self.requeue_delay_seconds, 900)
            )
        self.record.outcome(outcome.detail_type, outcome.detail(), self.clock.now)


@dataclass
class Visibility:
    """``ports.Visibility``: ChangeMessageVisibility from the caller's time."""

    clock: LocalClock
    queue: Queue

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        """Make the record visible ``seconds`` from now."""
        self.queue.postpone(receipt_handle, seconds, self.clock.now)


@dataclass
class BreakerStore:
    """``ports.BreakerStore``: the state with its version; the buckets as one hot key each."""

    clock: LocalClock
    hot: HotKeys
    state: State = field(default_factory=State)
    counts: dict[int, Bucket] = field(default_factory=dict)

    def load(self) -> State:
        """The stored state."""
        return self.state

    def save(self, state: State) -> State:
        """Store ``state`` if nobody changed it since it was read."""
        if state.version != self.state.version:
            raise StateConflict("changed")
        self.state = replace(state, version=state.version + 1)
        return self.state

    def add(self, start: int, attempts: int, failures: int) -> None:
        """Add to the bucket ``start`` (one UpdateItem on one key: the hot partition)."""
        if not self.hot.write(f"breaker#{start}", self.clock.now):
            raise RuntimeError("ProvisionedThroughputExceededException")
        old = self.counts.get(start, Bucket(start, 0, 0))
        self.counts[start] = Bucket(start, old.attempts + attempts, old.failures + failures)

    def buckets(self, starts: list[int]) -> list[Bucket]:
        """The buckets that exist among ``starts``."""
        return [self.counts[s] for s in starts if s in self.counts]


@dataclass
class Switch:
    """``ports.BreakerSwitch``: the mapping's state (enabled, MaximumConcurrency)."""

    enabled: bool = True
    concurrency: int = 2
    on_change: Callable[[], None] = lambda: None  # wakes the mapping's pollers
    changes: int = 0

    def apply(self, mode: Mode, concurrency: int) -> bool:
        """Enable or disable the mapping; True when it changed."""
        enabled = mode is Mode.CLOSED
        changed = (enabled, concurrency) != (self.enabled, self.concurrency)
        self.enabled, self.concurrency = enabled, concurrency
        self.changes += int(changed)
        if changed:
            self.on_change()
        return changed


@dataclass
class Announcer:
    """``ports.Announcer``: Retry Paused / Resumed, counted."""

    record: Record

    def announce(self, detail_type: str, detail: dict[str, Any]) -> None:
        """Count the event."""
        self.record.announcements[detail_type] += 1
        self.record.puts += 1
