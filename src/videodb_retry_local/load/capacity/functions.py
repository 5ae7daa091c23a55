"""The stack's functions in the model: the real rules behind thin sim handlers, each run on one
invocation-local clock.

Rules call ``clock.sleep`` / ``time`` synchronously. An invocation therefore runs at once, in
Python, on its own :class:`~videodb_retry_local.load.capacity.sim_videodb.LocalClock` that starts at
the SimPy time the invocation starts and advances as it sleeps and waits on VideoDB; its
requests and side effects are stamped with those local times. SimPy then holds the invocation's
Lambda concurrency unit for the local duration. What this approximates: two invocations that
overlap in virtual time do not see each other's effects in between (the second sees the first's
later requests in the rate counts already, the first not the second's); the records of one
batch, processed ``RetryBatchConcurrency`` at a time in lanes, likewise. The effects that
matter here (holding a unit, the request stamps, the ledger's once-only steps) are exact.

The handlers mirror ``functions/*/app.py`` line for line, minus logging and metrics: the retry
batch (``RecordDelivery.handle`` per record, the breaker's ``OutcomeCounter.record``), the poll
step (``poll.follow_job``: one request, ``JobStillRunning`` raised to the workflow), the
breaker's tick. A retry invocation's requests may wait for the request budget's next window
(``GatedVideoDB`` sleeps on the invocation's clock while it has time left).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from videodb_retry.settings import Settings
from videodb_retry.steps.breaker_control import Breaker, OutcomeCounter
from videodb_retry.steps.poll import Ended, TransientPollError, follow_job
from videodb_retry.steps.record_delivery import RecordDelivery
from videodb_retry.steps.retry_sequences import RetrySequences, end_after_poll

from videodb_retry_local.load.capacity.sim_sqs import Queue, Received
from videodb_retry_local.load.capacity.sim_videodb import LocalClock

# Assumed (spec/NOTES.md, "Capacity model assumptions"): a warm invocation's own overhead, and
# the AWS calls (DynamoDB, SQS, Step Functions, EventBridge) one record makes, in seconds.
INVOKE_OVERHEAD_SECONDS = 0.02
RECORD_AWS_SECONDS = 0.04


@dataclass(frozen=True)
class Invocation:
    """How an invocation ended: its duration and, for a function error, the error's name."""

    duration: float
    result: Any = None
    error: str | None = None
    cause: str = ""


def retry_batch(
    clock: LocalClock,
    delivery: RecordDelivery,
    counter: OutcomeCounter | None,
    queue: Queue,
    records: list[Received],
    start: float,
    settings: Settings,
    timeout: float,
) -> Invocation:
    """One retry function invocation: its records in ``batch_concurrency`` lanes."""
    lanes = [start + INVOKE_OVERHEAD_SECONDS] * max(1, settings.batch_concurrency)
    failures = 0
    for record in records:
        lane = lanes.index(min(lanes))
        clock.now = lanes[lane]
        remaining_ms = int((start + timeout - clock.now) * 1000)
        try:
            delivery.handle(record, remaining_ms)
            queue.delete(record.message)  # a record that did not fail is deleted by the mapping
        except Exception:
            failures += 1  # reported in batchItemFailures: it stays, with the visibility it got
        clock.now += RECORD_AWS_SECONDS
        lanes[lane] = clock.now
    clock.now = max(lanes)
    if counter is not None:
        counter.record(len(records), failures)
    return Invocation(duration=min(timeout, clock.now - start))


def poll_invocation(
    clock: LocalClock,
    videodb: Any,
    sequences: RetrySequences,
    settings: Settings,
    payload: dict[str, Any],
    start: float,
    timeout: float,
) -> Invocation:
    """One poll function invocation (``functions/poll/app.py``): the ended or deferred state,
    or the error the workflow's Retry/Catch sees (the exception's class name, as Lambda
    reports it). It makes at most one request and never sleeps; an ended attempt that is its
    retry sequence's last ends the sequence first (a refused write: a poll error)."""
    clock.now = start + INVOKE_OVERHEAD_SECONDS
    try:
        result = follow_job(payload, videodb, settings, now=clock.now)
        if isinstance(result, Ended):
            try:
                end_after_poll(sequences, result.outcome, clock.now)
            except Exception as exc:
                raise TransientPollError(f"could not end the retry sequence: {type(exc).__name__}") from None
    except Exception as exc:
        name = type(exc).__name__
        cause = json.dumps({"errorMessage": str(exc), "errorType": name})
        return Invocation(duration=min(timeout, clock.now - start), error=name, cause=cause)
    if clock.now - start > timeout:
        return Invocation(duration=timeout, error="Sandbox.Timedout", cause="Task timed out")
    return Invocation(duration=clock.now - start, result=result.to_state(settings))


def breaker_tick(clock: LocalClock, breaker: Breaker, start: float) -> Invocation:
    """One scheduled breaker invocation (``functions/breaker/app.py``, action ``tick``)."""
    clock.now = start + INVOKE_OVERHEAD_SECONDS
    try:
        report = breaker.tick()
    except Exception as exc:
        return Invocation(duration=clock.now - start, error=type(exc).__name__, cause=str(exc))
    clock.now += RECORD_AWS_SECONDS
    return Invocation(duration=clock.now - start, result=report.to_dict())


def quiet_rules() -> Callable[[], None]:
    """Silence the layer's Powertools logger and metrics (they must not print per record);
    returns the function that restores them."""
    import logging

    from videodb_retry import observability

    old_metrics, old_level = observability.metrics, observability.logger.log_level
    observability.metrics = _NoMetrics()  # type: ignore[assignment]
    observability.logger.setLevel(logging.CRITICAL)

    def restore() -> None:
        observability.metrics = old_metrics
        observability.logger.setLevel(old_level)

    return restore


class _NoMetrics:
    """Powertools' ``Metrics`` as far as ``observability.count`` uses it, counting nothing."""

    def add_metric(self, name: str, unit: str, value: float) -> None:
        """Drop the metric."""
