"""The retry function's per-record decisions, with in-memory fakes at the edges."""

import json

import pytest
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.errors import TransientError
from videodb_retry.rules.sequence import Report, Verdict
from videodb_retry.rules.status import JobState
from videodb_retry.steps.retry_attempt import InboundMessage, RecordResult, RetryService

from tests.fakes import (
    FakeDeadLetters,
    FakeKey,
    FakeOutcomes,
    FakeWorkflows,
    InMemoryLedger,
    in_memory_sequences,
)

from .conftest import Answer


@pytest.fixture
def make_service(http_server, settings_for):
    def make(dead_letters=None, workflows=None, outcomes=None, **overrides):
        settings = settings_for(**overrides)
        parts = {
            "dead_letters": dead_letters or FakeDeadLetters(),
            "workflows": workflows or FakeWorkflows(),
            "outcomes": outcomes or FakeOutcomes(),
            "ledger": InMemoryLedger(),
            "sequences": in_memory_sequences(),
        }
        service = RetryService(
            settings=settings, videodb=VideoDBClient(settings, FakeKey("k")), clock=lambda: 1000.0, **parts
        )
        return service, parts

    return make


def message(body, message_id="m-1", sent_at=999.0):
    # Sent just before the service's clock (1000.0) reads it, as SQS's SentTimestamp would be.
    return InboundMessage(body=body, message_id=message_id, receive_count=1, sent_at=sent_at)


def processing(http_server, job_id="job-7"):
    return Answer(
        200,
        {
            "success": True,
            "status": "processing",
            "data": {"id": job_id, "output_url": f"{http_server.base_url}/async-response/{job_id}"},
        },
    )


def test_processing_starts_the_workflow(http_server, make_service):
    http_server.answers.append(processing(http_server))
    service, parts = make_service(poll_deadline_seconds=600, poll_first_wait_seconds=5)
    assert (
        service.process(message('{"download_id": "download-1", "attempt": 2}'))
        is RecordResult.WORKFLOW_STARTED
    )
    (state,) = parts["workflows"].started
    assert state == {
        "download_id": "download-1",
        "job_id": "job-7",
        "output_url": f"{http_server.base_url}/async-response/job-7",
        "attempt": 2,
        "started_at": 1000.0,
        "deadline_at": 1600.0,
        "polls": 0,
        "wait_seconds": 5,
        "status": "running",
        "max_attempts": 3,
    }


def test_duplicate_workflow_start_is_not_an_error(http_server, make_service):
    http_server.answers.append(processing(http_server))
    service, _ = make_service(workflows=FakeWorkflows(exists=True))
    assert service.process(message("download-1")) is RecordResult.ALREADY_RUNNING


def test_done_at_once_settles_success(http_server, make_service):
    http_server.answers.append(
        Answer(200, {"success": True, "status": "done", "data": {"id": "job-1", "name": "a.mp4"}})
    )
    service, parts = make_service()
    assert service.process(message("download-1")) is RecordResult.SUCCEEDED
    (outcome,) = parts["outcomes"].settled
    assert outcome.ending.value == "done" and outcome.result == {"name": "a.mp4"}


def test_failed_at_once_is_a_failed_attempt(http_server, make_service):
    http_server.answers.append(Answer(200, {"success": False, "message": "source unreachable"}))
    service, parts = make_service()
    assert service.process(message("download-1")) is RecordResult.FAILED
    (outcome,) = parts["outcomes"].settled
    assert outcome.error == "source unreachable" and outcome.will_retry


def test_processing_without_output_url_is_a_failed_attempt(http_server, make_service):
    http_server.answers.append(
        Answer(200, {"success": True, "status": "processing", "data": {"id": "job-1"}})
    )
    service, parts = make_service()
    assert service.process(message("download-1")) is RecordResult.FAILED
    assert "without a job to poll" in parts["outcomes"].settled[0].error


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_permanent_errors_go_to_the_dlq_with_the_reason(http_server, make_service, status):
    http_server.answers.append(Answer(status, {"success": False, "message": "download not found"}))
    service, parts = make_service()
    assert service.process(message("download-1", "m-9")) is RecordResult.DEAD_LETTERED
    (sent,) = parts["dead_letters"].sent
    assert sent["error_code"] == f"http_{status}"
    assert "download not found" in sent["reason"]
    assert sent["download_id"] == "download-1" and sent["source_message_id"] == "m-9"
    assert sent["body"] == "download-1"


def test_poison_goes_to_the_dlq_before_any_http_call(http_server, make_service):
    service, parts = make_service()
    assert service.process(message("../../etc/passwd")) is RecordResult.DEAD_LETTERED
    assert parts["dead_letters"].sent[0]["error_code"] == "poison"
    assert http_server.seen == []


def test_attempt_beyond_the_maximum_is_dead_lettered(http_server, make_service):
    service, parts = make_service(max_retry_attempts=3)
    body = json.dumps({"download_id": "download-1", "attempt": 4})
    assert service.process(message(body)) is RecordResult.DEAD_LETTERED
    assert parts["dead_letters"].sent[0]["error_code"] == "attempts_exhausted"
    assert http_server.seen == []


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 402])
def test_transient_errors_raise_so_the_record_fails(http_server, make_service, status):
    http_server.answers.append(Answer(status, {"message": "busy"}))
    service, parts = make_service()
    with pytest.raises(TransientError):
        service.process(message("download-1"))
    assert parts["dead_letters"].sent == [] and parts["workflows"].started == []


def test_dlq_failure_fails_the_record_instead_of_losing_it(http_server, make_service):
    service, _ = make_service(dead_letters=FakeDeadLetters(fail=True))
    with pytest.raises(RuntimeError):
        service.process(message(""))


