import json

from videodb_retry.adapters.workflow import MAX_EXECUTION_NAME, execution_name
from videodb_retry.rules.messages import parse_body
from videodb_retry.rules.outcomes import Ending, Outcome
from videodb_retry.settings import Settings


def outcome(ending, attempt=1, max_attempts=3, **kw):
    return Outcome(ending=ending, download_id="download-1", attempt=attempt, max_attempts=max_attempts, **kw)


def test_detail_types():
    assert outcome(Ending.DONE).detail_type == "Download Retry Succeeded"
    assert outcome(Ending.FAILED).detail_type == "Download Retry Failed"
    assert outcome(Ending.TIMED_OUT).detail_type == "Download Retry Timed Out"


def test_will_retry_only_for_failures_with_attempts_left():
    assert not outcome(Ending.DONE).will_retry
    assert outcome(Ending.FAILED, attempt=2).will_retry
    assert not outcome(Ending.FAILED, attempt=3).will_retry
    assert not outcome(Ending.TIMED_OUT, attempt=3).will_retry


def test_detail_holds_what_the_issue_lists():
    detail = outcome(
        Ending.FAILED, job_id="job-9", polls=4, elapsed_seconds=61.26, error="codec", attempt=2
    ).detail()
    assert detail == {
        "download_id": "download-1",
        "job_id": "job-9",
        "status": "failed",
        "attempt": 2,
        "max_attempts": 3,
        "sequence": None,
        "polls": 4,
        "elapsed_seconds": 61.3,
        "will_retry": True,
        "error": "codec",
    }


def test_next_request_goes_back_through_the_message_contract():
    request = parse_body(
        outcome(Ending.TIMED_OUT, attempt=1, error="still processing").next_request().to_body()
    )
    assert request.download_id == "download-1" and request.attempt == 2
    assert "timed_out" in request.reason


def test_for_workflow():
    settings = Settings(requeue_delay_seconds=42)
    finished = outcome(Ending.FAILED).for_workflow(settings)
    assert finished["requeue"] is True and finished["requeue_delay_seconds"] == 42
    assert json.loads(finished["requeue_body"])["attempt"] == 2
    assert outcome(Ending.DONE).for_workflow(settings)["requeue"] is False


def test_execution_name_is_deterministic_and_valid():
    assert execution_name("download-1", "job-1") == execution_name("download-1", "job-1")
    assert execution_name("download-1", "job-1") != execution_name("download-1", "job-2")
    long_name = execution_name("d" * 128, "job:with/odd chars")
    assert len(long_name) <= MAX_EXECUTION_NAME
    assert all(c.isalnum() or c in "-_" for c in long_name)
    assert long_name != execution_name("d" * 128, "job:with/odd chars2")


def test_every_ending_has_its_count_metric():
    from videodb_retry.observability import ENDING_METRICS, Metric

    assert {ending: ENDING_METRICS[ending] for ending in Ending} == {
        Ending.DONE: Metric.RETRIES_SUCCEEDED,
        Ending.FAILED: Metric.RETRIES_FAILED,
        Ending.TIMED_OUT: Metric.RETRIES_TIMED_OUT,
    }
