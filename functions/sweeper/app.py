"""Sweeper function: on a schedule, finds failed VideoDB downloads and publishes one
"download failed" event for each (VideoDB has no failure webhook for downloads)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from videodb_retry.api_key import ApiKeyProvider
from videodb_retry.client import VideoDBClient
from videodb_retry.observability import Metric, count, logger, metrics
from videodb_retry.settings import current
from videodb_retry.sweeper import Sweeper
from videodb_retry.sweeper_aws import DynamoDBClaims, DynamoDBSweepCursors, EventBridgeFailureEvents

settings = current()
sweeper = Sweeper(
    VideoDBClient(settings, ApiKeyProvider(settings)),
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
    """Run one sweep, within the function's time left; return its counts."""

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    report = asdict(sweeper.sweep(now=datetime.now(UTC), time_left=time_left))
    count(Metric.FAILURES_FOUND, report["published"])
    logger.info("sweep finished", extra=report)
    return report