def test_state_is_running_string(http_server, make_service):
    http_server.answers.append(processing(http_server))
    service, parts = make_service()
    service.process(message("download-1"))
    assert parts["workflows"].started[0]["status"] == JobState.RUNNING.value


def test_duplicate_delivery_posts_once_and_starts_once(http_server, make_service):
    http_server.answers.append(processing(http_server))
    service, parts = make_service()
    assert service.process(message("download-1", "m-1")) is RecordResult.WORKFLOW_STARTED
    event = json.dumps({"detail-type": "Download Failed", "detail": {"download_id": "download-1"}})
    # The download's retry sequence is running: the second report does nothing.
    assert service.process(message(event, "m-2")) is RecordResult.DUPLICATE
    assert len(http_server.seen) == 1 and len(parts["workflows"].started) == 1


def test_a_failure_after_the_post_does_not_post_again_on_redelivery(http_server, make_service):
    http_server.answers.append(Answer(200, {"success": True, "status": "done", "data": {"id": "job-1"}}))
    service, parts = make_service(outcomes=FakeOutcomes(failures=1))
    with pytest.raises(TransientError):
        service.process(message("download-1"))
    assert service.process(message("download-1")) is RecordResult.SUCCEEDED
    assert len(http_server.seen) == 1 and len(parts["outcomes"].settled) == 1


def test_a_refused_report_redriven_from_the_dlq_is_retried_anew(http_server, make_service):
    # Moved back from the DLQ (it carries the DLQ's attributes): an operator's new report, so a
    # new retry sequence asks VideoDB again, even though it was sent before the last one ended.
    http_server.answers += [Answer(404, {"success": False, "message": "gone"})] * 2
    service, parts = make_service()
    assert service.process(message("download-1", "m-1")) is RecordResult.DEAD_LETTERED
    redriven = InboundMessage(
        body="download-1", message_id="m-2", receive_count=1, redriven=True, sent_at=1.0
    )
    assert service.process(redriven) is RecordResult.DEAD_LETTERED
    assert len(http_server.seen) == 2
    assert [d["source_message_id"] for d in parts["dead_letters"].sent] == ["m-1", "m-2"]
    assert {d["error_code"] for d in parts["dead_letters"].sent} == {"http_404"}


def test_a_report_sent_after_the_sequence_ended_begins_a_new_one(http_server, make_service):
    http_server.answers += [Answer(200, {"success": True, "status": "done", "data": {"id": "j"}})] * 2
    service, parts = make_service()
    assert service.process(message("download-1", "m-1")) is RecordResult.SUCCEEDED
    assert service.process(message("download-1", "m-2", sent_at=1000.5)) is RecordResult.SUCCEEDED
    assert [o.sequence for o in parts["outcomes"].settled] == [1, 2]
    assert len(http_server.seen) == 2


def test_a_duplicate_of_a_refused_attempt_does_nothing(http_server, make_service):
    # The same failure delivered twice (no DLQ attributes): one dead letter, one POST.
    http_server.answers.append(Answer(404, {"success": False, "message": "gone"}))
    service, parts = make_service()
    assert service.process(message("download-1", "m-1")) is RecordResult.DEAD_LETTERED
    assert service.process(message("download-1", "m-2")) is RecordResult.DUPLICATE
    assert len(http_server.seen) == 1
    assert [d["source_message_id"] for d in parts["dead_letters"].sent] == ["m-1"]


def test_next_attempt_is_not_a_duplicate(http_server, make_service):
    # every retry VideoDB accepts is a new job
    http_server.answers += [processing(http_server), processing(http_server, "job-8")]
    service, _ = make_service()
    service.process(message("download-1"))
    assert (
        service.process(message('{"download_id": "download-1", "attempt": 2}'))
        is RecordResult.WORKFLOW_STARTED
    )
    assert len(http_server.seen) == 2


def test_foreign_output_url_is_dead_lettered_not_polled(http_server, make_service):
    http_server.answers.append(
        Answer(
            200,
            {
                "success": True,
                "status": "processing",
                "data": {"id": "job-1", "output_url": "https://evil.example/async-response/job-1"},
            },
        )
    )
    service, parts = make_service()
    assert service.process(message("download-1")) is RecordResult.DEAD_LETTERED
    assert parts["dead_letters"].sent[0]["error_code"] == "foreign_origin"
    assert parts["workflows"].started == []


def test_a_redriven_attempt_that_keeps_failing_ends_the_sequence_it_began(http_server, make_service):
    # Its body names the old sequence 1; moved back from the DLQ it began sequence 2, and
    # giving up on it (transient_exhausted) must end 2, or the download would stay blocked.
    http_server.answers.append(Answer(404, {"success": False, "message": "gone"}))
    service, parts = make_service()
    assert service.process(message("download-1", "m-1")) is RecordResult.DEAD_LETTERED  # sequence 1
    body = '{"download_id": "download-1", "attempt": 2, "sequence": 1}'
    redriven = InboundMessage(body=body, message_id="m-7", receive_count=10, redriven=True, sent_at=999.0)
    with pytest.raises(TransientError):
        service.process(redriven)  # the scripted server answers 500
    sequences = parts["sequences"]
    assert sequences.begin("download-1", Report("m-8", 1000.0), 1000.0).verdict is Verdict.DUPLICATE
    service.dead_letter(redriven, "still failing", "transient_exhausted", "download-1")
    assert sequences.begin("download-1", Report("m-9", 1000.5), 1000.5).verdict is Verdict.BEGUN
