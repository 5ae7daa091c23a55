"""The failure sweeper: VideoDB has no failure webhook for downloads, so find them by listing.

Lists ``GET /download`` page by page, keeps downloads in ``error`` status created within the
look-back window, and publishes one "download failed" event for each: once across runs,
remembered in DynamoDB with a conditional write (``sweeper_aws``: the claims and the events).

A run does bounded work (``max_pages`` pages, and no page started with less than
``TIME_RESERVE_SECONDS`` of the function's time left) and a *pass* over the list may take
several runs: the cursor (sweep_cursor.py, stored through
:class:`~videodb_retry.ports.SweepCursors`) says where the next run resumes. VideoDB does not
document the list's order (spec/NOTES.md, "The download list's order"): a pass stops at the
look-back edge only while every record it read so far came newest first, and otherwise pages
on to the end of the list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from videodb_retry.errors import RequestDeferred, TransientError
from videodb_retry.ports import FailureClaims, FailureEvents, SweepCursors, VideoDB
from videodb_retry.rules.messages import is_valid_download_id
from videodb_retry.rules.status import JobState, map_status
from videodb_retry.rules.sweep_cursor import Anchor, SweepCursor, resumed_page_holds_anchor
from videodb_retry.settings import Settings

PAGE_SIZE = 5000  # GET /download's documented maximum `count`: fewest calls per download listed
MAX_PAGES_PER_RUN = 50  # 250,000 downloads a run; a longer pass goes on in the next run
# No page is started with less of the function's time left: one page call (3 s connect +
# 10 s read, and one re-read of the key on a 401), its claims and its PutEvents calls.
TIME_RESERVE_SECONDS = 60.0
EVENTS_PER_PUT = 10  # PutEvents takes at most 10 entries
STALE_CLAIM = timedelta(minutes=15)  # longer than a sweep can run (the function's timeout)
# EventBridge Scheduler starts a run every SweepRateMinutes whether or not the last one has
# ended; a run that outlived the rate would run beside the next (two sweeper executions where
# the concurrency budget counts one, two runs moving one cursor). A run therefore ends this long
# before the next may start (the schedule's flexible time window is off: runs start on time).
SCHEDULE_SLACK_SECONDS = 30.0


class RunWindow:
    """The time a sweep run may still take: its invocation's time left, and never past the
    next scheduled run (``rate_minutes`` after this one started, less ``SCHEDULE_SLACK_SECONDS``).

    It reads like a Lambda context (``get_remaining_time_in_millis``) for the request budget's
    ``TimeLeft``, and ``seconds_left`` is :meth:`Sweeper.sweep`'s ``time_left``.
    """

    def __init__(self, context: Any, rate_minutes: float, clock: Callable[[], float]) -> None:
        self._context = context
        self._clock = clock
        self._ends_at = clock() + rate_minutes * 60 - SCHEDULE_SLACK_SECONDS

    def seconds_left(self) -> float:
        """Seconds the run may still take."""
        own = self._context.get_remaining_time_in_millis() / 1000
        return max(0.0, min(own, self._ends_at - self._clock()))

    def get_remaining_time_in_millis(self) -> int:
        """``seconds_left`` in milliseconds, as a Lambda context gives its own."""
        return int(self.seconds_left() * 1000)


# Why a run ended (SweepReport.stopped).
STOP_LOOKBACK = "lookback"  # newest first, and the page reached the look-back edge: pass done
STOP_END = "end"  # a short page: the list's end, pass done
STOP_PAGES = "pages"  # max_pages read; the pass goes on next run
STOP_TIME = "time"  # too little time left for a page; the pass goes on next run
STOP_ERROR = "error"  # a call failed; the pass goes on next run from the last page finished
STOP_BUDGET = "budget"  # the shared request budget had no token in time; the pass goes on next run


@dataclass
class SweepReport:
    """What one sweep found and did."""

    failed_in_window: int = 0
    published: int = 0
    already_published: int = 0
    skipped_invalid: int = 0
    pages: int = 0  # GET /download calls
    listed: int = 0  # records those pages held
    first_page: int = 0  # the page_index the run started on
    stopped: str = ""  # STOP_*
    pass_complete: bool = False
    pass_restarted: bool = False  # a resumed page no longer held the anchor: back to page 0


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


@dataclass
class PageReading:
    """One page read against the window and the order seen so far in the pass."""

    failures: list[dict[str, Any]]  # in error and created inside the window
    newest_first: bool  # still no record newer than one before it
    descended: bool  # some record older than one before it: the order has shown itself
    past_edge: bool  # a record created before the window
    last_created: datetime | None  # the page's last readable created_at (order tracking)


def read_page(
    page: list[dict[str, Any]],
    since: datetime,
    newest_first: bool,
    previous: datetime | None,
    seen_before: frozenset[str] = frozenset(),
    descended: bool = False,
) -> PageReading:
    """Read one page: its failures in the window, and whether the pass is still newest first.

    ``previous`` is the last ``created_at`` read before this page in the same run;
    ``seen_before`` the ids of the page before it, which new downloads at the head may have
    pushed into this one: they say nothing about the order. Unreadable times are skipped.
    ``descended`` says the pass has seen a record older than one before it: one record, or
    records of one time, are in every order at once and prove nothing.
    """
    failures: list[dict[str, Any]] = []
    past_edge = False
    for download in page:
        created = parse_created_at(download.get("created_at"))
        if created is None:
            continue
        if download.get("id") not in seen_before:
            if previous is not None and created > previous:
                newest_first = False
            descended = descended or (previous is not None and created < previous)
            previous = created
        if created < since:
            past_edge = True
        elif map_status(download.get("status")) is JobState.FAILED:
            failures.append(download)
    return PageReading(failures, newest_first, descended, past_edge, previous)


def parse_created_at(value: object) -> datetime | None:
    """An ISO 8601 ``created_at`` as an aware datetime (UTC when no zone is given)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def anchor_of(page: list[dict[str, Any]]) -> Anchor | None:
    """The page's last record, as the anchor a resumed pass looks for."""
    if not page:
        return None
    last = page[-1]
    return Anchor(str(last.get("id", "")), parse_created_at(last.get("created_at")))


