"""The failure sweeper: VideoDB has no failure webhook for downloads, so find them by listing.

Lists every page of ``GET /download``, keeps downloads in ``error`` status created within the
look-back window, and publishes one "download failed" event for each — once across runs,
remembered in DynamoDB with a conditional write (``sweeper_aws``: the claims and the events).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from videodb_retry.errors import TransientError
from videodb_retry.messages import is_valid_download_id
from videodb_retry.ports import FailureClaims, FailureEvents, VideoDB
from videodb_retry.settings import Settings
from videodb_retry.status import JobState, map_status

PAGE_SIZE = 500
MAX_PAGES = 200  # 100,000 downloads: a bound, so one run always ends
EVENTS_PER_PUT = 10  # PutEvents takes at most 10 entries
STALE_CLAIM = timedelta(minutes=15)  # longer than a sweep can run (the function's timeout)


@dataclass
class SweepReport:
    """What one sweep found and did."""

    failed_in_window: int = 0
    published: int = 0
    already_published: int = 0
    skipped_invalid: int = 0


def failed_downloads(
    videodb: VideoDB, since: datetime, page_size: int = PAGE_SIZE
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

    def __init__(
        self,
        videodb: VideoDB,
        settings: Settings,
        claims: FailureClaims,
        events: FailureEvents,
        page_size: int = PAGE_SIZE,
    ) -> None:
        missing = [
            env
            for env, value in (
                ("FAILURE_EVENT_SOURCE", settings.failure_event_source),
                ("FAILURE_EVENT_DETAIL_TYPE", settings.failure_event_detail_type),
                ("STATE_TABLE_NAME", settings.sweep_table_name),
            )
            if not value
        ]
        if missing:
            # Fail at start-up, not after listing every page.
            raise ValueError(f"the sweeper needs the settings {', '.join(missing)}")
        self._videodb = videodb
        self._lookback_hours = settings.sweep_lookback_hours
        self._claims = claims
        self._events = events
        self._page_size = page_size

    def sweep(self, now: datetime) -> SweepReport:
        """Run one sweep at time ``now`` and report the counts."""
        report = SweepReport()
        since = now - timedelta(hours=self._lookback_hours)
        pending: list[dict[str, Any]] = []
        for download in failed_downloads(self._videodb, since, self._page_size):
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
        # Kept a little longer than the window, so a failure can never come back into view.
        expires = now + timedelta(hours=self._lookback_hours * 2 + 1)
        return self._claims.claim(_claim_id(download), now, expires, stale_before=now - STALE_CLAIM)

    def _publish(self, downloads: list[dict[str, Any]], now: datetime) -> int:
        details = [
            {
                "download_id": d["id"],
                "name": d.get("name"),
                "created_at": d.get("created_at"),
                "reason": "found in error status by the videodb-retry sweeper",
            }
            for d in downloads
        ]
        codes = self._events.put(details, now)
        failed = 0
        for download, code in zip(downloads, codes, strict=True):
            if code:
                # The event did not go out: drop the claim so the next run publishes it.
                self._claims.forget(_claim_id(download))
                failed += 1
            else:
                self._claims.mark_published(_claim_id(download))
        if failed:
            raise TransientError(f"{failed} failure events not accepted by EventBridge")
        return len(downloads)


def _claim_id(download: dict[str, Any]) -> str:
    return f"sweeper#{download['id']}#{download.get('created_at', '')}"
