"""The tests' in-memory stand-ins for the layer's adapters, one place, typed against ports.py.

``tests/unit/test_fakes_conform.py`` assigns each to its Protocol, so mypy over these files
fails if a fake drifts from the port it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from videodb_retry.adapters.breaker_aws import StateConflict, SwitchRefused
from videodb_retry.adapters.workflow import execution_name
from videodb_retry.errors import StepInProgress, TransientError
from videodb_retry.rules.breaker import Bucket, Mode, State
from videodb_retry.rules.budgets import Budgets, RequestClass, RequestKind, request_class, window_of
from videodb_retry.rules.messages import RetryRequest
from videodb_retry.rules.outcomes import Outcome
from videodb_retry.rules.sequence import SequenceConflict, SequenceRecord
from videodb_retry.steps.retry_sequences import RetrySequences


class FakeKey:
    """An API key source whose value can be rotated; counts reads and refreshes."""

    def __init__(self, *values: str) -> None:
        self.values = list(values)
        self.reads = 0
        self.refreshes = 0

    def __call__(self) -> str:
        self.reads += 1
        return self.values[0]

    def refresh(self) -> str:
        self.refreshes += 1
        if len(self.values) > 1:
            self.values.pop(0)
        return self.values[0]


class InMemoryLedger:
    """The attempt ledger's semantics without DynamoDB: a completed step replays its result,
    a step that raised is forgotten."""

    def __init__(self) -> None:
        self.done: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.in_progress: set[tuple[Any, ...]] = set()

    def once(
        self, step: str, request: RetryRequest, work: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        key = (step, *request.ledger_key)
        if key in self.in_progress:
            raise StepInProgress(step)
        if key in self.done:
            return dict(self.done[key]), True
        self.in_progress.add(key)
        try:
            result = work()
        finally:
            self.in_progress.discard(key)
        self.done[key] = dict(result)
        return result, False

    def register_lambda_context(self, context: Any) -> None:
        pass


class FakeDeadLetters:
    """Remembers what was dead-lettered; ``fail`` makes every send raise (SQS down)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def send(
        self,
        body: str,
        reason: str,
        error_code: str,
        source_message_id: str,
        download_id: str | None = None,
        receive_count: int | None = None,
    ) -> None:
        if self.fail:
            raise RuntimeError("SQS unavailable")
        self.sent.append(
            {
                "body": body,
                "reason": reason,
                "error_code": error_code,
                "source_message_id": source_message_id,
                "download_id": download_id,
                "receive_count": receive_count,
            }
        )


class FakeWorkflows:
    """Like Step Functions: a second start with the same execution name is refused."""

    def __init__(self, exists: bool = False) -> None:
        self.started: list[dict[str, Any]] = []
        self.exists = exists
        self.names: set[str] = set()

    def start(self, state: dict[str, Any]) -> bool:
        name = execution_name(state["download_id"], state["job_id"])
        if self.exists or name in self.names:
            return False
        self.names.add(name)
        self.started.append(state)
        return True


class FakeOutcomes:
    """Remembers settled outcomes; the first ``failures`` settles raise (EventBridge down)."""

    def __init__(self, failures: int = 0) -> None:
        self.settled: list[Outcome] = []
        self.failures = failures

    def settle(self, outcome: Outcome) -> None:
        if self.failures:
            self.failures -= 1
            raise TransientError("EventBridge unavailable")
        self.settled.append(outcome)


class FakeBreakerStore:
    """The breaker's state with optimistic versions, and its buckets, in memory."""

    def __init__(self, state: State | None = None, buckets: list[Bucket] | None = None) -> None:
        self.state = state or State()
        self.stored: list[State] = []
        self._buckets = buckets or []
        self.added: list[tuple[int, int, int]] = []
        self.refuse_add = False

    def load(self) -> State:
        return self.state

    def save(self, state: State) -> State:
        if state.version != self.state.version:
            raise StateConflict("changed")
        self.state = replace(state, version=state.version + 1)
        self.stored.append(self.state)
        return self.state

    def add(self, start: int, attempts: int, failures: int) -> None:
        if self.refuse_add:
            raise RuntimeError("ProvisionedThroughputExceededException")
        self.added.append((start, attempts, failures))

    def buckets(self, starts: list[int]) -> list[Bucket]:
        return [b for b in self._buckets if b.start in starts]


class FakeSwitch:
    """The event source mapping switch; ``refuse`` makes Lambda refuse the change."""

    def __init__(self, refuse: bool = False) -> None:
        self.applied: list[tuple[Mode, int]] = []
        self.refuse = refuse

    def apply(self, mode: Mode, concurrency: int) -> bool:
        if self.refuse:
            raise SwitchRefused("AccessDeniedException")
        self.applied.append((mode, concurrency))
        return True


class FakeAnnouncer:
    """Remembers the Retry Paused / Resumed events; ``refuse`` makes EventBridge refuse them."""

    def __init__(self, refuse: bool = False) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse

    def announce(self, detail_type: str, detail: dict[str, Any]) -> None:
        if self.refuse:
            raise RuntimeError(f"EventBridge refused {detail_type}: InternalFailure")
        self.events.append((detail_type, detail))


class InMemorySequenceStore:
    """Each download's sequence record with optimistic versions, as DynamoDB keeps it."""

    def __init__(self) -> None:
        self.records: dict[str, SequenceRecord] = {}
        self.expires: dict[str, float] = {}
        self.saves = 0

    def load(self, download_id: str) -> SequenceRecord | None:
        return self.records.get(download_id)

    def save(self, record: SequenceRecord, expires_at: float) -> None:
        stored = self.records.get(record.download_id)
        if (stored.version if stored else 0) != record.version:
            raise SequenceConflict(record.download_id)
        self.records[record.download_id] = replace(record, version=record.version + 1)
        self.expires[record.download_id] = expires_at
        self.saves += 1


def in_memory_sequences(stale_after_seconds: float = 3600) -> RetrySequences:
    """Retry sequences kept in memory (what the retry and poll functions keep in DynamoDB)."""
    return RetrySequences(InMemorySequenceStore(), stale_after_seconds)


class InMemoryGate:
    """The shared request budget, counted per class and window in memory (as the DynamoDB
    adapter counts them); ``budgets`` decides. ``admitted`` lists (kind, window) per admission."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.used: dict[tuple[RequestClass, int], int] = {}
        self.admitted: list[tuple[RequestKind, int]] = []
        self.refused = 0

    def take(self, kind: RequestKind, now: float) -> bool:
        key = (request_class(kind), window_of(now))
        used = self.used.get(key, 0)
        self.used[key] = used + 1
        if self.budgets.admits(kind, used):
            self.admitted.append((kind, key[1]))
            return True
        self.refused += 1
        return False


class FakeDeferrals:
    """Remembers the records put back on the retry queue by our own budget."""

    def __init__(self) -> None:
        self.deferred: list[tuple[str, dict[str, Any], int]] = []

    def defer(self, body: str, message_attributes: dict[str, Any], delay_seconds: int) -> None:
        self.deferred.append((body, message_attributes, delay_seconds))


def workflow_state(base_url: str, **overrides: Any) -> dict[str, Any]:
    """The poll state of download-1's first attempt (job-1, polled at ``base_url``), as the retry
    function starts the workflow with it, with ``overrides``."""
    return {
        "download_id": "download-1",
        "job_id": "job-1",
        "output_url": f"{base_url}/async-response/job-1",
        "attempt": 1,
        "started_at": 1000.0,
        "deadline_at": 1600.0,
        "polls": 0,
        **overrides,
    }
