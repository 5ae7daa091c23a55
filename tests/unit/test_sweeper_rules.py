"""The sweeper's rules with in-memory ports: where a pass stops, how a run is bounded, how a
resumed pass finds its place while the list shifts, and that no failure is missed or
published twice across runs (properties over arrivals, deletions, status changes, orders,
page sizes and run bounds)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from videodb_retry.errors import RequestDeferred
from videodb_retry.rules.sweep_cursor import Anchor, SweepCursor
from videodb_retry.settings import Settings
from videodb_retry.steps.sweeper import (
    SCHEDULE_SLACK_SECONDS,
    STOP_BUDGET,
    STOP_END,
    STOP_LOOKBACK,
    STOP_PAGES,
    STOP_TIME,
    RunWindow,
    Sweeper,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LOOKBACK_HOURS = 1.0
few = settings(max_examples=80, deadline=None)


@dataclass
class Listing:
    """``GET /download`` over an in-memory list; newest first (arrivals at the head) or not."""

    newest_first: bool = True
    records: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[int, int]] = field(default_factory=list)
    ids: itertools.count = field(default_factory=itertools.count)

    def arrive(self, created: datetime, status: str) -> str:
        record = {"id": f"dl-{next(self.ids)}", "status": status, "created_at": created.isoformat()}
        if self.newest_first:
            self.records.insert(0, record)
        else:
            self.records.append(record)
        return record["id"]

    def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, Any]]:
        self.calls.append((page_index, count))
        return [dict(r) for r in self.records[page_index * count : (page_index + 1) * count]]

    def retry_download(self, download_id: str) -> Any:
        raise AssertionError("the sweeper never retries")

    def get_job(self, output_url: str, download_id: str | None = None) -> Any:
        raise AssertionError("the sweeper never polls")

    def followable_url(self, url: str) -> str:
        return url

    def is_on_api_origin(self, url: str) -> bool:
        return True


class Claims:
    def __init__(self) -> None:
        self.state: dict[str, str] = {}

    def claim(self, claim_id: str, now: datetime, expires: datetime, stale_before: datetime) -> bool:
        if claim_id in self.state:
            return False
        self.state[claim_id] = "pending"
        return True

    def mark_published(self, claim_id: str) -> None:
        self.state[claim_id] = "published"

    def forget(self, claim_id: str) -> None:
        self.state.pop(claim_id, None)


class Events:
    def __init__(self) -> None:
        self.published: Counter[str] = Counter()

    def put(self, details: Sequence[dict[str, Any]], time: datetime) -> list[str | None]:
        self.published.update(d["download_id"] for d in details)
        return [None] * len(details)


class Cursors:
    def __init__(self) -> None:
        self.cursor: SweepCursor | None = None
        self.saves = 0

    def load(self) -> SweepCursor | None:
        return self.cursor

    def save(self, cursor: SweepCursor, expires: datetime) -> None:
        self.cursor, self.saves = cursor, self.saves + 1


SETTINGS = Settings(
    sweep_lookback_hours=LOOKBACK_HOURS,
    failure_event_source="videodb",
    failure_event_detail_type="Download Failed",
    sweep_table_name="state",
)


def make(listing: Listing, page_size: int = 3, max_pages: int = 50) -> tuple[Sweeper, Events, Cursors]:
    events, cursors = Events(), Cursors()
    sweeper = Sweeper(listing, SETTINGS, Claims(), events, cursors, page_size=page_size, max_pages=max_pages)
    return sweeper, events, cursors


def ages(listing: Listing, minutes: Sequence[int], status: str = "error") -> None:
    """Records ``minutes`` old, oldest arriving first."""
    for age in sorted(minutes, reverse=True):
        listing.arrive(NOW - timedelta(minutes=age), status)


def test_newest_first_stops_at_the_page_that_crosses_the_lookback():
    listing = Listing()
    ages(listing, range(5, 200, 10))  # 20 records, 6 inside the hour (5-55 min old)
    sweeper, events, _ = make(listing, page_size=4)
    report = sweeper.sweep(NOW)
    assert [page for page, _ in listing.calls] == [0, 1]  # page 1 holds 45-75 min: the edge
    assert (report.stopped, report.pass_complete, report.published) == (STOP_LOOKBACK, True, 6)
    assert set(events.published) == {f"dl-{n}" for n in range(14, 20)}


def test_a_record_out_of_order_turns_the_early_stop_off_for_the_pass():
    listing = Listing()
    ages(listing, range(0, 200, 10))
    listing.records[7], listing.records[8] = listing.records[8], listing.records[7]  # one swap
    old_failure = listing.arrive(NOW - timedelta(minutes=5), "error")  # at the head
    listing.records.append(listing.records.pop(0))  # ...moved to the end: not newest first
    sweeper, events, _ = make(listing, page_size=3)
    report = sweeper.sweep(NOW)
    assert report.stopped == STOP_END and len(listing.calls) == 8  # 21 records: every page, and past
    assert old_failure in events.published


@pytest.mark.parametrize("ages_in_order", [[61, 0], [61, 61, 0]])
def test_records_of_one_time_prove_no_order(ages_in_order):
    # Oldest first, but page 0 holds one record (or two of one time) past the edge: that is
    # every order at once, so the pass reads on (found by the property below).
    listing = Listing(newest_first=False)
    for age in ages_in_order:
        listing.arrive(NOW - timedelta(minutes=age), "error")
    sweeper, events, _ = make(listing, page_size=len(ages_in_order) - 1)
    report = sweeper.sweep(NOW)
    assert report.stopped == STOP_END and f"dl-{len(ages_in_order) - 1}" in events.published


def test_a_run_reads_at_most_max_pages_and_the_next_resumes_one_page_back():
    listing = Listing(newest_first=False)
    ages(listing, range(0, 40, 2))  # 20 records, oldest first, all inside the hour
    sweeper, events, cursors = make(listing, page_size=3, max_pages=3)
    first = sweeper.sweep(NOW)
    assert (first.stopped, [p for p, _ in listing.calls]) == (STOP_PAGES, [0, 1, 2])
    assert cursors.cursor is not None and cursors.cursor.next_page == 3
    listing.calls.clear()
    second = sweeper.sweep(NOW + timedelta(minutes=1))
    assert [p for p, _ in listing.calls] == [2, 3, 4] and second.first_page == 2
    assert second.already_published == 3  # page 2 again: claimed, not published twice
    assert max(events.published.values()) == 1


def test_a_run_starts_no_page_without_time_left():
    listing = Listing()
    ages(listing, [1, 2])
    sweeper, _, cursors = make(listing)
    report = sweeper.sweep(NOW, time_left=lambda: 59.0)
    assert (report.stopped, report.pages, listing.calls) == (STOP_TIME, 0, [])
    assert cursors.cursor is not None and cursors.cursor.last_run["stopped"] == STOP_TIME


def test_time_running_short_mid_page_leaves_the_page_to_the_next_run():
    listing = Listing()
    ages(listing, range(1, 25))  # 24 failures on one page
    sweeper, events, _ = make(listing, page_size=30)
    left = iter([100.0, 100.0, 10.0])  # before the page, after 10 published, after 20
    report = sweeper.sweep(NOW, time_left=lambda: next(left))
    assert (report.stopped, report.published, report.pass_complete) == (STOP_TIME, 20, False)
    again = sweeper.sweep(NOW + timedelta(minutes=1))
    assert (again.published, again.already_published, again.pass_complete) == (4, 20, True)
    assert len(events.published) == 24 and max(events.published.values()) == 1


def test_a_resumed_page_without_its_anchor_starts_the_pass_over():
    listing = Listing(newest_first=False)
    ages(listing, range(0, 40, 2))
    sweeper, _, _ = make(listing, page_size=3, max_pages=3)
    sweeper.sweep(NOW)
    del listing.records[:7]  # more than a page deleted before the anchor (the 9th record)
    listing.calls.clear()
    report = sweeper.sweep(NOW + timedelta(minutes=1))
    assert report.pass_restarted and [p for p, _ in listing.calls] == [2, 0, 1]


def test_a_failing_page_call_records_the_run_as_failed_and_keeps_the_cursor():
    listing = Listing(newest_first=False)
    ages(listing, range(0, 40, 2))
    sweeper, _, cursors = make(listing, page_size=3, max_pages=2)
    sweeper.sweep(NOW)
    saved = cursors.cursor
    assert saved is not None

    def broken(page_index: int = 0, count: int = 100) -> list[dict[str, Any]]:
        raise RuntimeError("VideoDB answered 503")

    listing.list_downloads = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        sweeper.sweep(NOW + timedelta(minutes=1))
    assert cursors.cursor is not None and cursors.cursor.next_page == saved.next_page
    assert cursors.cursor.last_run["stopped"] == "error"


def test_a_spent_request_budget_ends_the_run_in_order_and_the_next_run_resumes():
    # Our own budget (RequestDeferred: nothing sent) is load, not a failure: the run ends
    # without raising (no errors alarm), the cursor stays, and the pass goes on next run.
    listing = Listing(newest_first=False)
    ages(listing, range(0, 40, 2))
    sweeper, events, cursors = make(listing, page_size=3, max_pages=2)
    sweeper.sweep(NOW)
    saved = cursors.cursor
    assert saved is not None
    real = listing.list_downloads

    def spent(page_index: int = 0, count: int = 100) -> list[dict[str, Any]]:
        raise RequestDeferred("sweep")

    listing.list_downloads = spent  # type: ignore[method-assign]
    report = sweeper.sweep(NOW + timedelta(minutes=1))
    assert report.stopped == STOP_BUDGET and report.pages == 0
    assert cursors.cursor is not None and cursors.cursor.next_page == saved.next_page
    listing.list_downloads = real  # type: ignore[method-assign]
    for minute in range(2, 30):
        if sweeper.sweep(NOW + timedelta(minutes=minute)).pass_complete:
            break
    assert set(events.published) == {r["id"] for r in listing.records if r["status"] == "error"}
    assert max(events.published.values()) == 1


def test_one_page_a_run_is_refused_it_would_never_advance():
    with pytest.raises(ValueError, match="max_pages at least 2"):
        make(Listing(), max_pages=1)


def test_the_anchor_check():
    from videodb_retry.rules.sweep_cursor import resumed_page_holds_anchor

    anchor = Anchor("dl-9", NOW)
    assert resumed_page_holds_anchor(None, [], None, True)
    assert resumed_page_holds_anchor(anchor, ["dl-1", "dl-9"], NOW, False)
    assert resumed_page_holds_anchor(anchor, ["dl-1"], NOW + timedelta(seconds=1), True)
    assert not resumed_page_holds_anchor(anchor, ["dl-1"], NOW + timedelta(seconds=1), False)
    assert not resumed_page_holds_anchor(anchor, ["dl-1"], NOW, True)  # a tie proves nothing


# -- properties: nothing missed, nothing published twice, whatever happens between runs ------

change = st.tuples(
    st.integers(0, 6),  # arrivals
    st.integers(0, 4),  # deletions
    st.integers(0, 3),  # records turning to error
)


@few
@given(
    newest_first=st.booleans(),
    initial=st.lists(
        st.tuples(st.integers(0, 150), st.sampled_from(["error", "done", "processing"])), max_size=40
    ),
    page_size=st.integers(1, 6),
    max_pages=st.integers(2, 4),
    changes=st.lists(change, max_size=8),
    seed=st.randoms(use_true_random=False),
)
def test_every_failure_in_the_window_is_published_exactly_once(
    newest_first, initial, page_size, max_pages, changes, seed
):
    listing = Listing(newest_first=newest_first)
    for age, status in sorted(initial, reverse=True):
        listing.arrive(NOW - timedelta(minutes=age), status)
    sweeper, events, _ = make(listing, page_size, max_pages)
    now = NOW
    for arrivals, deletions, turned in changes:
        sweeper.sweep(now)
        now += timedelta(minutes=2)
        for _ in range(arrivals):
            listing.arrive(now - timedelta(seconds=seed.randint(0, 59)), seed.choice(["error", "done"]))
        for _ in range(min(deletions, len(listing.records))):
            listing.records.pop(seed.randrange(len(listing.records)))
        for record in seed.sample(listing.records, min(turned, len(listing.records))):
            record["status"] = "error"
    # Then runs with no change, until two passes have ended.
    passes = 0
    for _ in range(200):
        passes += sweeper.sweep(now).pass_complete
        if passes == 2:
            break
    assert passes == 2
    since = now - timedelta(hours=LOOKBACK_HOURS)
    in_window = {
        r["id"]
        for r in listing.records
        if r["status"] == "error" and datetime.fromisoformat(r["created_at"]) >= since
    }
    assert in_window <= set(events.published)
    assert not [i for i, times in events.published.items() if times > 1]


@dataclass
class Context:
    """A Lambda context whose time left runs on ``clock``."""

    clock: list[float]
    timeout: float = 300.0

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout - self.clock[0]) * 1000)


@pytest.mark.parametrize("rate_minutes", [2, 3, 5, 15])
def test_a_run_ends_before_the_next_scheduled_run_starts(rate_minutes: int) -> None:
    """Scheduler starts a run every rate whether or not the last ended: with a 300 s function
    and pages of 20 s, a run at rate 2 stops in time for the next (the window is the rate less
    SCHEDULE_SLACK_SECONDS), and at 15 it runs to its own time limit."""
    clock = [0.0]
    listing = Listing(newest_first=False)
    ages(listing, range(0, 60, 1))  # 60 failures, 3 a page: never the list's end in one run

    class Slow(Listing):
        def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, Any]]:
            clock[0] += 20.0
            return listing.list_downloads(page_index, count)

    events, cursors = Events(), Cursors()
    sweeper = Sweeper(Slow(), SETTINGS, Claims(), events, cursors, page_size=3, max_pages=50)
    run = RunWindow(Context(clock), rate_minutes, clock=lambda: clock[0])
    assert run.seconds_left() == min(300.0, rate_minutes * 60 - SCHEDULE_SLACK_SECONDS)
    report = sweeper.sweep(NOW, time_left=run.seconds_left)
    assert report.stopped == STOP_TIME
    assert clock[0] <= min(300.0, rate_minutes * 60 - SCHEDULE_SLACK_SECONDS)
    assert run.get_remaining_time_in_millis() == int(run.seconds_left() * 1000)
    # Every page read was started with the reserve left, so it ended inside the window.
    assert report.pages == len(listing.calls) >= 1
