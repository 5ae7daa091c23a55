"""How the failure sweeper scales: runs against a sandbox holding a large account's downloads.

``python -m videodb_retry_local.load.sweep_scale --downloads 1000000`` lists a generated account
(sandbox_population.py: a download every 30 s, every 50th in ``error``) through the real
sweeper, VideoDB client and DynamoDB/EventBridge adapters (AWS in moto, strict limits), one
scheduled run after another on a simulated clock, with new downloads arriving between runs
so the list shifts under the cursor. For each list order it prints each run's calls (VideoDB
pages, AWS calls), its time and why it stopped, then whether every ``error`` download inside
the look-back was published exactly once. ``tests/integration/test_sweeper.py`` runs the
same measurement at 50,000 downloads and checks its counts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.client import BaseClient
from moto import mock_aws
from videodb_retry.adapters import aws_clients
from videodb_retry.adapters.sweeper_aws import DynamoDBClaims, DynamoDBSweepCursors, EventBridgeFailureEvents
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.settings import Settings
from videodb_retry.steps.sweeper import MAX_PAGES_PER_RUN, PAGE_SIZE, Sweeper

from videodb_retry_local.stack.aws_limits import strict_aws
from videodb_retry_local.stack.moto_env import FAKE_CREDENTIALS
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer
from videodb_retry_local.videodb_sandbox.sandbox_population import ORDERS, Population

KEY = "sk-sweep-scale"
TABLE = "sweep-scale-state"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MAX_RUNS = 60  # every measurement ends: a pass over 1,000,000 downloads needs 5 runs


@dataclass(frozen=True)
class Plan:
    """One measurement: the account, the sweeper's bounds and the schedule."""

    downloads: int
    order: str = "newest-first"
    page_size: int = PAGE_SIZE
    max_pages: int = MAX_PAGES_PER_RUN
    lookback_hours: float = 24.0
    rate_minutes: int = 15
    spacing_seconds: int = 30  # one new download every 30 s: 30 arrive between runs
    error_every: int = 50
    runs_with_arrivals: int = 3  # then runs with none, until a pass ends after the last


@dataclass
class Run:
    """One scheduled run: what the sweeper reported and what it cost."""

    report: dict[str, Any]
    videodb_calls: int
    aws_calls: Counter[str]
    seconds: float


@dataclass
class Result:
    """All runs of a plan, and the check: each failure in the window published exactly once."""

    plan: Plan
    runs: list[Run] = field(default_factory=list)
    published: Counter[str] = field(default_factory=Counter)
    expected: set[str] = field(default_factory=set)

    @property
    def missed(self) -> set[str]:
        """Failures inside the look-back at the last run that were never published."""
        return self.expected - set(self.published)

    @property
    def duplicates(self) -> set[str]:
        """Failures published more than once."""
        return {download_id for download_id, times in self.published.items() if times > 1}


@contextlib.contextmanager
def counted_aws_calls() -> Iterator[Counter[str]]:
    """Count every AWS API call by operation name while inside."""
    calls: Counter[str] = Counter()
    original = BaseClient._make_api_call

    def counting(client: Any, operation: str, params: dict[str, Any]) -> Any:
        calls[operation] += 1
        return original(client, operation, params)

    BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


class RecordingEvents(EventBridgeFailureEvents):
    """The real PutEvents adapter, keeping each detail EventBridge accepted."""

    def __init__(self, source: str, detail_type: str, event_bus_name: str) -> None:
        super().__init__(source, detail_type, event_bus_name)
        self.accepted: list[dict[str, Any]] = []

    def put(self, details: Sequence[dict[str, Any]], time: datetime) -> list[str | None]:
        """Put, and keep what went out."""
        codes = super().put(details, time)
        self.accepted += [detail for detail, code in zip(details, codes, strict=True) if not code]
        return codes


