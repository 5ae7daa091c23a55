"""Every row of status.py's decision table, every documented answer shape, and properties over
letter cases and strings no source documents."""

import itertools

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from videodb_retry.rules.sanitise import MAX_TEXT_CHARS, TRUNCATED
from videodb_retry.rules.status import (
    DECISIONS,
    STATUS_WORDS,
    JobState,
    JobStatus,
    StatusWord,
    UnreadableResponse,
    decide,
    error_text,
    map_status,
    normalise_status,
    parse_job_response,
    status_word,
)

DOCUMENTED = sorted(STATUS_WORDS)
URL = "https://files.example/dl-1.mp4?expires=1"


def recase(word: str, mask: list[bool]) -> str:
    return "".join(c.upper() if up else c.lower() for c, up in zip(word, itertools.cycle(mask)))


# -- the table ------------------------------------------------------------------------------


def test_the_table_has_a_row_for_every_word_and_success_value():
    assert set(DECISIONS) == set(itertools.product(StatusWord, [True, False, None]))


@pytest.mark.parametrize(
    ("raw", "success", "has_url", "state"),
    [
        ("processing", True, False, JobState.RUNNING),
        ("in progress", True, False, JobState.RUNNING),  # the Python SDK's Status.in_progress
        ("pending", None, False, JobState.RUNNING),  # async-response prose
        ("processing", False, False, JobState.FAILED),  # an Error body ends the attempt
        ("done", True, False, JobState.DONE),
        ("completed", None, True, JobState.DONE),
        ("done", False, True, JobState.FAILED),  # done with success: false is not a success
        ("failed", True, True, JobState.FAILED),
        ("error", None, False, JobState.FAILED),  # the download record's failure
        ("exploded", True, True, JobState.DONE),  # the SDK's rule: terminal, judged by success
        ("exploded", True, False, JobState.FAILED),  # ...but no success without a download URL
        ("exploded", None, True, JobState.FAILED),
        ("exploded", False, True, JobState.FAILED),
        (None, True, True, JobState.DONE),  # no status at all: the same rule
        (None, True, False, JobState.FAILED),
        (3, "yes", True, JobState.FAILED),  # neither is what the schema says: not a success
    ],
)
def test_each_decision(raw, success, has_url, state):
    assert decide(raw, success, has_url) is state


# -- properties over spellings ----------------------------------------------------------------


# No deadline: the machine is shared, and a slow example is not a wrong one.
RELAXED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RELAXED
@given(
    st.sampled_from(DOCUMENTED),
    st.lists(st.booleans(), min_size=1, max_size=8),
    st.sampled_from(["", " ", "  ", "\t"]),
)
def test_documented_words_in_any_letter_case_mean_the_same(word, mask, pad):
    spelled = pad + recase(word, mask).replace(" ", "_") + pad
    assert status_word(spelled) is STATUS_WORDS[word]
    assert normalise_status(spelled) == word


@RELAXED
@given(st.text(max_size=30))
def test_undocumented_strings_are_unknown_and_never_running(raw):
    assume(normalise_status(raw) not in STATUS_WORDS)
    assert status_word(raw) is StatusWord.UNKNOWN
    assert map_status(raw) is None
    # An unknown word never keeps a job running (so it cannot be followed for ever) and is
    # never a success without a download URL.
    for success in (True, False, None):
        assert decide(raw, success, False) is JobState.FAILED
        assert decide(raw, success, True) is not JobState.RUNNING


@RELAXED
@given(
    st.one_of(st.text(max_size=20), st.none(), st.integers()),
    st.sampled_from([True, False, None, "true", 1]),
    st.booleans(),
)
def test_done_only_when_the_status_is_not_a_failure_and_success_is_not_false(raw, success, has_url):
    state = decide(raw, success, has_url)
    if state is JobState.DONE:
        assert success is not False
        assert status_word(raw) in (StatusWord.DONE, StatusWord.UNKNOWN)
        assert status_word(raw) is StatusWord.DONE or (has_url and success is True)
    if success is False:
        assert state is JobState.FAILED


# -- answer shapes ------------------------------------------------------------------------------


def test_async_response_processing():
    status = parse_job_response(
        {
            "success": True,
            "status": "processing",
            "data": {"id": "job-1", "output_url": "https://api.videodb.io/async-response/job-1"},
        }
    )
    assert status.state is JobState.RUNNING and status.job_id == "job-1"
    assert status.output_url.endswith("/job-1") and status.raw_status == "processing"


