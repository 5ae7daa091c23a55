"""Sweeper function: on a schedule, finds failed VideoDB downloads and publishes one
"download failed" event for each (VideoDB has no failure webhook for downloads)."""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from videodb_retry.api_key import ApiKeyProvider
from videodb_retry.client import VideoDBClient
from videodb_retry.observability import Metric, count, logger, metrics
from videodb_retry.settings import current
from videodb_retry.sweeper import Sweeper, SweepSettings

settings = current()
sweeper = Sweeper(
    VideoDBClient(settings, ApiKeyProvider(settings)),
    SweepSettings(
        lookback_hours=float(os.environ.get("SWEEP_LOOKBACK_HOURS", "24")),
        event_source=os.environ["FAILURE_EVENT_SOURCE"],
        event_detail_type=os.environ["FAILURE_EVENT_DETAIL_TYPE"],
        event_bus_name=settings.event_bus_name,
        seen_table_name=os.environ["STATE_TABLE_NAME"],
    ),
)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Run one sweep; return its counts."""
    report = asdict(sweeper.sweep(now=datetime.now(UTC)))
    count(Metric.FAILURES_FOUND, report["published"])
    logger.info("sweep finished", extra=report)
    return report
