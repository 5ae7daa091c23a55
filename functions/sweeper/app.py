"""Sweeper function: on a schedule, finds failed VideoDB downloads and publishes one
"download failed" event for each (VideoDB has no failure webhook for downloads)."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from videodb_retry.adapters.api_key import ApiKeyProvider
from videodb_retry.adapters.request_gate_aws import DynamoDBRequestGate
from videodb_retry.adapters.sweeper_aws import DynamoDBClaims, DynamoDBSweepCursors, EventBridgeFailureEvents
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.observability import Metric, count, logger, metrics
from videodb_retry.settings import current
from videodb_retry.steps.gated_videodb import GatedVideoDB, TimeLeft
from videodb_retry.steps.sweeper import RunWindow, Sweeper

settings = current()
# Each page takes a token from the shared request budget; a page waits for the next window
# while the run has time left for the page and the events after it.
time_left = TimeLeft(reserve_seconds=settings.connect_timeout_seconds + settings.read_timeout_seconds + 10)
sweeper = Sweeper(
    GatedVideoDB(
        VideoDBClient(settings, ApiKeyProvider(settings)),
        DynamoDBRequestGate(settings.idempotency_table_name, settings.budgets),
        now=time.time,
        sleep=time.sleep,
        patience=time_left.patience,
    ),
    settings,
    claims=DynamoDBClaims(settings.sweep_table_name),
    events=EventBridgeFailureEvents(
        settings.failure_event_source, settings.failure_event_detail_type, settings.event_bus_name
    ),
    cursors=DynamoDBSweepCursors(settings.sweep_table_name),
)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Run one sweep, within the function's time left and before the next scheduled run;
    return its counts."""
    run = RunWindow(context, settings.sweep_rate_minutes, clock=time.monotonic)
    time_left.register(run)
    report = asdict(sweeper.sweep(now=datetime.now(UTC), time_left=run.seconds_left))
    count(Metric.FAILURES_FOUND, report["published"])
    logger.info("sweep finished", extra=report)
    return report
