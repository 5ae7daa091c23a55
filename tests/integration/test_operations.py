"""Day-two parts of the stack in moto: the sweeper closing the loop with no other
integration, the alarms with their e-mail topic, and the dashboard."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from .conftest import final_outcome, outcomes_of


def test_sweeper_finds_failures_and_the_app_retries_them(make_stack, sandbox):
    now = datetime.now(UTC)
    sandbox.script("dl-swept", processing_seconds=0.5)  # a download in error whose retry succeeds
    sandbox.add_download("dl-done", status="done", created_at=now)
    sandbox.add_download("dl-old", status="error", created_at=now - timedelta(days=30))
    stack = make_stack(SweeperEnabled="true", SweepLookbackHours=24)
    from videodb_retry_local.stack.sqs_event_source import QueueConsumer

    consumer = QueueConsumer(stack, redelivery_seconds=1)

    first = stack.invoke("SweeperFunction", {})
    assert first["published"] == 1 and first["failed_in_window"] == 1
    assert consumer.run(until=final_outcome(stack, "dl-swept"), timeout=30)
    (event,) = outcomes_of(stack, "dl-swept")
    assert event["detail-type"] == "Download Retry Succeeded"
    assert [r.path for r in sandbox.retry_calls()] == ["/download/dl-swept"]

    # A second run publishes nothing again, even though the record may still say error.
    second = stack.invoke("SweeperFunction", {})
    assert second["published"] == 0


def test_alarms_and_dashboard_exist_and_notify_the_topic(make_stack):
    stack = make_stack(AlarmEmail="ops@example.com")
    cloudwatch = stack.client("cloudwatch")
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    topic_arn = stack.ids.resources["AlarmTopic"].ref
    # A metric-math alarm (the poll function's errors less its JobStillRunning answers)
    # names its metrics in its queries.
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms if "Namespace" in a} | {
        (q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"])
        for a in alarms
        for q in a.get("Metrics", [])
        if "MetricStat" in q
    }
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/States", "ExecutionsFailed"),
        ("VideoDBRetry", "RetriesTimedOut"),
        ("AWS/Lambda", "Errors"),
    } <= watched
    assert all(a["AlarmActions"] == [topic_arn] for a in alarms)
    subscriptions = stack.client("sns").list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert [s["Endpoint"] for s in subscriptions] == ["ops@example.com"]
    (dashboard,) = cloudwatch.list_dashboards()["DashboardEntries"]
    body = json.loads(cloudwatch.get_dashboard(DashboardName=dashboard["DashboardName"])["DashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert "Retries" in titles and "Queue depth" in titles and "Oldest message age (s)" in titles


def test_without_an_address_alarms_have_no_actions(stack):
    alarms = stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert alarms and all(a["AlarmActions"] == [] for a in alarms)
    assert "AlarmTopic" not in stack.ids.resources


def test_the_deployed_sweeper_ends_its_run_before_the_next_scheduled_one(make_stack, monkeypatch):
    """SweepRateMinutes reaches the function (SWEEP_RATE_MINUTES) and bounds the run's time:
    at rate 2 a run of the 300 s function may take 90 s (steps/sweeper.RunWindow)."""
    stack = make_stack(SweeperEnabled="true", SweepRateMinutes=2)
    module = stack.functions["SweeperFunction"].module
    assert module.settings.sweep_rate_minutes == 2
    seen: list[float] = []

    def sweep(now, time_left=None):
        seen.append(time_left())
        seen.append(module.time_left.patience())  # the request budget's wait, bounded the same
        return module.sweeper.__class__.sweep(module.sweeper, now, time_left=lambda: 0.0)

    monkeypatch.setattr(module.sweeper, "sweep", sweep)
    report = stack.invoke("SweeperFunction", {})
    assert report["stopped"] == "time" and report["pages"] == 0
    window, patience = seen
    assert 85.0 < window <= 90.0  # 2 min less the 30 s slack; the function's 300 s is longer
    assert patience < window
