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


@dataclass(frozen=True)
class FailedDownload:
    """One failure to publish: a download in error status, with a valid id, in the window."""

    download_id: str
    created_at: str  # as VideoDB listed it (it parsed as ISO 8601)
    name: Any = None  # as VideoDB listed it; carried into the event unchanged

    @classmethod
    def from_listing(cls, download: dict[str, Any]) -> FailedDownload:
        """Read one entry of ``GET /download`` (its ``id`` already checked as a download id)."""
        return cls(
            download_id=str(download["id"]),
            created_at=download.get("created_at", ""),
            name=download.get("name"),
        )

    @property
    def claim_id(self) -> str:
        """The key of this failure's claim: one per download and creation time."""
        return f"sweeper#{self.download_id}#{self.created_at}"

    def detail(self) -> dict[str, Any]:
        """The "download failed" event's detail."""
        return {
            "download_id": self.download_id,
            "name": self.name,
            "created_at": self.created_at,
            "reason": "found in error status by the videodb-retry sweeper",
        }


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
        pending: list[FailedDownload] = []
        for download in failed_downloads(self._videodb, since, self._page_size):
            report.failed_in_window += 1
            if not is_valid_download_id(download.get("id")):
                report.skipped_invalid += 1
                continue
            failure = FailedDownload.from_listing(download)
            if not self._claim(failure, now):
                report.already_published += 1
                continue
            pending.append(failure)
            if len(pending) == EVENTS_PER_PUT:
                report.published += self._publish(pending, now)
                pending = []
        if pending:
            report.published += self._publish(pending, now)
        return report

    def _claim(self, failure: FailedDownload, now: datetime) -> bool:
        """Claim this failure for publishing; False if an earlier run published it.

        A claim is written as ``pending`` and marked ``published`` after PutEvents: a run that
        died in between leaves a stale pending claim, which a later run takes over, so a
        failure is neither lost nor published twice by runs that complete.
        """
        # Kept a little longer than the window, so a failure can never come back into view.
        expires = now + timedelta(hours=self._lookback_hours * 2 + 1)
        return self._claims.claim(failure.claim_id, now, expires, stale_before=now - STALE_CLAIM)

    def _publish(self, failures: list[FailedDownload], now: datetime) -> int:
        codes = self._events.put([failure.detail() for failure in failures], now)
        failed = 0
        for failure, code in zip(failures, codes, strict=True):
            if code:
                # The event did not go out: drop the claim so the next run publishes it.
                self._claims.forget(failure.claim_id)
                failed += 1
            else:
                self._claims.mark_published(failure.claim_id)
        if failed:
            raise TransientError(f"{failed} failure events not accepted by EventBridge")
        return len(failures)