class Sweeper:
    """Publishes one "download failed" event per failed download, once across runs."""

    def __init__(
        self,
        videodb: VideoDB,
        settings: Settings,
        claims: FailureClaims,
        events: FailureEvents,
        cursors: SweepCursors,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES_PER_RUN,
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
        if not 1 <= page_size <= PAGE_SIZE or max_pages < 2:
            # A resumed run spends its first page on the overlap: one page a run never advances.
            raise ValueError(f"page_size must be 1-{PAGE_SIZE} and max_pages at least 2")
        self._videodb = videodb
        self._lookback = timedelta(hours=settings.sweep_lookback_hours)
        self._claims = claims
        self._events = events
        self._cursors = cursors
        self._page_size = page_size
        self._max_pages = max_pages
        self._stored = SweepCursor()  # the cursor as last stored by this run

    def sweep(self, now: datetime, time_left: Callable[[], float] | None = None) -> SweepReport:
        """Run one sweep at time ``now`` and report the counts.

        ``time_left()`` is the seconds the run may still take (the Lambda context's); the run
        starts no page with less than ``TIME_RESERVE_SECONDS`` left. The cursor is stored
        after every page, so a run killed mid-page repeats that page only.
        """
        report = SweepReport()
        self._stored = self._cursors.load() or SweepCursor()
        try:
            cursor = self._run(now, time_left, self._stored, report)
        except Exception:
            # The run is recorded as failed (videodb-retry check shows it); the pass resumes
            # after the last page finished.
            report.stopped = STOP_ERROR
            self._save(self._stored, now, report)
            raise
        self._save(cursor, now, report)
        return report

    def _run(
        self,
        now: datetime,
        time_left: Callable[[], float] | None,
        cursor: SweepCursor,
        report: SweepReport,
    ) -> SweepCursor:
        """Read pages until the pass ends or the run's bound; returns the cursor to store."""
        since = now - self._lookback
        page_index = report.first_page = cursor.resume_page()
        resuming = cursor.in_pass
        previous: datetime | None = None
        seen_before: frozenset[str] = frozenset()
        while True:
            if report.pages >= self._max_pages:
                report.stopped = STOP_PAGES
                return cursor
            if time_left is not None and time_left() < TIME_RESERVE_SECONDS:
                report.stopped = STOP_TIME
                return cursor
            try:
                page = self._videodb.list_downloads(page_index=page_index, count=self._page_size)
            except RequestDeferred:
                # Our own request budget, not a failure: nothing was sent, the pass resumes
                # next run (an error here would fire the errors alarm on ordinary load).
                report.stopped = STOP_BUDGET
                return cursor
            report.pages += 1
            report.listed += len(page)
            newest_first = cursor.newest_first if cursor.in_pass else True
            descended = cursor.descended if cursor.in_pass else False
            if resuming:
                resuming = False
                first = parse_created_at(page[0].get("created_at")) if page else None
                ids = [str(d.get("id")) for d in page]
                if not resumed_page_holds_anchor(cursor.anchor, ids, first, newest_first):
                    report.pass_restarted = True
                    cursor, page_index = cursor.pass_done(), 0
                    continue
            reading = read_page(page, since, newest_first, previous, seen_before, descended)
            if not self._publish_all(reading.failures, now, report, time_left):
                report.stopped = STOP_TIME
                return cursor
            at_edge = reading.newest_first and reading.descended and reading.past_edge
            if at_edge or len(page) < self._page_size:
                report.stopped = STOP_LOOKBACK if at_edge else STOP_END
                report.pass_complete = True
                return cursor.pass_done()
            cursor = cursor.advanced(
                page_index, anchor_of(page), reading.newest_first, reading.descended, now
            )
            self._cursors.save(cursor, self._expiry(now))
            self._stored = cursor
            page_index += 1
            previous, seen_before = reading.last_created, frozenset(str(d.get("id")) for d in page)

    def _publish_all(
        self,
        downloads: list[dict[str, Any]],
        now: datetime,
        report: SweepReport,
        time_left: Callable[[], float] | None,
    ) -> bool:
        """Claim and publish a page's failures; False when time ran short before the end."""
        pending: list[FailedDownload] = []
        for download in downloads:
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
                if time_left is not None and time_left() < TIME_RESERVE_SECONDS / 2:
                    return False  # the page is read again next run; its claims hold what went out
        if pending:
            report.published += self._publish(pending, now)
        return True

    def _claim(self, failure: FailedDownload, now: datetime) -> bool:
        """Claim this failure for publishing; False if an earlier run published it.

        A claim is written as ``pending`` and marked ``published`` after PutEvents: a run that
        died in between leaves a stale pending claim, which a later run takes over, so a
        failure is neither lost nor published twice by runs that complete.
        """
        return self._claims.claim(failure.claim_id, now, self._expiry(now), stale_before=now - STALE_CLAIM)

    def _expiry(self, now: datetime) -> datetime:
        # Kept a little longer than the window, so a failure can never come back into view.
        return now + self._lookback * 2 + timedelta(hours=1)

    def _save(self, cursor: SweepCursor, now: datetime, report: SweepReport) -> None:
        self._cursors.save(cursor.ran(now, asdict(report)), self._expiry(now))

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
