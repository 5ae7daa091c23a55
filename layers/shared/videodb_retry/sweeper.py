"""The failure sweeper: VideoDB has no failure webhook for downloads, so find them by listing.

Lists every page of ``GET /download``, keeps downloads in ``error`` status created within the
look-back window, and publishes one "download failed" event for each — once across runs,
remembered in DynamoDB with a conditional write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from videodb_retry.aws_clients import client
from videodb_retry.client import VideoDBClient
from videodb_retry.errors import TransientError
from videodb_retry.messages import is_valid_download_id
from videodb_retry.status import JobState, map_status

PAGE_SIZE = 500
MAX_PAGES = 200  # 100,000 downloads: a bound, so one run always ends
EVENTS_PER_PUT = 10  # PutEvents takes at most 10 entries
STALE_CLAIM = timedelta(minutes=15)  # longer than a sweep can run (the function's timeout)


@dataclass(frozen=True)
class SweepSettings:
    """What one sweep needs besides the API client."""

    lookback_hours: float
    event_source: str
    event_detail_type: str
    event_bus_name: str
    seen_table_name: str
    page_size: int = PAGE_SIZE


@dataclass
class SweepReport:
    """What one sweep found and did."""

    failed_in_window: int = 0
    published: int = 0
    already_published: int = 0
    skipped_invalid: int = 0


def failed_downloads(
    videodb: VideoDBClient, since: datetime, page_size: int = PAGE_SIZE
) -> Iterator[dict[str, Any]]:
    """Every download in error status created at or after ``since`` (all pages, bounded)."""
    for page_index in range(MAX_PAGES):
        page = videodb.list_downloads(page_index=page_index, count=page_size)
        for download in page:
            if map_status(download.get("status")) is not JobState.FAILED:
                continue
            created = parse_created_at(download.get("created_at"))
            if created is not None and created >= since:
                yield download
        if len(page) < page_size:
            return


def parse_created_at(value: object) -> datetime | None:
    """An ISO 8601 ``created_at`` as an aware datetime (UTC when no zone is given)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Sweeper:
    """Publishes one "download failed" event per failed download, once across runs."""

    def __init__(self, videodb: VideoDBClient, settings: SweepSettings) -> None:
        self._videodb = videodb
        self._settings = settings

    def sweep(self, now: datetime) -> SweepReport:
        """Run one sweep at time ``now`` and report the counts."""
        report = SweepReport()
        since = now - timedelta(hours=self._settings.lookback_hours)
        pending: list[dict[str, Any]] = []
        for download in failed_downloads(self._videodb, since, self._settings.page_size):
            report.failed_in_window += 1
            if not is_valid_download_id(download.get("id")):
                report.skipped_invalid += 1
                continue
            if not self._claim(download, now):
                report.already_published += 1
                continue
            pending.append(download)
            if len(pending) == EVENTS_PER_PUT:
                report.published += self._publish(pending, now)
                pending = []
        if pending:
            report.published += self._publish(pending, now)
        return report

    def _claim(self, download: dict[str, Any], now: datetime) -> bool:
        """Claim this failure for publishing; False if an earlier run published it.

        A claim is written as ``pending`` and marked ``published`` after PutEvents: a run that
        died in between leaves a stale pending claim, which a later run takes over, so a
        failure is neither lost nor published twice by runs that complete.
        """
        ddb = client("dynamodb")
        # Kept a little longer than the window, so a failure can never come back into view.
        expires = now + timedelta(hours=self._settings.lookback_hours * 2 + 1)
        try:
            ddb.put_item(
                TableName=self._settings.seen_table_name,
                Item={
                    "id": {"S": _claim_id(download)},
                    "expiration": {"N": str(int(expires.timestamp()))},
                    "state": {"S": "pending"},
                    "claimed_at": {"N": str(int(now.timestamp()))},
                },
                ConditionExpression="attribute_not_exists(id) OR (#s = :pending AND claimed_at < :stale)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":stale": {"N": str(int((now - STALE_CLAIM).timestamp()))},
                },
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _mark_published(self, download: dict[str, Any]) -> None:
        client("dynamodb").update_item(
            TableName=self._settings.seen_table_name,
            Key={"id": {"S": _claim_id(download)}},
            UpdateExpression="SET #s = :published",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":published": {"S": "published"}},
        )

    def _publish(self, downloads: list[dict[str, Any]], now: datetime) -> int:
        entries = [
            {
                "Source": self._settings.event_source,
                "DetailType": self._settings.event_detail_type,
                "EventBusName": self._settings.event_bus_name,
                "Time": now,
                "Detail": json.dumps(
                    {
                        "download_id": d["id"],
                        "name": d.get("name"),
                        "created_at": d.get("created_at"),
                        "reason": "found in error status by the videodb-retry sweeper",
                    }
                ),
            }
            for d in downloads
        ]
        answer = client("events").put_events(Entries=entries)
        failed = [d for d, e in zip(downloads, answer.get("Entries", []), strict=False) if e.get("ErrorCode")]
        for download in downloads:
            if download in failed:
                self._forget(download)
            else:
                self._mark_published(download)
        if failed:
            raise TransientError(f"{len(failed)} failure events not accepted by EventBridge")
        return len(downloads)

    def _forget(self, download: dict[str, Any]) -> None:
        # The event did not go out: drop the claim so the next run publishes it.
        client("dynamodb").delete_item(
            TableName=self._settings.seen_table_name,
            Key={"id": {"S": _claim_id(download)}},
        )


def _claim_id(download: dict[str, Any]) -> str:
    return f"sweeper#{download['id']}#{download.get('created_at', '')}"
