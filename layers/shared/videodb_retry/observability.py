"""Logger, metrics and tracer shared by the functions, and the names of the metrics."""

from __future__ import annotations

import threading

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
# Only the libraries the functions call out with: patching all that X-Ray knows imports them
# (and sqlite3, httpx, ...) into every cold start.
tracer = Tracer(patch_modules=("botocore", "requests"))

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
    FAILURES_FOUND = "FailuresFound"


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to the count metric ``name`` (thread-safe)."""
    with _metrics_lock:
        metrics.add_metric(name=name, unit="Count", value=value)
