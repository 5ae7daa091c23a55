"""Outcome events never loop back, a rotated key is picked up, and the workflow's own
Retry sees the poll function's errors by their class name."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from moto.events.models import EventPattern, EventPatternParser
from moto.secretsmanager.models import SecretsManagerBackend

from .conftest import final_outcome, outcomes_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_outcome_events_never_match_the_failure_rule(stack, consumer, sandbox):
    sandbox.script("dl-a")
    sandbox.script("dl-b", answer_failed_at_once=True)  # settled inside the retry function
    stack.send_failure_event("dl-a")
    stack.send_failure_event("dl-b")

    assert consumer.run(
        until=lambda: final_outcome(stack, "dl-a")() and final_outcome(stack, "dl-b")(), timeout=40
    )
    events_client = stack.client("events")
    rule = events_client.describe_rule(
        Name=stack.ref("DownloadFailedRule"), EventBusName=stack.event_bus_name
    )
    outcomes = stack.outcome_events()
    assert {e["detail-type"] for e in outcomes} >= {"Download Retry Succeeded", "Download Retry Failed"}
    # moto has no TestEventPattern; its own matcher (the one that routes events here) decides.
    pattern = EventPattern(rule["EventPattern"], EventPatternParser(rule["EventPattern"]).parse())
    for event in outcomes:
        assert not pattern.matches_event(event), event["detail-type"]
    failure_event = json.loads(consumer.deliveries[0].body)
    assert pattern.matches_event(failure_event)  # the matcher does match what it should
    # Every delivery was a failure event or a re-queue by the pipeline, never an outcome event.
    sources = {json.loads(d.body).get("source") for d in consumer.deliveries if d.body.startswith("{")}
    assert "videodb-retry" not in sources


def test_failure_rule_routes_only_its_source_and_detail_type(stack, consumer):
    events_client = stack.client("events")
    for source, detail_type, detail in [
        ("videodb-retry", "Download Failed", {"download_id": "dl-1"}),  # an outcome's source
        ("videodb", "Download Retry Failed", {"download_id": "dl-1"}),
        ("videodb", "Download Failed", {"reason": "no id"}),
    ]:
        events_client.put_events(
            Entries=[
                {
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": stack.event_bus_name,
                }
            ]
        )
    assert consumer.poll_once() == 0


@pytest.mark.parametrize("api_key_format", ["json", "plain"])
def test_401_after_key_rotation_rereads_the_secret_once(make_stack, sandbox, api_key_format):
    from videodb_retry_local.stack.sqs_event_source import QueueConsumer

    stack = make_stack(api_key_format=api_key_format)
    consumer = QueueConsumer(stack)
    sandbox.script("dl-before")
    sandbox.script("dl-after")
    stack.send_to_queue("dl-before")
    assert consumer.run(until=final_outcome(stack, "dl-before"), timeout=20)  # the key is cached now

    sandbox.rotate_key("sk-rotated")
    stack.put_api_key("sk-rotated", api_key_format)
    original = SecretsManagerBackend.get_secret_value
    with mock.patch.object(
        SecretsManagerBackend, "get_secret_value", autospec=True, side_effect=original
    ) as reads:
        stack.send_to_queue("dl-after")
        assert consumer.run(until=lambda: bool(sandbox.retry_calls("dl-after")), timeout=10)
        assert reads.call_count == 1

    assert consumer.run(until=final_outcome(stack, "dl-after"), timeout=20)
    tokens = [call.headers["x-access-token"] for call in sandbox.retry_calls("dl-after")]
    assert tokens == ["sk-integration-key", "sk-rotated"]  # 401 with the old key, then the new
    assert outcomes_of(stack, "dl-after")[0]["detail"]["status"] == "done"
    assert [d.failed for d in consumer.deliveries] == [False, False]  # no redelivery needed


def test_transient_poll_error_is_retried_by_the_workflow_by_its_class_name(stack, consumer, sandbox):
    sandbox.script("dl-poll-blip", poll_status=503, poll_status_times=1)
    stack.send_to_queue("dl-poll-blip")

    assert consumer.run(until=final_outcome(stack, "dl-poll-blip"), timeout=30)
    (execution,) = stack.executions()
    assert execution["status"] == "SUCCEEDED"
    history = stack.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
    failures = [e["taskFailedEventDetails"] for e in history["events"] if e["type"] == "TaskFailed"]
    assert [f["error"] for f in failures] == ["TransientPollError"]
    assert "503" in json.loads(failures[0]["cause"])["errorMessage"]
    errors = [i.error_type for i in stack.invocations if i.function == "PollFunction"]
    assert errors.count("TransientPollError") == 1


def test_job_url_off_the_api_origin_is_never_followed(stack, consumer, sandbox):
    # Another port is another origin: the key must not go there. Every later attempt would
    # get such a URL too, so the download goes to the DLQ with the reason, not round again.
    sandbox.script("dl-foreign", output_origin="http://127.0.0.1:9")
    stack.send_to_queue(json.dumps({"download_id": "dl-foreign", "attempt": 1}))

    def letters():
        return [d for d in stack.dead_letters() if d["attributes"].get("download_id") == "dl-foreign"]

    assert consumer.run(until=lambda: bool(letters()), timeout=20)
    letters = letters()
    assert len(letters) == 1 and letters[0]["attributes"]["error_code"] == "foreign_origin"
    assert stack.executions() == [] and outcomes_of(stack, "dl-foreign") == []
    assert [r.path for r in sandbox.requests if r.method == "GET"] == []  # never followed
