"""Logger, metrics and tracer shared by the functions, and the names of the metrics."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()


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
