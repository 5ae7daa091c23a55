"""Logger and metrics shared by the functions, and the names of the metrics.

No tracer: Powertools' Tracer needs the AWS X-Ray SDK, which reaches end of support on
2027-02-25. The template's ``Tracing: Active`` (functions and state machine) still records a
segment per invocation and the service map, with no package in the layer.
"""

from __future__ import annotations

import threading

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()

# Records of a batch are processed on several threads; Powertools' metric set is not
# guarded, so every count goes through one lock.
_metrics_lock = threading.Lock()


class Metric:
    """Metric names published by the functions (namespace: POWERTOOLS_METRICS_NAMESPACE)."""

    RETRIES_ISSUED = "RetriesIssued"
    RETRIES_SUCCEEDED = "RetriesSucceeded"
    RETRIES_FAILED = "RetriesFailed"
    RETRIES_TIMED_OUT = "RetriesTimedOut"
    POISON_MESSAGES = "PoisonMessages"
    PERMANENT_ERRORS = "PermanentErrors"
    TRANSIENT_ERRORS = "TransientErrors"
    DUPLICATES = "Duplicates"
    POLLS = "Polls"
    # Poll invocations that ended with JobStillRunning (the workflow's wait between polls).
    POLLS_STILL_RUNNING = "PollsStillRunning"
    # Requests our own request budget refused (budgets.py): a deferred poll, a re-queued record.
    POLLS_DEFERRED = "PollsDeferred"
    RECORDS_DEFERRED = "RecordsDeferred"
    FAILURES_FOUND = "FailuresFound"
    AWS_REFUSALS = "AwsRefusals"  # a call AWS refused that the function tolerated


# The count each way an attempt ends adds; keyed by ``outcomes.Ending``'s values (a StrEnum,
# so an ``Ending`` looks its metric up directly) without importing the rules here.
ENDING_METRICS = {
    "done": Metric.RETRIES_SUCCEEDED,
    "failed": Metric.RETRIES_FAILED,
    "timed_out": Metric.RETRIES_TIMED_OUT,
}


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to the count metric ``name`` (thread-safe)."""
    with _metrics_lock:
        metrics.add_metric(name=name, unit="Count", value=value)
