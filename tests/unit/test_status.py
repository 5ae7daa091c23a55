import pytest

from videodb_retry.status import JobState, UnreadableResponse, map_status, parse_job_response


@pytest.mark.parametrize(
    "raw, state",
    [
        ("processing", JobState.RUNNING),
        ("in progress", JobState.RUNNING),
        ("pending", JobState.RUNNING),
        ("done", JobState.DONE),
        ("completed", JobState.DONE),
        ("success", JobState.DONE),
        ("failed", JobState.FAILED),
        ("error", JobState.FAILED),
        ("  DONE ", JobState.DONE),
        ("exploded", None),
        (None, None),
        (3, None),
    ],
)
def test_every_documented_spelling_maps(raw, state):
    assert map_status(raw) is state


def test_async_response_processing():
    status = parse_job_response(
        {
            "success": True,
            "status": "processing",
            "data": {"id": "job-1", "output_url": "https://api.videodb.io/async-response/job-1"},
        }
    )
    assert status.state is JobState.RUNNING
    assert status.job_id == "job-1"
    assert status.output_url.endswith("/job-1")


def test_response_wrapper_is_unwrapped():
    body = {"response": {"success": True, "status": "done", "data": {"name": "a.mp4", "download_url": "u"}}}
    status = parse_job_response(body)
    assert status.state is JobState.DONE
    assert status.result == {"name": "a.mp4", "download_url": "u"}


def test_success_false_is_failed_whatever_the_status():
    status = parse_job_response({"success": False, "status": "done", "message": "source gone"})
    assert status.state is JobState.FAILED
    assert status.error == "source gone"


def test_error_text_from_data_error():
    status = parse_job_response({"success": True, "status": "failed", "data": {"error": "codec"}})
    assert status.state is JobState.FAILED and status.error == "codec"


def test_download_record_status_inside_data():
    status = parse_job_response({"success": True, "data": {"id": "download-1", "status": "error"}})
    assert status.state is JobState.FAILED


@pytest.mark.parametrize("body", [[], "done", None, {"success": True, "status": "weird"}, {"data": {}}])
def test_unreadable_bodies_raise(body):
    with pytest.raises(UnreadableResponse):
        parse_job_response(body)
