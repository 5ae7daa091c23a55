"""The whole pipeline, end to end: EventBridge rule -> SQS -> retry function -> workflow ->
poll function -> outcome event, with the real handlers and the real state machine running in
moto against the sandbox API."""

from __future__ import annotations

import json

import pytest

from .conftest import dead_letters_of, final_outcome, outcomes_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_failure_event_is_retried_and_announced_as_succeeded(stack, consumer, sandbox):
    sandbox.script("dl-ok", processing_seconds=1)

    stack.send_failure_event("dl-ok", error="stream timed out")

    assert consumer.run(until=final_outcome(stack, "dl-ok"), timeout=20)
    (event,) = outcomes_of(stack, "dl-ok")
    assert event["source"] == "videodb-retry"
    assert event["detail-type"] == "Download Retry Succeeded"
    detail = event["detail"]
    assert detail["status"] == "done" and detail["attempt"] == 1 and detail["will_retry"] is False
    assert detail["polls"] >= 1 and detail["result"]["download_url"].startswith("https://")
    # The record the function saw was the whole EventBridge event, delivered once.
    (delivery,) = consumer.deliveries
    assert json.loads(delivery.body)["detail"]["download_id"] == "dl-ok" and not delivery.failed
    (execution,) = stack.executions()
    assert execution["status"] == "SUCCEEDED"
    assert execution["name"].startswith("dl-ok--job-")
    (retry_call,) = sandbox.retry_calls("dl-ok")
    assert retry_call.headers["x-access-token"] == "sk-integration-key"
    assert stack.dead_letters() == []


def test_failed_attempt_is_requeued_with_the_next_attempt_and_then_succeeds(stack, consumer, sandbox):
    sandbox.script("dl-twice", fail_times=1)

    stack.send_to_queue("dl-twice")

    assert consumer.run(until=final_outcome(stack, "dl-twice"), timeout=30)
    first, second = outcomes_of(stack, "dl-twice")
    assert first["detail-type"] == "Download Retry Failed"
    assert first["detail"]["attempt"] == 1 and first["detail"]["will_retry"] is True
    assert "failed" in first["detail"]["error"].lower()
    assert second["detail-type"] == "Download Retry Succeeded" and second["detail"]["attempt"] == 2
    # The workflow re-queued the download itself, as JSON with attempt 2 and the reason.
    requeued = json.loads(consumer.deliveries[1].body)
    assert requeued["download_id"] == "dl-twice" and requeued["attempt"] == 2
    assert requeued["reason"].startswith("attempt 1 failed")
    # A failed attempt is an outcome, not a broken workflow (issue 21 item 3): both executions
    # succeed, and the output says how the attempt ended.
    ended = sorted((e["status"], json.loads(e["output"])["status"]) for e in stack.executions())
    assert ended == [("SUCCEEDED", "done"), ("SUCCEEDED", "failed")]
    assert len(sandbox.retry_calls("dl-twice")) == 2


def test_job_processing_past_the_deadline_times_out_until_attempts_run_out(make_stack, sandbox):
    from videodb_retry_local.stack.sqs_event_source import QueueConsumer

    stack = make_stack(MaxRetryAttempts=2, PollDeadlineSeconds=2)
    consumer = QueueConsumer(stack)
    # Accept a retry of the still-processing download (the sandbox refuses it by default, see
    # test_answer_shapes.py), so that both attempts time out.
    sandbox.script("dl-slow", never_finishes=True, not_failed_retry_status=None)

    stack.send_to_queue(json.dumps({"download_id": "dl-slow"}))

    assert consumer.run(until=final_outcome(stack, "dl-slow"), timeout=40)
    first, last = outcomes_of(stack, "dl-slow")
    assert {first["detail-type"], last["detail-type"]} == {"Download Retry Timed Out"}
    assert first["detail"]["will_retry"] is True
    assert last["detail"]["attempt"] == 2 and last["detail"]["max_attempts"] == 2
    assert last["detail"]["will_retry"] is False
    assert "still processing" in last["detail"]["error"]
    ended = [(e["status"], json.loads(e["output"])["status"]) for e in stack.executions()]
    assert ended == [("SUCCEEDED", "timed_out")] * 2
    # Attempts exhausted: nothing is waiting on the retry queue any more.
    assert consumer.poll_once() == 0 and len(sandbox.retry_calls("dl-slow")) == 2


