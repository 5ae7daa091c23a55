"""The outside world as the rules see it: small Protocols, implemented by the adapters.

The rule modules (retry_attempt, record_delivery, poll, sweeper, outcomes, breaker_control,
sequence) are typed against these and import no boto3, requests or adapter module
(``tests/unit/test_layer_imports.py``). The adapters implement them: ``client.VideoDBClient``
(HTTP), ``dead_letter.DeadLetterQueue``, ``queue_aws.VisibilityBackoff`` (SQS),
``workflow.WorkflowStarter`` (Step Functions), ``request_gate_aws.DynamoDBRequestGate`` (the
request budget's counts), ``queue_aws.QueueDeferrals`` (SQS), ``outcomes_aws.OutcomePublisher``
(SQS and EventBridge), ``ledger.DynamoDBLedger``, ``sequence_aws.DynamoDBSequenceStore``,
``sweeper_aws`` (DynamoDB claims and cursor, EventBridge) and ``breaker_aws`` (DynamoDB,
Lambda, EventBridge); the functions in ``functions/`` wire them together. The tests' in-memory
versions are in ``tests/fakes.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: no import cycle, nothing loaded at run time
    from videodb_retry.rules.breaker import Bucket, Mode, State
    from videodb_retry.rules.budgets import RequestKind
    from videodb_retry.rules.messages import RetryRequest
    from videodb_retry.rules.outcomes import Outcome
    from videodb_retry.rules.sequence import SequenceRecord
    from videodb_retry.rules.status import JobStatus
    from videodb_retry.rules.sweep_cursor import SweepCursor


class VideoDB(Protocol):
    """The VideoDB API calls the rules make (``client.VideoDBClient`` over HTTP)."""

    def retry_download(self, download_id: str) -> JobStatus: ...

    def get_job(self, output_url: str, download_id: str | None = None) -> JobStatus: ...

    def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, Any]]: ...

    def followable_url(self, url: str) -> str: ...

    def is_on_api_origin(self, url: str) -> bool: ...


class RequestGate(Protocol):
    """A shared per-second request budget; True when a request of ``kind`` may go now."""

    def take(self, kind: RequestKind, now: float) -> bool: ...


class Deferrals(Protocol):
    """Puts a received record back on the retry queue as a new message (its receive count
    starts again), after ``delay_seconds``: for work our own budget postponed."""

    def defer(self, body: str, message_attributes: dict[str, Any], delay_seconds: int) -> None: ...


class DeadLetters(Protocol):
    """Where poison input and permanent failures go, with the reason; raises if refused."""

    def send(
        self,
        body: str,
        reason: str,
        error_code: str,
        source_message_id: str,
        download_id: str | None = None,
        receive_count: int | None = None,
    ) -> None: ...


class Workflows(Protocol):
    """Starts the wait/poll workflow; False when this job's execution already exists."""

    def start(self, state: dict[str, Any]) -> bool: ...


class OutcomeSink(Protocol):
    """Re-queues (if attempts remain) and announces an outcome that ends in the retry function."""

    def settle(self, outcome: Outcome) -> None: ...


class Visibility(Protocol):
    """Postpones the next delivery of one received record of the retry queue."""

    def postpone(self, receipt_handle: str, seconds: int) -> None: ...


class Ledger(Protocol):
    """Runs a step of an attempt once; returns (result, replayed).

    A completed step replays its saved result; a step that raised is forgotten; a step
    running elsewhere raises :class:`~videodb_retry.errors.StepInProgress`. The result is
    a JSON-shaped dict because it is stored (DynamoDB); the rules read it into typed values.
    """

    def once(
        self, step: str, request: RetryRequest, work: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]: ...

    def register_lambda_context(self, context: Any) -> None: ...


class SequenceStore(Protocol):
    """Where each download's retry sequences are kept (one record per download)."""

    def load(self, download_id: str) -> SequenceRecord | None: ...

    def save(self, record: SequenceRecord, expires_at: float) -> None:
        """Store ``record`` as version ``record.version + 1`` if the stored one is still
        ``record.version``; else raise :class:`~videodb_retry.rules.sequence.SequenceConflict`."""
        ...


class FailureClaims(Protocol):
    """The sweeper's memory of failures it published (once across runs)."""

    def claim(self, claim_id: str, now: datetime, expires: datetime, stale_before: datetime) -> bool:
        """Claim ``claim_id`` as pending; False if a run published it or holds a fresh claim."""
        ...

    def mark_published(self, claim_id: str) -> None: ...

    def forget(self, claim_id: str) -> None: ...


class FailureEvents(Protocol):
    """Puts "download failed" events; returns the error code of each (None: accepted)."""

    def put(self, details: Sequence[dict[str, Any]], time: datetime) -> list[str | None]: ...


class SweepCursors(Protocol):
    """Where the sweeper's pass stands between runs (one item; the last writer wins)."""

    def load(self) -> SweepCursor | None: ...

    def save(self, cursor: SweepCursor, expires: datetime) -> None: ...


class BreakerStore(Protocol):
    """Where the breaker's state and counting buckets live."""

    def load(self) -> State: ...

    def save(self, state: State) -> State: ...

    def add(self, start: int, attempts: int, failures: int) -> None: ...

    def buckets(self, starts: list[int]) -> list[Bucket]: ...


class BreakerSwitch(Protocol):
    """The retry queue's event source mapping."""

    def apply(self, mode: Mode, concurrency: int) -> bool: ...


class Announcer(Protocol):
    """Where Retry Paused / Retry Resumed go."""

    def announce(self, detail_type: str, detail: dict[str, Any]) -> None: ...