def measure(plan: Plan) -> Result:
    """Run the sweeper on schedule against a generated account of ``plan.downloads``.

    New downloads arrive before each of the first ``runs_with_arrivals`` runs after the
    first; then runs go on until two passes have ended, the second wholly after the last
    arrival, so every failure of the final window has had a full pass to be found.
    """
    result = Result(plan)
    spacing = timedelta(seconds=plan.spacing_seconds)
    interval = timedelta(minutes=plan.rate_minutes)
    population = Population(plan.downloads, START - spacing, spacing, plan.error_every, plan.order)
    with _local_aws(), SandboxServer(api_key=KEY) as sandbox:
        sandbox.populate(population)
        settings = Settings(
            api_base_url=sandbox.base_url,
            sweep_lookback_hours=plan.lookback_hours,
            failure_event_source="videodb",
            failure_event_detail_type="Download Failed",
            sweep_table_name=TABLE,
        )
        events = RecordingEvents("videodb", "Download Failed", "default")
        sweeper = Sweeper(
            VideoDBClient(settings, _Key()),
            settings,
            claims=DynamoDBClaims(TABLE),
            events=events,
            cursors=DynamoDBSweepCursors(TABLE),
            page_size=plan.page_size,
            max_pages=plan.max_pages,
        )
        now, passes_after_arrivals = START, 0
        for number in range(MAX_RUNS):
            if 0 < number <= plan.runs_with_arrivals:
                population.grow(int(interval / spacing))
            run = _one_run(sweeper, sandbox, now)
            result.runs.append(run)
            if number >= plan.runs_with_arrivals and run.report["pass_complete"]:
                passes_after_arrivals += 1
                if passes_after_arrivals == 2:
                    break
            now += interval
        result.published = Counter(detail["download_id"] for detail in events.accepted)
        since = now - timedelta(hours=plan.lookback_hours)
        result.expected = {
            population.download_id(index)
            for index in range(population.count)
            if population.status(index) == "error" and population.created(index) >= since
        }
    return result


def _one_run(sweeper: Sweeper, sandbox: SandboxServer, now: datetime) -> Run:
    """One scheduled run, with a Lambda's 300 s to spend, and what it cost."""
    listed_before = len(sandbox.requests)
    started = time.monotonic()

    def time_left() -> float:
        return 300.0 - (time.monotonic() - started)

    with counted_aws_calls() as calls:
        report = sweeper.sweep(now=now, time_left=time_left)
    seconds = time.monotonic() - started
    return Run(asdict(report), len(sandbox.requests) - listed_before, calls, seconds)


@contextlib.contextmanager
def _local_aws() -> Iterator[None]:
    """moto with strict AWS limits, fake credentials, and the state table."""
    saved = {name: os.environ.get(name) for name in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    try:
        with mock_aws(), strict_aws():
            aws_clients.client.cache_clear()
            boto3.client("dynamodb").create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            yield
    finally:
        aws_clients.client.cache_clear()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Key:
    def __call__(self) -> str:
        return KEY

    def refresh(self) -> str:
        return KEY


def table(result: Result) -> list[str]:
    """The runs as a Markdown table, then the verdict."""
    plan = result.plan
    lines = [
        f"{plan.downloads:,} downloads, {plan.order}, pages of {plan.page_size}, at most "
        f"{plan.max_pages} pages a run, look-back {plan.lookback_hours:g} h, "
        f"a run every {plan.rate_minutes} min",
        "",
        "| run | first page | GET /download | listed | published | already | stopped | AWS calls | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for number, run in enumerate(result.runs, 1):
        r = run.report
        aws = ", ".join(f"{name} {n}" for name, n in sorted(run.aws_calls.items()))
        lines.append(
            f"| {number} | {r['first_page']} | {run.videodb_calls} | {r['listed']:,} | {r['published']} "
            f"| {r['already_published']} | {r['stopped']} | {aws} | {run.seconds:.2f} |"
        )
    lines += [
        "",
        f"failures inside the look-back at the last run: {len(result.expected)}; published: "
        f"{len(result.published)}; missed: {len(result.missed)}; published twice: {len(result.duplicates)}",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure each order; exit 1 if any failure was missed or published twice."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--downloads", type=int, default=1_000_000, help="downloads in the account")
    parser.add_argument("--order", choices=[*ORDERS, "both"], default="both", help="the list's order")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--max-pages", type=int, default=MAX_PAGES_PER_RUN, help="pages a run reads at most")
    args = parser.parse_args(argv)
    if not 1 <= args.downloads <= 10_000_000:
        parser.error("--downloads must be 1 to 10,000,000")
    if not 1 <= args.page_size <= PAGE_SIZE or args.max_pages < 2:
        parser.error(f"--page-size must be 1 to {PAGE_SIZE} and --max-pages at least 2")
    ok = True
    for order in ORDERS if args.order == "both" else (args.order,):
        result = measure(Plan(args.downloads, order, args.page_size, args.max_pages))
        print("\n".join(table(result)) + "\n", flush=True)
        ok = ok and not result.missed and not result.duplicates
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
