"""Fault injection (issue 4): one test per fault, through the real handlers, moto and the
sandbox API. Each test says where the message ends up and what the API saw.

Faults are injected at the edges only: the sandbox's answers, sockets that refuse or hang,
botocore API calls that raise (see faults_helpers.py), a Lambda context running out of time.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from videodb_retry_local.stack.lambda_runtime import _INVOKE_LOCK
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

from .conftest import API_KEY, dead_letters_of, final_outcome, outcomes_of, wait_until
from .faults_helpers import (
    AwsFault,
    Handled,
    app_log,
    aws_faults,
    client_error,
    closed_port,
    context_for,
    http_spy,
    metric_spy,
    other_host_sandbox,
    postpone_spy,
    racing_start_execution,
    receive_exactly,
    record_spy,
    retry_answer_without_output_url,
    sqs_record,
    unresponsive_listener,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# A duplicate is caught by the ledger (a step done or in progress) or by Step Functions
# refusing a second execution of the same job; either way it is counted and logged as one.
DUPLICATE_RESULTS = {"duplicate", "already_running"}
DUPLICATE_LOG_MESSAGES = {
    "duplicate delivery; nothing done again",
    "duplicate: the workflow for this job already exists",
}


def assert_queue_empty(stack, consumer):
    """Nothing left on the retry queue, visible or in flight."""
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.retry_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert consumer.poll_once() == 0


def assert_succeeded_once(stack, download_id, attempt=1):
    """The download ended in one success, of ``attempt``, announced once, by at most one
    successful workflow."""
    events = outcomes_of(stack, download_id)
    succeeded = [e for e in events if e["detail-type"] == "Download Retry Succeeded"]
    assert len(succeeded) == 1 and succeeded[0]["detail"]["attempt"] == attempt
    assert events[-1] is succeeded[0]
    executions = [e for e in stack.executions() if e["name"].startswith(f"{download_id}--")]
    assert len([e for e in executions if e["status"] == "SUCCEEDED"]) <= 1


# -- HTTP faults on the retry POST -------------------------------------------------------


def test_5xx_on_the_retry_fails_the_record_until_the_fault_ends(stack, consumer, sandbox):
    statuses = (500, 502, 503, 504)
    for status in statuses:
        sandbox.script(f"dl-{status}", retry_status=status, retry_status_times=1)

    with http_spy() as http, record_spy(stack) as records:
        for status in statuses:
            stack.send_to_queue(f"dl-{status}")
        assert consumer.run(
            until=lambda: all(final_outcome(stack, f"dl-{s}")() for s in statuses), timeout=20
        )

    for status in statuses:
        download_id = f"dl-{status}"
        # Failed (reported in batchItemFailures), redelivered, then the retry went through.
        deliveries = [(d.receive_count, d.failed) for d in consumer.deliveries if d.body == download_id]
        assert deliveries == [(1, True), (2, False)], status
        (error,) = [h.error for h in records.of(download_id) if h.error is not None]
        assert type(error).__name__ == "TransientError" and f"answered {status}" in str(error)
        # The API saw two POSTs; exactly one of them succeeded, and one workflow followed it.
        assert [c.status for c in http.posts(download_id)] == [status, 200]
        assert len(sandbox.retry_calls(download_id)) == 2
        assert_succeeded_once(stack, download_id)
    executions = stack.executions()
    assert len(executions) == len(statuses) and {e["status"] for e in executions} == {"SUCCEEDED"}
    assert stack.dead_letters() == []
    assert_queue_empty(stack, consumer)


def test_429_with_retry_after_keeps_the_record_away_at_least_that_long(make_stack, sandbox):
    retry_after = 3
    stack = make_stack(RedeliveryFirstDelaySeconds=1)
    consumer = QueueConsumer(stack, redelivery_seconds=None)  # the function's own backoff
    sandbox.script("dl-429", retry_status=429, retry_status_times=1, retry_after=retry_after)

    with postpone_spy() as postponed:
        stack.send_to_queue("dl-429")
        failed_at = time.monotonic()  # before the failure, so a lower bound of the wait
        assert consumer.poll_once() == 1
        assert consumer.deliveries[-1].failed
        # Not received again before Retry-After has passed, though the policy alone says 1 s.
        while len(consumer.deliveries) == 1:
            consumer.poll_once()
            time.sleep(0.05)
            assert time.monotonic() - failed_at < retry_after + 5, "never delivered again"
        redelivered_after = time.monotonic() - failed_at
        assert consumer.run(until=final_outcome(stack, "dl-429"), timeout=20)

    assert postponed == [retry_after]
    assert redelivered_after >= retry_after
    assert [(d.receive_count, d.failed) for d in consumer.deliveries] == [(1, True), (2, False)]
    (first, second) = sandbox.retry_calls("dl-429")
    assert second.time - first.time >= retry_after
    assert_succeeded_once(stack, "dl-429")


def test_429_without_retry_after_backs_off_exponentially_with_the_receive_count(make_stack, sandbox):
    stack = make_stack(RedeliveryFirstDelaySeconds=1, RedeliveryBackoffFactor="3")
    consumer = QueueConsumer(stack, redelivery_seconds=None)
    sandbox.script("dl-429-bare", retry_status=429, retry_status_times=2)

    with postpone_spy() as postponed:
        stack.send_to_queue("dl-429-bare")
        assert consumer.run(until=final_outcome(stack, "dl-429-bare"), timeout=30)

    # first * factor ** (receive_count - 1), jittered by 10 % and rounded: 1 s, then 3 s.
    assert postponed == [1, 3]
    assert [(d.receive_count, d.failed) for d in consumer.deliveries] == [(1, True), (2, True), (3, False)]
    times = [c.time for c in sandbox.retry_calls("dl-429-bare")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= wait for gap, wait in zip(gaps, postponed, strict=True)), gaps
    assert_succeeded_once(stack, "dl-429-bare")


# -- connections that fail ---------------------------------------------------------------


def test_connection_refused_is_transient_and_recovers_when_the_api_is_back(make_stack, sandbox):
    port = closed_port()
    stack = make_stack(VideoDBApiBaseUrl=f"http://127.0.0.1:{port}")
    consumer = QueueConsumer(stack, redelivery_seconds=1)

    with http_spy() as http, record_spy(stack) as records:
        stack.send_to_queue("dl-refused")
        assert consumer.poll_once() == 1
        assert consumer.deliveries[-1].failed
        # The API comes up on the configured origin.
        with SandboxServer(api_key=API_KEY, port=port) as api:
            api.script("dl-refused")
            assert consumer.run(until=final_outcome(stack, "dl-refused"), timeout=20)
            assert len(api.retry_calls("dl-refused")) == 1

    (error,) = [h.error for h in records.handled if h.error]
    assert type(error).__name__ == "TransientError" and "could not connect" in str(error)
    assert [(c.status, c.error) for c in http.posts("dl-refused")] == [(None, "ConnectionError"), (200, None)]
    assert [d.failed for d in consumer.deliveries] == [True, False]
    assert_succeeded_once(stack, "dl-refused")
    assert stack.dead_letters() == []


def test_connect_timeout_is_transient_and_recovers_when_the_api_answers(make_stack, sandbox, monkeypatch):
    # The template does not expose the HTTP timeouts; the functions read them from the
    # environment the emulated stack layers under each function's template environment.
    monkeypatch.setenv("HTTP_CONNECT_TIMEOUT_SECONDS", "0.5")
    with unresponsive_listener() as port:
        stack = make_stack(VideoDBApiBaseUrl=f"http://127.0.0.1:{port}")
        consumer = QueueConsumer(stack, redelivery_seconds=1)
        assert stack.functions["RetryFunction"].module.settings.connect_timeout_seconds == 0.5
        with http_spy() as http, record_spy(stack) as records:
            stack.send_to_queue("dl-hang")
            started = time.monotonic()
            assert consumer.poll_once() == 1
            assert time.monotonic() - started < 5
    assert consumer.deliveries[-1].failed

    with http_spy() as http_after, SandboxServer(api_key=API_KEY, port=port) as api:
        api.script("dl-hang")
        assert consumer.run(until=final_outcome(stack, "dl-hang"), timeout=20)
        assert len(api.retry_calls("dl-hang")) == 1

    (error,) = [h.error for h in records.handled if h.error]
    assert type(error).__name__ == "TransientError" and "ConnectTimeout" in str(error)
    assert [c.error for c in http.posts("dl-hang")] == ["ConnectTimeout"]
    assert [c.status for c in http_after.posts("dl-hang")] == [200]
    assert [d.failed for d in consumer.deliveries] == [True, False]
    assert_succeeded_once(stack, "dl-hang")


def test_read_timeout_is_transient_and_the_next_delivery_succeeds(make_stack, sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_READ_TIMEOUT_SECONDS", "1")
    stack = make_stack()
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    assert stack.functions["RetryFunction"].module.settings.read_timeout_seconds == 1.0
    sandbox.script("dl-slow-answer", delay_seconds=3)  # longer than the read timeout

    with http_spy() as http, record_spy(stack) as records:
        stack.send_to_queue("dl-slow-answer")
        started = time.monotonic()
        assert consumer.poll_once() == 1
        assert time.monotonic() - started < 2.5  # the client gave up; it did not wait 3 s
        assert consumer.deliveries[-1].failed
        sandbox.script("dl-slow-answer")  # the API answers promptly again
        assert consumer.run(until=final_outcome(stack, "dl-slow-answer"), timeout=20)

    (error,) = [h.error for h in records.handled if h.error]
    assert type(error).__name__ == "TransientError" and "ReadTimeout" in str(error)
    assert [(c.status, c.error) for c in http.posts("dl-slow-answer")] == [(None, "ReadTimeout"), (200, None)]
    assert [d.failed for d in consumer.deliveries] == [True, False]
    assert len(sandbox.retry_calls("dl-slow-answer")) == 2
    assert_succeeded_once(stack, "dl-slow-answer")
    assert stack.dead_letters() == []


# -- answers that are odd ----------------------------------------------------------------


def test_malformed_json_answer_is_transient(stack, consumer, sandbox):
    sandbox.script("dl-garbled", malformed_json_times=1)

    with http_spy() as http, record_spy(stack) as records:
        stack.send_to_queue("dl-garbled")
        assert consumer.run(until=final_outcome(stack, "dl-garbled"), timeout=20)

    (error,) = [h.error for h in records.handled if h.error]
    assert "200 with a body that is not JSON" in str(error)
    assert [c.status for c in http.posts("dl-garbled")] == [200, 200]  # the first was unreadable
    assert [d.failed for d in consumer.deliveries] == [True, False]
    (execution,) = stack.executions()
    assert execution["status"] == "SUCCEEDED"
    assert_succeeded_once(stack, "dl-garbled")


def test_success_false_with_http_200_is_a_failed_attempt_requeued_as_attempt_2(stack, consumer, sandbox):
    sandbox.script("dl-refused-job", answer_failed_at_once=True)

    with record_spy(stack) as records:
        stack.send_to_queue("dl-refused-job")
        assert consumer.poll_once() == 1
        (first,) = outcomes_of(stack, "dl-refused-job")
        sandbox.script("dl-refused-job", answer_done_at_once=True)  # attempt 2 goes through
        assert consumer.run(until=final_outcome(stack, "dl-refused-job"), timeout=20)

    assert first["detail-type"] == "Download Retry Failed"
    assert first["detail"]["attempt"] == 1 and first["detail"]["will_retry"] is True
    assert "source stream could not be read" in first["detail"]["error"]
    # The record itself was not a failure: the attempt was, and it was re-queued.
    assert [d.failed for d in consumer.deliveries] == [False, False]
    requeued = json.loads(consumer.deliveries[1].body)
    assert requeued["download_id"] == "dl-refused-job" and requeued["attempt"] == 2
    assert [h.result for h in records.handled] == ["failed", "succeeded"]
    _, second = outcomes_of(stack, "dl-refused-job")
    assert second["detail-type"] == "Download Retry Succeeded" and second["detail"]["attempt"] == 2
    assert len(sandbox.retry_calls("dl-refused-job")) == 2  # one POST per attempt
    assert stack.executions() == [] and stack.dead_letters() == []


def test_unknown_status_value_is_a_failed_attempt_requeued(stack, consumer, sandbox):
    # The SDK's rule (issue 13): a status other than processing / in progress is terminal,
    # judged by `success`; with no download URL it is not a success. The record is handled.
    sandbox.script("dl-odd-status", status_spelling={"processing": "reticulating"})

    with record_spy(stack) as records:
        stack.send_to_queue("dl-odd-status")
        assert consumer.poll_once() == 1
        (first,) = outcomes_of(stack, "dl-odd-status")
        # The API speaks plainly again; its first job is still processing, so accept the
        # retry of a download not in error (refused by default, see test_answer_shapes.py).
        sandbox.script("dl-odd-status", not_failed_retry_status=None)
        assert consumer.run(until=final_outcome(stack, "dl-odd-status"), timeout=20)

    assert first["detail-type"] == "Download Retry Failed" and first["detail"]["will_retry"] is True
    assert "'reticulating'" in first["detail"]["error"]
    assert [h.result for h in records.handled] == ["failed", "workflow_started"]
    assert [d.failed for d in consumer.deliveries] == [False, False]
    assert len(sandbox.retry_calls("dl-odd-status")) == 2
    (execution,) = stack.executions()
    assert execution["status"] == "SUCCEEDED"
    assert_succeeded_once(stack, "dl-odd-status", attempt=2)


def test_processing_without_output_url_is_a_failed_attempt(stack, consumer, sandbox):
    # The first POST did start a job, so the download is processing when attempt 2 retries it:
    # accept that retry here (the sandbox refuses it by default, see test_answer_shapes.py).
    sandbox.script("dl-no-url", not_failed_retry_status=None)

    with retry_answer_without_output_url(sandbox, "dl-no-url", times=1):
        stack.send_to_queue("dl-no-url")
        assert consumer.run(until=final_outcome(stack, "dl-no-url"), timeout=20)

    first, second = outcomes_of(stack, "dl-no-url")
    assert first["detail-type"] == "Download Retry Failed" and first["detail"]["will_retry"] is True
    assert first["detail"]["error"] == "VideoDB answered processing without a job to poll"
    assert second["detail-type"] == "Download Retry Succeeded" and second["detail"]["attempt"] == 2
    assert [d.failed for d in consumer.deliveries] == [False, False]
    (execution,) = stack.executions()  # only attempt 2 had a job to follow
    assert execution["status"] == "SUCCEEDED"
    assert len(sandbox.retry_calls("dl-no-url")) == 2


def test_output_url_on_another_host_goes_to_the_dlq_and_the_key_goes_nowhere_else(stack, consumer, sandbox):
    # Another loopback address is another host; same key, so only the origin check stops it.
    with other_host_sandbox(API_KEY) as (foreign, foreign_url), http_spy() as http:
        sandbox.script("dl-foreign", output_origin=foreign_url)
        stack.send_to_queue("dl-foreign")
        assert consumer.run(until=lambda: bool(dead_letters_of(stack, download_id="dl-foreign")), timeout=20)
        time.sleep(0.5)  # anything late would show up now
        foreign_requests = foreign.requests

    (letter,) = dead_letters_of(stack, download_id="dl-foreign")
    assert letter["attributes"]["error_code"] == "foreign_origin"
    assert "not on the configured API origin" in letter["attributes"]["reason"]
    assert letter["body"] == "dl-foreign"
    assert foreign_requests == []  # the foreign origin heard nothing at all
    assert [r.method for r in sandbox.requests] == ["POST"]  # the sandbox never saw a GET
    keyed = [c.url for c in http.calls if "x-access-token" in c.headers]
    assert keyed and all(url.startswith(sandbox.base_url + "/") for url in keyed)
    assert not any(c.url.startswith(foreign_url) for c in http.calls)
    assert stack.executions() == [] and outcomes_of(stack, "dl-foreign") == []
    assert [d.failed for d in consumer.deliveries] == [False]


# -- the API key ------------------------------------------------------------------------


def test_401_after_key_rotation_rereads_the_secret_once_then_succeeds(stack, consumer, sandbox):
    sandbox.script("dl-warm")
    sandbox.script("dl-rotated")
    stack.send_to_queue("dl-warm")
    assert consumer.run(until=final_outcome(stack, "dl-warm"), timeout=20)  # the key is cached

    sandbox.rotate_key("sk-rotated-key")
    stack.put_api_key("sk-rotated-key")
    reads = AwsFault("GetSecretValue", times=0, error=client_error("unused"))
    with aws_faults(reads), http_spy() as http:
        stack.send_to_queue("dl-rotated")
        assert consumer.run(until=final_outcome(stack, "dl-rotated"), timeout=20)

    # One re-read per function, each prompted by its own 401: the retry function's POST and
    # the poll function's first GET. Each function keeps its own cache, as each runs in its
    # own execution environment in AWS (the local stack emulates that since make iam).
    assert len(reads.calls) == 2
    posts = http.posts("dl-rotated")
    assert [(c.status, c.headers["x-access-token"]) for c in posts] == [
        (401, API_KEY),
        (200, "sk-rotated-key"),
    ]
    assert [d.failed for d in consumer.deliveries] == [False, False]  # no redelivery needed
    # The poll function's cached old key met one 401 of its own; its polls then went out with
    # the new key.
    polls = [c for c in http.calls if c.method == "GET"]
    assert [(c.status, c.headers["x-access-token"]) for c in polls if c.status == 401] == [(401, API_KEY)]
    assert polls[-1].headers["x-access-token"] == "sk-rotated-key" and polls[-1].status == 200
    assert_succeeded_once(stack, "dl-rotated")


def test_401_with_the_secret_not_yet_rotated_fails_the_record_until_it_is(stack, consumer, sandbox):
    sandbox.script("dl-stale")
    sandbox.rotate_key("sk-new-key")  # VideoDB has the new key; the secret still the old one

    with record_spy(stack) as records:
        stack.send_to_queue("dl-stale")
        assert consumer.poll_once() == 1
        assert consumer.deliveries[-1].failed
        stack.put_api_key("sk-new-key")
        assert consumer.run(until=final_outcome(stack, "dl-stale"), timeout=20)

    (error,) = [h.error for h in records.handled if h.error]
    assert type(error).__name__ == "AuthError" and "401" in str(error)
    tokens = [r.headers["x-access-token"] for r in sandbox.retry_calls("dl-stale")]
    # Delivery 1: old key, 401, one re-read (still old), 401. Delivery 2: cached old key,
    # 401, re-read gives the new key, 200.
    assert tokens == [API_KEY, API_KEY, API_KEY, "sk-new-key"]
    assert [d.failed for d in consumer.deliveries] == [True, False]
    assert_succeeded_once(stack, "dl-stale")


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException", "Rate exceeded"),
        client_error("InternalServiceError", "Secrets Manager is unavailable", status=500),
        lambda client, operation: EndpointConnectionError(
            endpoint_url="https://secretsmanager.us-east-1.amazonaws.com"
        ),
    ],
    ids=["throttled", "internal-error", "unreachable"],
)
def test_secrets_manager_throttled_or_unavailable_is_transient(stack, consumer, sandbox, error):
    sandbox.script("dl-no-secret")
    fault = AwsFault("GetSecretValue", times=1, error=error)

    with aws_faults(fault), record_spy(stack) as records, http_spy() as http:
        stack.send_to_queue("dl-no-secret")
        assert consumer.poll_once() == 1
        assert sandbox.requests == []  # no key, no call
        assert consumer.run(until=final_outcome(stack, "dl-no-secret"), timeout=20)

    assert fault.failed == 1
    assert [d.failed for d in consumer.deliveries] == [True, False]
    errors = [h for h in records.handled if h.error]
    assert len(errors) == 1
    for handled in errors:
        assert type(handled.error).__name__ == "TransientError"
        assert str(handled.error).startswith("could not read the API key secret")
        assert API_KEY not in handled.traceback and API_KEY not in repr(handled.error)
    assert len(http.posts("dl-no-secret")) == 1  # POSTed once, when the key could be read
    assert_succeeded_once(stack, "dl-no-secret")


# -- Step Functions ----------------------------------------------------------------------


def test_start_execution_throttled_fails_the_record_and_redelivery_does_not_post_again(
    stack, consumer, sandbox
):
    sandbox.script("dl-sfn-throttled")
    fault = AwsFault("StartExecution", times=1, error=client_error("ThrottlingException", "Rate exceeded"))

    with aws_faults(fault), record_spy(stack) as records:
        stack.send_to_queue("dl-sfn-throttled")
        assert consumer.run(until=final_outcome(stack, "dl-sfn-throttled"), timeout=20)

    assert [d.failed for d in consumer.deliveries] == [True, False]
    first, second = records.handled
    assert "ThrottlingException" in str(first.error)
    assert second.result == "workflow_started"
    # The issue step was replayed from the ledger on the redelivery: one POST only.
    assert len(sandbox.retry_calls("dl-sfn-throttled")) == 1
    assert len(fault.calls) == 2 and fault.failed == 1
    (execution,) = stack.executions()
    assert execution["status"] == "SUCCEEDED"
    assert len(outcomes_of(stack, "dl-sfn-throttled")) == 1


def test_start_execution_whose_answer_was_lost_is_a_duplicate_on_redelivery(stack, consumer, sandbox):
    # The execution starts, but the answer never reaches the function (read timeout).
    sandbox.script("dl-sfn-lost", processing_seconds=2)
    lost = AwsFault(
        "StartExecution",
        times=1,
        error=lambda client, operation: ReadTimeoutError(
            endpoint_url="https://states.us-east-1.amazonaws.com"
        ),
        after_real_call=True,
    )

    with aws_faults(lost), record_spy(stack) as records, metric_spy() as metrics:
        stack.send_to_queue("dl-sfn-lost")
        assert consumer.run(until=final_outcome(stack, "dl-sfn-lost"), timeout=20)

    assert [d.failed for d in consumer.deliveries] == [True, False]
    # Not an error: the redelivered report carries on its own retry sequence, whose execution
    # Step Functions refuses to start twice — or, when that execution already ended before
    # the redelivery, it finds the sequence ended and does nothing.
    first, again = [h.result for h in records.handled]
    assert first is None and again in ("already_running", "duplicate")
    assert "Duplicates" in metrics
    assert len(sandbox.retry_calls("dl-sfn-lost")) == 1
    (execution,) = stack.executions()
    assert execution["status"] == "SUCCEEDED"
    assert len(outcomes_of(stack, "dl-sfn-lost")) == 1


def test_execution_already_exists_is_reported_as_a_duplicate_not_an_error(make_stack, sandbox):
    stack = make_stack(LogLevel="INFO")
    consumer = QueueConsumer(stack)
    sandbox.script("dl-raced", processing_seconds=1)

    with (
        racing_start_execution() as raced,
        record_spy(stack) as records,
        metric_spy() as metrics,
        app_log() as log,
    ):
        stack.send_to_queue("dl-raced")
        assert consumer.poll_once() == 1

    assert raced, "the racing start did not happen"
    assert [h.result for h in records.handled] == ["already_running"]
    assert [d.failed for d in consumer.deliveries] == [False]
    assert metrics.count("Duplicates") == 1
    messages = [json.loads(line)["message"] for line in log.getvalue().splitlines() if line.startswith("{")]
    assert "duplicate: the workflow for this job already exists" in messages
    assert not any("failed" in m for m in messages)
    assert len(stack.executions()) == 1  # the racer's; the function started none
    assert consumer.run(until=final_outcome(stack, "dl-raced"), timeout=20)
    assert len(sandbox.retry_calls("dl-raced")) == 1


def test_outcome_event_refused_after_the_requeue_does_not_retry_twice(make_stack, sandbox):
    # The retry function re-queues attempt 2, then EventBridge refuses the outcome event: the
    # record fails and comes back, so attempt 2 is queued twice. It must still run once.
    stack = make_stack(MaxRetryAttempts=2)
    consumer = QueueConsumer(stack)
    sandbox.script("dl-no-events", answer_failed_at_once=True)
    fault = AwsFault("PutEvents", times=1, error=client_error("ThrottlingException", "Rate exceeded"))

    with aws_faults(fault), record_spy(stack) as records:
        stack.send_to_queue("dl-no-events")
        assert consumer.run(until=final_outcome(stack, "dl-no-events"), timeout=20)
        wait_until(lambda: consumer.poll_once() == 0 and len(consumer.deliveries) >= 4, timeout=5)

    assert fault.failed == 1
    first, second = outcomes_of(stack, "dl-no-events")  # one event per attempt, no more
    assert (first["detail"]["attempt"], first["detail"]["will_retry"]) == (1, True)
    assert (second["detail"]["attempt"], second["detail"]["will_retry"]) == (2, False)
    attempt_2 = [h for h in records.handled if h.body.startswith("{")]
    assert len(attempt_2) == 2  # queued twice...
    assert sorted(h.result for h in attempt_2)[0] in DUPLICATE_RESULTS  # ...run once
    assert len(sandbox.retry_calls("dl-no-events")) == 2  # one POST per attempt
    assert stack.dead_letters() == []


# -- the dead-letter queue ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error_code", "posts"),
    [("not an id!", "poison", 0), ("dl-gone", "http_404", 1)],
    ids=["poison", "permanent-404"],
)
def test_dlq_send_failing_keeps_the_message_on_the_queue_until_it_succeeds(
    stack, consumer, sandbox, body, error_code, posts
):
    fault = AwsFault(
        "SendMessage",
        times=2,
        error=client_error("InternalError", "SQS is having a bad day", status=500),
        when=lambda params: params.get("QueueUrl") == stack.dead_letter_queue_url,
    )

    with aws_faults(fault), record_spy(stack) as records:
        message_id = stack.send_to_queue(body)
        assert consumer.run(until=lambda: bool(stack.dead_letters()), timeout=20)

    assert fault.failed == 2
    # Failed (not dropped) while the DLQ refused it, then moved with its reason.
    assert [(d.receive_count, d.failed) for d in consumer.deliveries] == [(1, True), (2, True), (3, False)]
    assert [h.result for h in records.handled] == [None, None, "dead_lettered"]
    (letter,) = stack.dead_letters()
    assert letter["body"] == body
    assert letter["attributes"]["error_code"] == error_code
    assert letter["attributes"]["source_message_id"] == message_id
    assert letter["attributes"]["receive_count"] == "3"
    # A permanent refusal is kept by the ledger: VideoDB is not asked again on redelivery.
    assert len(sandbox.requests) == posts
    assert_queue_empty(stack, consumer)


def test_permanent_failure_redriven_from_the_dlq_does_not_vanish(stack, consumer, sandbox):
    # An operator fixes the cause (here: the key's permissions) and moves the DLQ's messages
    # back to the retry queue, as `videodb-retry redrive` does. The message must be retried
    # or dead-lettered again, never deleted with nothing done.
    sandbox.script("dl-forbidden", retry_status=403, retry_status_times=1)
    stack.send_to_queue("dl-forbidden")
    assert consumer.run(until=lambda: bool(stack.dead_letters()), timeout=20)
    (letter,) = stack.dead_letters()
    assert letter["attributes"]["error_code"] == "http_403"

    with record_spy(stack) as records:
        # The redrive: StartMessageMoveTask and `videodb-retry redrive` keep the attributes.
        stack.client("sqs").send_message(
            QueueUrl=stack.retry_queue_url,
            MessageBody=letter["body"],
            MessageAttributes={
                name: {"DataType": "Number" if name == "receive_count" else "String", "StringValue": value}
                for name, value in letter["attributes"].items()
            },
        )
        assert consumer.run(until=lambda: len(consumer.deliveries) == 2, timeout=10)
        wait_until(lambda: len(stack.dead_letters()) > 1 or final_outcome(stack, "dl-forbidden")(), timeout=3)

    (redriven,) = records.handled
    retried = len(sandbox.retry_calls("dl-forbidden")) == 2
    dead_lettered_again = len(stack.dead_letters()) == 2
    assert retried or dead_lettered_again, (
        f"the redriven message was deleted as {redriven.result!r}: not retried, not dead-lettered again"
    )


def test_a_refused_failure_delivered_twice_is_dead_lettered_once(stack, consumer, sandbox):
    # Twins (sent side by side), and EventBridge delivering one event again after the first
    # copy's retry sequence ended (same event, same `time`): one POST, one dead letter.
    sandbox.script("dl-twice", retry_status=409)
    stack.send_to_queue("dl-twice")
    stack.send_to_queue("dl-twice")
    assert consumer.run(until=lambda: len(consumer.deliveries) == 2, timeout=20)
    event = {
        "id": "e-1",
        "detail-type": "Download Failed",
        "source": "videodb",
        "time": "2020-01-01T00:00:00Z",  # reported long before the sequence ended
        "detail": {"download_id": "dl-twice"},
    }
    stack.send_to_queue(json.dumps(event))  # the late copy, after the first was dead-lettered
    assert consumer.run(until=lambda: len(consumer.deliveries) == 3, timeout=20)
    assert [m["attributes"]["error_code"] for m in dead_letters_of(stack, download_id="dl-twice")] == [
        "http_409"
    ]
    assert len(sandbox.retry_calls("dl-twice")) == 1
    assert_queue_empty(stack, consumer)


def test_dlq_send_failing_on_the_last_delivery_leaves_the_message_to_sqs_redrive(make_stack, sandbox):
    stack = make_stack(MaxReceiveCount=5, RedeliveryFirstDelaySeconds=0)
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    sandbox.script("dl-doomed", retry_status=503)  # never recovers
    fault = AwsFault(
        "SendMessage",
        times=None,
        error=client_error("InternalError", "DLQ down", status=500),
        when=lambda params: params.get("QueueUrl") == stack.dead_letter_queue_url,
    )

    with aws_faults(fault):
        stack.send_to_queue("dl-doomed")
        assert consumer.run(
            until=lambda: (
                len(consumer.deliveries) >= 5 and consumer.poll_once() == 0 and bool(stack.dead_letters())
            ),
            timeout=30,
        )

    assert fault.failed == 1  # the function tried to dead-letter it on its last delivery
    assert [(d.receive_count, d.failed) for d in consumer.deliveries] == [(n, True) for n in range(1, 6)]
    (letter,) = stack.dead_letters()  # SQS redrive moved it: never lost
    assert letter["body"] == "dl-doomed"
    assert len(sandbox.retry_calls("dl-doomed")) == 5


def test_record_failing_on_every_delivery_ends_in_the_dlq_as_transient_exhausted(make_stack, sandbox):
    stack = make_stack(MaxReceiveCount=5, RedeliveryFirstDelaySeconds=0)
    consumer = QueueConsumer(stack, redelivery_seconds=None)  # the function's own backoff
    sandbox.script("dl-never", retry_status=503)

    with postpone_spy() as postponed:
        message_id = stack.send_to_queue("dl-never")
        assert consumer.run(until=lambda: bool(stack.dead_letters()), timeout=30)

    assert [(d.receive_count, d.failed) for d in consumer.deliveries] == [
        (1, True),
        (2, True),
        (3, True),
        (4, True),
        (5, False),
    ]
    assert postponed == [1, 1, 1, 1]
    (letter,) = stack.dead_letters()
    attributes = letter["attributes"]
    assert letter["body"] == "dl-never"
    assert attributes["error_code"] == "transient_exhausted"
    assert attributes["reason"].startswith("still failing after 5 deliveries: TransientError")
    assert "answered 503" in attributes["reason"]
    assert attributes["receive_count"] == "5" and attributes["source_message_id"] == message_id
    assert len(sandbox.retry_calls("dl-never")) == 5
    assert stack.executions() == [] and outcomes_of(stack, "dl-never") == []
    assert_queue_empty(stack, consumer)


# -- the Lambda invocation ---------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 2], ids=["one-by-one", "two-at-once"])
def test_running_out_of_time_mid_batch_fails_only_the_unstarted_records(make_stack, sandbox, concurrency):
    stack = make_stack(RetryBatchConcurrency=concurrency)
    consumer = QueueConsumer(stack)
    reserve_ms = stack.functions["RetryFunction"].module.delivery._reserve_ms
    ids = [f"dl-batch-{n}" for n in range(5)]
    for download_id in ids:
        # Each retry answers after 2 s: the records of a second round start that much later.
        sandbox.script(download_id, delay_seconds=2 if concurrency > 1 else 0)
        stack.send_to_queue(download_id)
    messages = receive_exactly(stack, 5)
    by_id = {m["MessageId"]: m["Body"] for m in messages}
    event = {"Records": [sqs_record(m, stack.outputs["RetryQueueArn"], stack.ids.region) for m in messages]}
    order = [m["Body"] for m in messages]

    finished: list[Handled] = []
    if concurrency == 1:
        # One by one: the time left drops below the reserve once two records are done.
        def remaining() -> int:
            return 60_000 if len(finished) < 2 else reserve_ms - 1

    else:
        # Two at once: the first two start with time to spare (1.8 s of slack, for a loaded
        # machine); by the time a worker is free (>= 2 s later) less than the reserve is left.
        created = time.monotonic()

        def remaining() -> int:
            return int(reserve_ms + 1_800 - (time.monotonic() - created) * 1000)

    context = context_for(stack, "RetryFunction", remaining)
    handler = stack.functions["RetryFunction"].handler
    with postpone_spy() as postponed, record_spy(stack, after=finished.append), _INVOKE_LOCK:
        answer = handler(event, context)  # the retry function, called as Lambda would

    failed = {by_id[f["itemIdentifier"]] for f in answer["batchItemFailures"]}
    started = {h.body for h in finished if h.error is None}
    assert len(started) == 2 and failed == set(order) - started  # the three it had no time for
    assert started == set(order[:2])  # records start in batch order
    assert all(type(h.error).__name__ == "OutOfTime" for h in finished if h.body in failed)
    for download_id in started:
        assert len(sandbox.retry_calls(download_id)) == 1
    for download_id in failed:
        assert sandbox.retry_calls(download_id) == []  # untouched
    assert postponed == [5, 5, 5]  # retried soon: they did nothing wrong

    # As the event source mapping would: delete what succeeded, the rest comes back.
    sqs = stack.client("sqs")
    for message in messages:
        if message["Body"] in failed:
            sqs.change_message_visibility(
                QueueUrl=stack.retry_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=stack.retry_queue_url, ReceiptHandle=message["ReceiptHandle"])
    for download_id in ids:
        sandbox.script(download_id)  # answer promptly from now on
    assert consumer.run(until=lambda: len(stack.executions()) == 5, timeout=30)
    assert consumer.poll_once() == 0
    assert [d.failed for d in consumer.deliveries] == [False] * 3
    for download_id in ids:  # none lost, none retried twice
        assert len(sandbox.retry_calls(download_id)) == 1
    assert sorted(e["name"].split("--")[0] for e in stack.executions()) == sorted(ids)


# -- duplicates --------------------------------------------------------------------------


def test_same_body_delivered_twice_is_retried_once(stack, consumer, sandbox):
    sandbox.script("dl-twice-sent", processing_seconds=1)

    with metric_spy() as metrics, record_spy(stack) as records:
        stack.send_to_queue("dl-twice-sent")
        stack.send_to_queue("dl-twice-sent")
        assert consumer.poll_once() == 2  # one batch holding both
        assert consumer.run(until=final_outcome(stack, "dl-twice-sent"), timeout=20)

    first, second = sorted(records.handled, key=lambda h: h.result != "workflow_started")
    assert first.result == "workflow_started" and second.result in DUPLICATE_RESULTS
    assert [d.failed for d in consumer.deliveries] == [False, False]
    assert len(sandbox.retry_calls("dl-twice-sent")) == 1
    assert metrics.count("Duplicates") == 1
    assert len(stack.executions()) == 1
    assert len(outcomes_of(stack, "dl-twice-sent")) == 1


def test_failure_event_and_bare_id_for_a_download_in_flight_retry_it_once(make_stack, sandbox):
    stack = make_stack(RetryBatchSize=1, LogLevel="INFO")
    consumer = QueueConsumer(stack)
    sandbox.script("dl-in-flight", processing_seconds=2)

    with metric_spy() as metrics, record_spy(stack) as records, app_log() as log:
        stack.send_failure_event("dl-in-flight", error="stream timed out")
        assert consumer.poll_once() == 1
        assert stack.running_executions() == 1  # the retry is in flight...
        stack.send_to_queue("dl-in-flight")  # ...when an operator enqueues the same id
        assert consumer.poll_once() == 1
        assert consumer.run(until=final_outcome(stack, "dl-in-flight"), timeout=20)

    first, second = records.handled
    assert first.result == "workflow_started" and second.result in DUPLICATE_RESULTS
    assert [d.failed for d in consumer.deliveries] == [False, False]
    assert len(sandbox.retry_calls("dl-in-flight")) == 1  # one POST for attempt 1
    assert metrics.count("Duplicates") == 1
    lines = [json.loads(line) for line in log.getvalue().splitlines() if line.startswith("{")]
    assert any(line["message"] in DUPLICATE_LOG_MESSAGES for line in lines)
    assert len(stack.executions()) == 1
    assert len(outcomes_of(stack, "dl-in-flight")) == 1
    assert wait_until(lambda: stack.running_executions() == 0, timeout=5)
