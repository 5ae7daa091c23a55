"""The failure sweeper against the sandbox's paged download listing and moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws
from videodb_retry.adapters import aws_clients
from videodb_retry.adapters.sweeper_aws import DynamoDBClaims, DynamoDBSweepCursors, EventBridgeFailureEvents
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.settings import Settings
from videodb_retry.steps.sweeper import Sweeper

from videodb_retry_local.load.sweep_scale import Plan, measure
from videodb_retry_local.stack.aws_limits import strict_aws
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer
from videodb_retry_local.videodb_sandbox.sandbox_population import NEWEST_FIRST, OLDEST_FIRST

KEY = "sk-sweeper-key"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Key:
    def __call__(self) -> str:
        return KEY

    def refresh(self) -> str:
        return KEY


@pytest.fixture
def aws():
    # The sweeper is a function of the stack: its calls meet AWS's limits too.
    with mock_aws(), strict_aws():
        aws_clients.client.cache_clear()
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="failures")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events = boto3.client("events", region_name="us-east-1")
        events.put_rule(
            Name="failed",
            EventPattern=json.dumps({"source": ["videodb"], "detail-type": ["Download Failed"]}),
        )
        events.put_targets(Rule="failed", Targets=[{"Id": "q", "Arn": queue_arn}])
        yield sqs, queue_url
        aws_clients.client.cache_clear()


def published(sqs, queue_url) -> list[dict]:
    found: list[dict] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def make_sweeper(sandbox: SandboxServer, page_size: int = 7) -> Sweeper:
    settings = Settings(
        api_base_url=sandbox.base_url,
        sweep_lookback_hours=24,
        failure_event_source="videodb",
        failure_event_detail_type="Download Failed",
        event_bus_name="default",
        sweep_table_name="state",
    )
    return Sweeper(
        VideoDBClient(settings, Key()),
        settings,
        claims=DynamoDBClaims(settings.sweep_table_name),
        events=EventBridgeFailureEvents(
            settings.failure_event_source, settings.failure_event_detail_type, settings.event_bus_name
        ),
        cursors=DynamoDBSweepCursors(settings.sweep_table_name),
        page_size=page_size,  # small pages: every run reads several
    )


def test_publishes_each_failure_in_the_window_once_across_runs(aws):
    sqs, queue_url = aws
    with SandboxServer(api_key=KEY) as sandbox:
        for n in range(20):
            status = "error" if n % 2 == 0 else ("done" if n % 4 == 1 else "processing")
            sandbox.add_download(f"download-{n}", status=status, created_at=NOW - timedelta(hours=n * 2))
        sandbox.add_download("download-old", status="error", created_at=NOW - timedelta(days=3))
        sweeper = make_sweeper(sandbox)

        first = sweeper.sweep(now=NOW)
        ids = sorted(e["detail"]["download_id"] for e in published(sqs, queue_url))
        # errors at 0, 4, 8, ..., 20 h are in the 24 h window; 24 h and older are not
        expected = sorted(f"download-{n}" for n in range(0, 13, 2))
        assert ids == expected
        assert first.published == len(expected) and first.already_published == 0
        list_calls = [r for r in sandbox.requests if r.method == "GET" and r.path == "/download"]
        assert all(r.headers["x-access-token"] == KEY for r in list_calls)
        # Newest first: page 1 (14-26 h old) crosses the 24 h edge, so the pass stops there;
        # the two pages after it are never read.
        assert [r.query["page_index"] for r in list_calls] == ["0", "1"]
        assert first.stopped == "lookback" and first.pass_complete

        second = sweeper.sweep(now=NOW + timedelta(minutes=5))
        assert published(sqs, queue_url) == []
        # download-12 (created 24 h before NOW) has left the window by now
        assert second.published == 0 and second.already_published == len(expected) - 1

        sandbox.add_download("download-new", status="error", created_at=NOW + timedelta(minutes=1))
        third = sweeper.sweep(now=NOW + timedelta(minutes=10))
        assert [e["detail"]["download_id"] for e in published(sqs, queue_url)] == ["download-new"]
        assert third.published == 1


def test_a_claim_left_by_a_crashed_run_is_taken_over_later(aws, monkeypatch):
    sqs, queue_url = aws
    with SandboxServer(api_key=KEY) as sandbox:
        sandbox.add_download("download-a", status="error", created_at=NOW - timedelta(hours=1))
        sweeper = make_sweeper(sandbox)

        def crash(*args, **kwargs):
            raise RuntimeError("killed between claim and publish")

        with monkeypatch.context() as patch, pytest.raises(RuntimeError):
            patch.setattr(Sweeper, "_publish", crash)
            sweeper.sweep(now=NOW)

        assert sweeper.sweep(now=NOW + timedelta(minutes=1)).published == 0  # claim still fresh
        assert sweeper.sweep(now=NOW + timedelta(minutes=20)).published == 1  # stale: taken over
        assert [e["detail"]["download_id"] for e in published(sqs, queue_url)] == ["download-a"]


def test_the_events_match_the_failure_rule_and_carry_the_id(aws):
    sqs, queue_url = aws
    with SandboxServer(api_key=KEY) as sandbox:
        sandbox.add_download("download-z", status="error", created_at=NOW)
        make_sweeper(sandbox).sweep(now=NOW)
        (event,) = published(sqs, queue_url)
    assert event["source"] == "videodb" and event["detail-type"] == "Download Failed"
    assert event["detail"]["download_id"] == "download-z"
    assert KEY not in json.dumps(event)


# -- scale: a generated account (sandbox_population), measured by videodb_retry_local.load.sweep_scale --


def test_newest_first_every_run_reads_only_the_window_of_50000_downloads():
    # 24 h at a download every 30 s is 2,880 records: pages 0-2 of 1,000, the third crossing
    # the edge. Listing all 50,000 would be 51 calls a run (the old sweeper: 100 of 500).
    result = measure(Plan(50_000, NEWEST_FIRST, page_size=1000, max_pages=20))
    assert [run.videodb_calls for run in result.runs] == [3] * len(result.runs)
    assert {run.report["stopped"] for run in result.runs} == {"lookback"}
    assert len(result.runs) == 5  # 3 runs with arrivals, then two passes after the last
    assert result.expected and not result.missed and not result.duplicates
    # 30 arrivals a run include an error in the first two: published in their own run.
    assert [run.report["published"] for run in result.runs] == [57, 1, 1, 0, 0]


def test_oldest_first_pages_on_across_runs_and_resumes_where_it_stopped():
    # No early stop is safe: a pass reads all 51 pages, 20 a run, each run re-reading the
    # last page of the one before (the overlap) while new downloads arrive at the end.
    result = measure(Plan(50_000, OLDEST_FIRST, page_size=1000, max_pages=20))
    firsts = [run.report["first_page"] for run in result.runs]
    assert firsts == [0, 19, 38] * 3
    assert [run.videodb_calls for run in result.runs] == [20, 20, 13] * 3
    assert [run.report["stopped"] for run in result.runs] == ["pages", "pages", "end"] * 3
    assert result.expected and not result.missed and not result.duplicates


def test_a_long_newest_first_pass_resumes_while_the_list_shifts_under_it():
    # A 7-day window is 20,160 records: a pass of 21 pages at 2 a run. Each run's 30 new
    # downloads push the anchor down; the re-read page still starts before it.
    result = measure(Plan(50_000, NEWEST_FIRST, page_size=1000, max_pages=2, lookback_hours=168))
    assert not any(run.report["pass_restarted"] for run in result.runs)
    assert all(run.videodb_calls <= 2 for run in result.runs)
    assert result.expected and not result.missed and not result.duplicates