@pytest.mark.parametrize("spelled", ["PROCESSING", "In Progress", "in_progress", "Pending"])
def test_running_in_other_spellings(spelled):
    status = parse_job_response({"success": True, "status": spelled, "data": {"id": "j", "output_url": "u"}})
    assert status.state is JobState.RUNNING and status.raw_status == spelled


def test_response_wrapper_is_unwrapped():
    body = {"response": {"success": True, "status": "done", "data": {"name": "a.mp4", "download_url": URL}}}
    status = parse_job_response(body)
    assert status.state is JobState.DONE
    assert status.result == {"name": "a.mp4", "download_url": URL}


def test_result_fields_beside_data_are_read_too():
    body = {
        "success": True,
        "status": "done",
        "download_id": "dl-1",
        "name": "a.mp4",
        "download_url": URL,
        "data": {"id": "job-1"},
    }
    status = parse_job_response(body, "dl-1")
    assert status.state is JobState.DONE and status.result == {"name": "a.mp4", "download_url": URL}


def test_the_download_record_form():
    record = {
        "id": "dl-1",
        "name": "a.mp4",
        "status": "done",
        "download_url": URL,
        "created_at": "2026-01-01T00:00:00Z",
    }
    status = parse_job_response({"success": True, "data": record}, "dl-1")
    assert status.state is JobState.DONE and status.result["download_url"] == URL
    failed = parse_job_response(
        {"success": True, "data": {**record, "status": "error", "error": "source gone"}}
    )
    assert failed.state is JobState.FAILED and failed.error == "source gone" and failed.result == {}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"success": False, "status": "done", "message": "source gone"}, "source gone"),
        ({"success": True, "status": "failed", "data": {"error": "codec"}}, "codec"),
        ({"response": {"success": False, "message": "inner"}, "message": "outer"}, "inner"),
        ({"response": {"success": False, "status": "failed"}, "message": "outer"}, "outer"),
        ({"response": {"success": True, "status": "failed", "data": {"error": "deep"}}}, "deep"),
        ({"success": False}, "VideoDB answered success: false"),
    ],
)
def test_error_text_from_every_documented_place(body, text):
    status = parse_job_response(body)
    assert status.state is JobState.FAILED and status.error == text


def test_error_text_is_capped():
    status = parse_job_response({"success": False, "message": "x" * 5000})
    assert len(status.error) == MAX_TEXT_CHARS and status.error.endswith(TRUNCATED)
    assert error_text({"data": {"error": "e"}}) == "e" and error_text([]) is None


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "status": "done", "download_id": "dl-other", "data": {"download_url": URL}},
        {"success": True, "status": "done", "data": {"download_id": "dl-other", "download_url": URL}},
        {
            "response": {
                "success": True,
                "status": "processing",
                "download_id": "dl-other",
                "data": {"id": "j", "output_url": "u"},
            }
        },
    ],
)
def test_an_answer_about_another_download_is_a_failure(body):
    status = parse_job_response(body, "dl-1")
    assert status.state is JobState.FAILED and "'dl-other', not 'dl-1'" in status.error
    assert status.result == {} and status.output_url is None
    assert parse_job_response(body).state is not JobState.FAILED  # nothing asked: not judged


def test_unknown_status_with_success_and_url_is_done_and_without_is_failed():
    done = parse_job_response({"success": True, "status": "exported", "data": {"download_url": URL}})
    assert done.state is JobState.DONE and done.raw_status == "exported"
    failed = parse_job_response({"success": True, "status": "exported"})
    assert failed.state is JobState.FAILED and "'exported'" in failed.error


def test_round_trip_and_old_ledger_entries():
    status = parse_job_response({"success": True, "status": "Done", "data": {"download_url": URL}})
    assert JobStatus.from_dict(status.to_dict()) == status
    old = {"state": "running", "job_id": "j", "output_url": "u", "result": {}, "error": None}
    assert JobStatus.from_dict(old).raw_status is None


@pytest.mark.parametrize("body", [[], "done", None, 3])
def test_bodies_that_are_not_objects_raise(body):
    with pytest.raises(UnreadableResponse):
        parse_job_response(body)
