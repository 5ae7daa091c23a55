"""One step of the wait/poll loop, against a scripted API on loopback."""

import json

import pytest
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.steps.poll import InvalidPollState, TransientPollError, poll_step

from tests.fakes import workflow_state

from .conftest import Answer, FakeKey


@pytest.fixture
def step(http_server, settings_for):
    def run(state_overrides=None, now=1010.0, **settings_overrides):
        settings = settings_for(**settings_overrides)
        state = workflow_state(
            http_server.base_url, wait_seconds=5, status="running", **(state_overrides or {})
        )
        # The workflow state the handler returns (what the state machine reads).
        result = poll_step(state, VideoDBClient(settings, FakeKey("sk-k")), settings, now=now)
        return result.to_state(settings)

    return run


def test_running_job_gets_the_next_backoff_wait(http_server, step):
    http_server.answers.append(Answer(200, {"success": True, "status": "in progress", "data": {}}))
    state = step({"polls": 2})
    assert state["status"] == "running" and state["polls"] == 3
    # The workflow's ladder after the third poll: 15 * 1.25**2 ~ 23 s, jittered by at most 10 %
    assert 21 <= state["wait_seconds"] <= 26
    assert "outcome" not in state


def test_wait_is_clipped_to_the_deadline(http_server, step):
    http_server.answers.append(Answer(200, {"success": True, "status": "processing"}))
    state = step({"polls": 10}, now=1597.5)
    assert state["status"] == "running" and state["wait_seconds"] == 3


def test_deadline_passed_ends_as_timed_out(http_server, step):
    http_server.answers.append(Answer(200, {"success": True, "status": "pending"}))
    state = step(now=1600.0, max_retry_attempts=1)
    assert state["status"] == "timed_out"
    outcome = state["outcome"]
    assert outcome["detail_type"] == "Download Retry Timed Out"
    assert outcome["requeue"] is False and outcome["detail"]["will_retry"] is False
    assert outcome["detail"]["elapsed_seconds"] == 600.0


def test_done_carries_the_result(http_server, step):
    http_server.answers.append(
        Answer(
            200,
            {
                "response": {
                    "success": True,
                    "status": "completed",
                    "data": {"name": "v.mp4", "download_url": "u"},
                }
            },
        )
    )
    state = step({"polls": 1})
    assert state["status"] == "done" and state["polls"] == 2
    assert state["outcome"]["detail"]["result"] == {"name": "v.mp4", "download_url": "u"}
    assert state["outcome"]["requeue"] is False


def test_failed_job_requeues_when_attempts_remain(http_server, step):
    http_server.answers.append(Answer(200, {"success": False, "status": "failed", "message": "bad source"}))
    state = step({"attempt": 1}, requeue_delay_seconds=30)
    assert state["status"] == "failed"
    outcome = state["outcome"]
    assert outcome["requeue"] is True and outcome["requeue_delay_seconds"] == 30
    assert json.loads(outcome["requeue_body"])["attempt"] == 2
    assert outcome["detail"]["error"] == "bad source"


def test_foreign_output_url_fails_closed_without_a_request(http_server, step):
    state = step({"output_url": "https://evil.example/async-response/job-1"})
    assert state["status"] == "failed" and "not followed" in state["outcome"]["detail"]["error"]
    assert http_server.seen == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_poll_errors_raise_for_the_state_machine_retry(http_server, step, status):
    http_server.answers.append(Answer(status, {}))
    with pytest.raises(TransientPollError):
        step()


def test_job_not_found_is_a_failed_attempt_too(http_server, step):
    http_server.answers.append(Answer(404, {"success": False, "message": "Response not found"}))
    state = step()
    assert state["status"] == "failed" and "404" in state["outcome"]["detail"]["error"]


def test_poll_error_from_catch_is_settled_without_calling_the_api(http_server, step):
    cause = json.dumps({"errorType": "TransientPollError", "errorMessage": "GET answered 503"})
    state = step({"poll_error": {"Error": "TransientPollError", "Cause": cause}})
    assert state["status"] == "failed"
    assert "GET answered 503" in state["outcome"]["detail"]["error"]
    assert "poll_error" not in state
    assert http_server.seen == []


def test_bad_state_is_refused():
    with pytest.raises(InvalidPollState):
        poll_step({"download_id": "x"}, None, None, now=0)  # type: ignore[arg-type]