def test_unknown_download_goes_to_the_dead_letter_queue_with_the_reason(stack, consumer, sandbox):
    stack.send_failure_event("dl-missing")

    assert consumer.run(until=lambda: bool(dead_letters_of(stack, download_id="dl-missing")), timeout=10)
    (letter,) = dead_letters_of(stack, download_id="dl-missing")
    assert letter["attributes"]["error_code"] == "http_404"
    assert "404" in letter["attributes"]["reason"]
    assert json.loads(letter["body"])["detail"]["download_id"] == "dl-missing"  # kept whole
    assert stack.executions() == [] and outcomes_of(stack, "dl-missing") == []
    assert len(sandbox.retry_calls("dl-missing")) == 1  # a permanent error is not retried


@pytest.mark.parametrize(
    "body",
    ["../../etc/passwd", '{"download_id": "dl-1", "attempt": true}', '{"detail-type": "x", "detail": 7}'],
)
def test_poison_message_goes_to_the_dead_letter_queue_without_calling_the_api(stack, consumer, sandbox, body):
    message_id = stack.send_to_queue(body)

    assert consumer.run(until=lambda: bool(stack.dead_letters()), timeout=10)
    (letter,) = stack.dead_letters()
    assert letter["body"] == body
    assert letter["attributes"]["error_code"] == "poison"
    assert letter["attributes"]["source_message_id"] == message_id
    assert letter["attributes"]["reason"]
    assert sandbox.requests == []


def test_transient_503_fails_only_that_record_and_redelivery_succeeds(stack, consumer, sandbox):
    sandbox.script("dl-blip", retry_status=503, retry_status_times=1)
    sandbox.script("dl-fine")
    stack.send_to_queue("dl-blip")
    stack.send_to_queue("dl-fine")

    assert consumer.poll_once() == 2  # one batch of both records
    failed = {d.body for d in consumer.deliveries if d.failed}
    assert failed == {"dl-blip"}  # reported in batchItemFailures; dl-fine was deleted

    assert consumer.run(until=final_outcome(stack, "dl-blip"), timeout=20)
    blip = [d for d in consumer.deliveries if d.body == "dl-blip"]
    assert [d.receive_count for d in blip] == [1, 2] and not blip[1].failed
    (event,) = outcomes_of(stack, "dl-blip")
    assert event["detail"]["status"] == "done" and event["detail"]["attempt"] == 1
    assert len(sandbox.retry_calls("dl-blip")) == 2 and len(sandbox.retry_calls("dl-fine")) == 1
    assert stack.dead_letters() == []


def test_record_that_keeps_failing_ends_in_the_dead_letter_queue_within_max_receive_count(
    stack, consumer, sandbox
):
    sandbox.script("dl-down", retry_status=503)  # VideoDB answers 503 for good
    stack.send_to_queue("dl-down")
    redrive = json.loads(stack.template.queue_attributes("RetryQueue", stack.ids)["RedrivePolicy"])

    assert consumer.run(until=lambda: bool(stack.dead_letters()), timeout=30)
    (letter,) = stack.dead_letters()
    assert letter["body"] == "dl-down"
    # Either SQS's redrive moved it after maxReceiveCount receives, or the function sent it
    # there itself on its last allowed delivery; never more receives than the template allows.
    counts = [d.receive_count for d in consumer.deliveries]
    assert counts == list(range(1, len(counts) + 1)) and len(counts) <= int(redrive["maxReceiveCount"])
    assert all(d.failed for d in consumer.deliveries[:-1])
    assert outcomes_of(stack, "dl-down") == [] and stack.executions() == []
