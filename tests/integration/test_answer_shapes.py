"""Every documented answer shape through the real handlers, moto and the sandbox (issue 13).

For each shape in sandbox_answers.SHAPES, one download whose retry ends done and one whose
retry ends failed, in the same stack: the outcome event says done only when the job did, and
carries the download URL or the error text from wherever that shape put it.
"""

from __future__ import annotations

import pytest

from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox_answers import SHAPES

from .conftest import dead_letters_of, final_outcome, outcomes_of

pytestmark = pytest.mark.integration

FAILURE = "Download failed: the source stream could not be read"
# Shapes whose "done" job is not announced as a success, and why (the rest succeed).
NOT_A_SUCCESS = {
    "done_with_success_false": "VideoDB answered success: false",
    # A record-form retry answer names no job URL: nothing to follow, so the attempt fails.
    "retry_is_download_record": "VideoDB answered processing without a job to poll",
}


def run_all(make_stack, sandbox, behaviour: dict) -> dict[str, dict]:
    """One download per shape, scripted with ``behaviour``; their single outcome events."""
    stack = make_stack(MaxRetryAttempts=1)
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    for name, documented in SHAPES.items():
        sandbox.script(
            f"dl-{name}", shape=documented.shape, status_spelling=dict(documented.spelling), **behaviour
        )
        stack.send_to_queue(f"dl-{name}")
    everything = lambda: all(final_outcome(stack, f"dl-{n}")() for n in SHAPES)  # noqa: E731
    assert consumer.run(until=everything, timeout=90)
    assert stack.dead_letters() == []
    outcomes = {}
    for name in SHAPES:
        (outcomes[name],) = outcomes_of(stack, f"dl-{name}")
    return outcomes


def test_a_done_job_in_every_shape(make_stack, sandbox):
    for name, event in run_all(make_stack, sandbox, {}).items():
        detail = event["detail"]
        if name in NOT_A_SUCCESS:
            assert event["detail-type"] == "Download Retry Failed", name
            assert detail["error"] == NOT_A_SUCCESS[name], name
            continue
        assert event["detail-type"] == "Download Retry Succeeded", name
        assert detail["result"]["download_url"].startswith(f"https://files.sandbox.invalid/dl-{name}/"), name
        assert detail["result"]["name"] == f"dl-{name}.mp4", name
        assert "error" not in detail, name


def test_a_failed_job_in_every_shape(make_stack, sandbox):
    for name, event in run_all(make_stack, sandbox, {"fail_times": 1}).items():
        detail = event["detail"]
        assert event["detail-type"] == "Download Retry Failed", name
        assert "download_url" not in detail.get("result", {}), name
        if name == "retry_is_download_record":
            assert detail["error"] == NOT_A_SUCCESS[name]
        else:
            assert detail["error"] == FAILURE, name  # from `message` or `data.error`


@pytest.mark.parametrize("spelled", ["PROCESSING", "In Progress", "pending"])
def test_a_running_word_in_any_case_is_followed_until_the_deadline_and_no_longer(
    make_stack, sandbox, spelled
):
    stack = make_stack(MaxRetryAttempts=1, PollDeadlineSeconds=2)
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    sandbox.script("dl-1", never_finishes=True, status_spelling={"processing": spelled})
    stack.send_to_queue("dl-1")
    assert consumer.run(until=final_outcome(stack, "dl-1"), timeout=30)
    (event,) = outcomes_of(stack, "dl-1")
    assert event["detail-type"] == "Download Retry Timed Out"
    assert "still processing" in event["detail"]["error"]


def test_a_word_no_source_documents_ends_the_attempt_at_once(make_stack, sandbox):
    # The SDK's rule: only processing / in progress keep a job running. An unknown word with
    # success: true and no download URL is not a success either.
    stack = make_stack(MaxRetryAttempts=1)
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    sandbox.script("dl-odd", status_spelling={"processing": "reticulating"})
    stack.send_to_queue("dl-odd")
    assert consumer.run(until=final_outcome(stack, "dl-odd"), timeout=20)
    (event,) = outcomes_of(stack, "dl-odd")
    assert event["detail-type"] == "Download Retry Failed"
    assert "'reticulating'" in event["detail"]["error"]
    assert stack.executions() == []  # nothing was followed
    assert len(sandbox.retry_calls("dl-odd")) == 1


def test_a_retry_of_a_download_not_in_error_goes_to_the_dlq_with_videodbs_reason(stack, consumer, sandbox):
    sandbox.add_download("dl-done", status="done")
    stack.send_to_queue("dl-done")
    assert consumer.run(until=lambda: bool(dead_letters_of(stack, download_id="dl-done")), timeout=20)
    (letter,) = dead_letters_of(stack, download_id="dl-done")
    assert letter["attributes"]["error_code"] == "http_400"
    assert "only a download in error status can be retried" in letter["attributes"]["reason"]
    assert outcomes_of(stack, "dl-done") == [] and stack.executions() == []


def test_after_a_timed_out_attempt_videodb_refuses_the_next_one(make_stack, sandbox):
    # The job is still processing when the deadline passes; the re-queued attempt's POST meets
    # a download that is not in error. With the sandbox's default (400), it ends in the DLQ.
    stack = make_stack(MaxRetryAttempts=2, PollDeadlineSeconds=2)
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    sandbox.script("dl-slow", never_finishes=True)
    stack.send_to_queue("dl-slow")
    assert consumer.run(until=lambda: bool(dead_letters_of(stack, download_id="dl-slow")), timeout=40)
    (first,) = outcomes_of(stack, "dl-slow")
    assert first["detail-type"] == "Download Retry Timed Out" and first["detail"]["will_retry"] is True
    (letter,) = dead_letters_of(stack, download_id="dl-slow")
    assert letter["attributes"]["error_code"] == "http_400"
    assert "is processing" in letter["attributes"]["reason"]
    assert len(sandbox.retry_calls("dl-slow")) == 2