def test_max_polls_ends_as_timed_out(http_server, step):
    http_server.answers.append(Answer(200, {"success": True, "status": "processing"}))
    state = step({"polls": 9}, poll_max_polls=10)
    assert state["status"] == "timed_out" and state["polls"] == 10
    assert "10 polls" in state["outcome"]["detail"]["error"]


def test_a_malformed_state_is_still_settled_after_a_poll_error(http_server, settings_for):
    settings = settings_for()
    state = {"download_id": "download-1", "poll_error": {"Error": "InvalidPollState", "Cause": "{}"}}
    settled = poll_step(state, VideoDBClient(settings, FakeKey("k")), settings, now=5.0).to_state(settings)
    assert settled["status"] == "failed"
    assert settled["outcome"]["detail"]["download_id"] == "download-1"
    assert http_server.seen == []


# -- answer shapes (issue 13): how each documented answer is judged -----------------------------

URL = "https://files.example/download-1.mp4?expires=1"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        # done with success: false is a failure, never a success
        (
            {"success": False, "status": "done", "data": {"download_url": URL}},
            "failed",
            "VideoDB answered success: false",
        ),
        # the error text wherever VideoDB put it
        ({"success": True, "status": "failed", "data": {"error": "codec"}}, "failed", "codec"),
        ({"response": {"success": False, "status": "failed", "message": "wrapped"}}, "failed", "wrapped"),
        (
            {"success": True, "data": {"id": "download-1", "status": "error", "error": "gone"}},
            "failed",
            "gone",
        ),
        # a status no source documents: terminal, judged by success (and a URL)
        ({"success": True, "status": "reticulating"}, "failed", "'reticulating'"),
        ({"success": False, "status": "reticulating", "message": "no"}, "failed", "no"),
        # an answer about another download
        (
            {"success": True, "status": "done", "download_id": "download-2", "data": {"download_url": URL}},
            "failed",
            "'download-2', not 'download-1'",
        ),
    ],
)
def test_answers_that_end_the_attempt_as_failed(http_server, step, body, status, error):
    http_server.answers.append(Answer(200, body))
    state = step(max_retry_attempts=1)
    assert state["status"] == status
    assert error in state["outcome"]["detail"]["error"]
    assert state["outcome"]["detail_type"] == "Download Retry Failed"
    assert "download_url" not in state["outcome"]["detail"].get("result", {})


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "status": "DONE", "data": {"download_url": URL, "name": "v.mp4"}},
        {"success": True, "status": "exported", "data": {"download_url": URL, "name": "v.mp4"}},
        {
            "success": True,
            "download_id": "download-1",
            "name": "v.mp4",
            "download_url": URL,
            "status": "Completed",
        },
        {
            "success": True,
            "data": {
                "id": "download-1",
                "name": "v.mp4",
                "status": "done",
                "download_url": URL,
                "created_at": "2026-01-01T00:00:00Z",
            },
        },
        {
            "response": {
                "success": True,
                "status": "done",
                "data": {"download_id": "download-1", "download_url": URL, "name": "v.mp4"},
            }
        },
    ],
)
def test_answers_that_are_a_success_carry_the_download_url(http_server, step, body):
    http_server.answers.append(Answer(200, body))
    state = step()
    assert state["status"] == "done"
    assert state["outcome"]["detail"]["result"] == {"name": "v.mp4", "download_url": URL}


@pytest.mark.parametrize("spelled", ["PROCESSING", "In Progress", "in_progress", "pending"])
def test_running_words_in_any_case_keep_polling_but_only_within_the_bounds(http_server, step, spelled):
    http_server.answers.append(Answer(200, {"success": True, "status": spelled}))
    assert step()["status"] == "running"
    http_server.answers.append(Answer(200, {"success": True, "status": spelled}))
    assert step(now=1600.0)["status"] == "timed_out"
    http_server.answers.append(Answer(200, {"success": True, "status": spelled}))
    assert step({"polls": 9}, poll_max_polls=10)["status"] == "timed_out"


def test_a_404_on_the_output_url_is_a_failed_attempt_that_is_retried(http_server, step):
    # The spec documents 404 (`Error`) for an unknown async response: the job is gone, so this
    # attempt failed; the next attempt POSTs again (bounded by MaxRetryAttempts).
    http_server.answers.append(
        Answer(404, {"success": False, "message": "Response not found", "error_code": "NOT_FOUND"})
    )
    state = step({"attempt": 1}, max_retry_attempts=3)
    assert state["status"] == "failed" and state["outcome"]["requeue"] is True
    assert "Response not found" in state["outcome"]["detail"]["error"]
