"""The sandbox's generated downloads: pages made from an index, the same as if every record
were held, merged with ordinary records, and answered by every endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from videodb_retry_local.videodb_sandbox.sandbox_downloads import ScriptedDownloads
from videodb_retry_local.videodb_sandbox.sandbox_population import (
    NEWEST_FIRST,
    OLDEST_FIRST,
    ORDERS,
    Population,
)

NEWEST = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def downloads_with(population: Population) -> ScriptedDownloads:
    downloads = ScriptedDownloads(clock=lambda: 0.0, origin=lambda: "http://127.0.0.1:9")
    downloads.populate(population)
    return downloads


def listed(downloads: ScriptedDownloads, page_index: int, count: int) -> list[dict]:
    answer = downloads.page({"page_index": str(page_index), "count": str(count)})
    assert answer.status == 200
    return answer.body["data"]["downloads"]


@settings(max_examples=60, deadline=None)
@given(
    order=st.sampled_from(ORDERS),
    count=st.integers(0, 40),
    ordinary=st.lists(st.integers(-30, 450), max_size=6),  # seconds before NEWEST
    taken=st.lists(st.integers(0, 39), max_size=5),
    page_size=st.integers(1, 9),
)
def test_pages_are_the_whole_list_in_order_cut_into_pages(order, count, ordinary, taken, page_size):
    population = Population(count, NEWEST, timedelta(seconds=10), error_every=3, order=order)
    downloads = downloads_with(population)
    for n, seconds in enumerate(ordinary):
        downloads.add(f"plain-{n}", "error", None, NEWEST - timedelta(seconds=seconds))
    for index in taken:
        if index < count:
            downloads.delete({"download_id": population.download_id(index)}, b"")
    whole: list[dict] = []
    page_index = 0
    while page := listed(downloads, page_index, page_size):
        whole += page
        page_index += 1
    assert len(whole) == len(ordinary) + population.listed()
    assert len({d["id"] for d in whole}) == len(whole)
    times = [d["created_at"] for d in whole]
    assert times == sorted(times, reverse=order == NEWEST_FIRST)


def test_a_generated_download_answers_like_any_other_once_touched():
    population = Population(1_000_000, NEWEST, timedelta(seconds=30), error_every=50)
    downloads = downloads_with(population)
    first = listed(downloads, 0, 5000)
    assert len(first) == 5000 and first[0]["id"] == "gen-0999999"
    failed = next(d for d in first if d["status"] == "error")
    assert downloads.get(failed["id"]).body["data"]["status"] == "error"  # GET /download/{id}
    assert downloads.retry(failed["id"]).status == 200  # a retry job starts
    assert downloads.view(failed["id"])["status"] == "done"  # the job took no time
    again = listed(downloads, 0, 5000)
    assert [d["id"] for d in again] == [d["id"] for d in first]  # same place, now an ordinary record
    assert next(d for d in again if d["id"] == failed["id"])["status"] == "done"
    assert downloads.retry("gen-1000000").status == 404  # beyond the population


def test_arrivals_are_newer_and_push_the_list_down():
    population = Population(10, NEWEST, timedelta(seconds=30), order=NEWEST_FIRST)
    downloads = downloads_with(population)
    before = listed(downloads, 0, 3)
    population.grow(2)
    after = listed(downloads, 0, 5)
    assert [d["id"] for d in after[2:]] == [d["id"] for d in before]
    oldest_first = downloads_with(Population(10, NEWEST, timedelta(seconds=30), order=OLDEST_FIRST))
    assert listed(oldest_first, 3, 3)[0]["id"] == "gen-0000009"
