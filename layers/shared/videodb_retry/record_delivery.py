"""What to do with one delivered SQS record around its retry attempt: time budget, backoff,
last delivery (the attempt itself is ``retry_attempt``; how long to back off, ``redelivery_policy``).

- A record not started while the invocation still had time for a full API call is failed
  untouched, so a batch never runs into the Lambda timeout with work half done.
- A record that fails is made invisible for longer with each receive (and at least
  ``Retry-After``), instead of the queue's fixed visibility timeout.
- On its last allowed delivery, a record that fails again goes to the DLQ with the reason,
  rather than being moved there by SQS redrive with none.
- A record whose POST our own request budget could not admit within the invocation's time
  (``RequestDeferred``) is put back on the queue as a new message and reported done: our own
  budget never spends a message's receives toward the DLQ.
"""

from __future__ import annotations

from typing import Any, Protocol

from videodb_retry.errors import RequestDeferred, TransientError
from videodb_retry.messages import DEAD_LETTER_MARK, PoisonMessage, is_redriven, parse_body
from videodb_retry.observability import Metric, count, logger
from videodb_retry.ports import Deferrals, Visibility
from videodb_retry.redelivery_policy import RedeliveryPolicy
from videodb_retry.retry_attempt import InboundMessage, RecordResult, RetryService
from videodb_retry.settings import Settings

# Delay for records that were never started: they did nothing wrong, try them again soon.
UNSTARTED_DELAY_SECONDS = 5
# Delay of a record re-queued because the request budget had no token in time: the budget
# was spent for the invocation's whole wait, so try again a little later, not at once.
DEFERRED_DELAY_SECONDS = 10


class QueueRecord(Protocol):
    """The parts of Powertools' SQSRecord used here."""

    @property
    def body(self) -> str: ...

    @property
    def message_id(self) -> str: ...

    @property
    def receipt_handle(self) -> str: ...

    @property
    def attributes(self) -> Any: ...

    @property
    def message_attributes(self) -> Any: ...


class OutOfTime(TransientError):
    """The invocation had too little time left to start this record."""


class RecordDelivery:
    """Processes one delivered record under the time budget and redelivery policy."""

    def __init__(
        self, settings: Settings, service: RetryService, backoff: Visibility, deferrals: Deferrals
    ) -> None:
        self._service = service
        self._backoff = backoff
        self._deferrals = deferrals
        self._policy = RedeliveryPolicy(
            first_delay_seconds=settings.redelivery_first_delay_seconds,
            factor=settings.redelivery_backoff_factor,
            max_delay_seconds=settings.redelivery_max_delay_seconds,
            max_receive_count=settings.max_receive_count,
        )
        # Time one API call may take at most, plus room to report: below it, don't start.
        self._reserve_ms = (
            int((settings.connect_timeout_seconds + settings.read_timeout_seconds) * 1000) + 2000
        )

    def handle(self, record: QueueRecord, remaining_ms: int | None) -> RecordResult:
        """Process ``record``; raise to report it as a batch item failure."""
        receive_count = int(record.attributes.approximate_receive_count or 1)
        sent = record.attributes.sent_timestamp  # epoch milliseconds, as SQS gives it
        message = InboundMessage(
            body=record.body,
            message_id=record.message_id,
            receive_count=receive_count,
            redriven=is_redriven(record.message_attributes or {}),
            sent_at=int(sent) / 1000 if sent else None,
        )
        if remaining_ms is not None and remaining_ms < self._reserve_ms:
            self._postpone(record, UNSTARTED_DELAY_SECONDS)
            raise OutOfTime(f"not started: {remaining_ms} ms left in the invocation")
        try:
            return self._service.process(message)
        except RequestDeferred as exc:
            # Raises if SQS refuses the copy: the record then fails and is redelivered. An
            # admitted report comes back as its sequence's attempt, no longer a DLQ's report.
            body, attributes = record.body, _attributes(record)
            if exc.requeue_body is not None:
                body = exc.requeue_body
                attributes.pop(DEAD_LETTER_MARK, None)
            self._deferrals.defer(body, attributes, DEFERRED_DELAY_SECONDS)
            count(Metric.RECORDS_DEFERRED)
            logger.info("request budget spent; record re-queued as a new message")
            return RecordResult.DEFERRED
        except Exception as exc:
            count(Metric.TRANSIENT_ERRORS)
            if self._policy.is_last_delivery(receive_count):
                reason = f"still failing after {receive_count} deliveries: {_describe(exc)}"
                logger.error("giving up on the record", extra={"reason": reason})
                return self._service.dead_letter(
                    message, reason, "transient_exhausted", _download_id(message)
                )
            delay = self._policy.delay(receive_count, getattr(exc, "retry_after", None))
            logger.warning(
                "record failed; it will be delivered again",
                extra={"error": _describe(exc), "receive_count": receive_count, "next_delivery_in_s": delay},
            )
            self._postpone(record, delay)
            raise

    def _postpone(self, record: QueueRecord, seconds: int) -> None:
        try:
            self._backoff.postpone(record.receipt_handle, seconds)
        except Exception as exc:
            # Tolerated (the queue's own visibility timeout still applies), never silent: the
            # reason is logged and counted, and a local run fails on it (aws_limits.py).
            count(Metric.AWS_REFUSALS)
            logger.error(
                "AWS refused the record's visibility change",
                extra={"error": _describe(exc), "visibility_timeout_s": seconds},
            )


def _attributes(record: QueueRecord) -> dict[str, Any]:
    # The event's message attributes as Lambda delivers them (name -> {stringValue, dataType});
    # the DLQ's marks must survive the re-queue (a redriven message stays redriven).
    return {name: dict(value) for name, value in dict(record.message_attributes or {}).items()}


def _download_id(message: InboundMessage) -> str | None:
    # Lets the DLQ summary group exhausted records by download; a poison body has none.
    try:
        return parse_body(message.body).download_id
    except PoisonMessage:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
