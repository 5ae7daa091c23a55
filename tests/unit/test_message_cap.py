"""VideoDB's message is capped once, the same way on every path it takes.

Whatever VideoDB writes (any length, any character) reaches the dead-letter reason, the
outcome event's ``error`` and the re-queued ``reason`` cleaned by ``sanitise.clean_text`` and
cut at ``MAX_TEXT_CHARS`` (1,024) characters counted over the whole field, never earlier: a
4xx on the retry, a 4xx on the poll and a 200 ``failed`` answer keep the same text.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st
from videodb_retry.adapters.dead_letter import _string as dead_letter_attribute
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.rules.messages import parse_body
from videodb_retry.rules.sanitise import MAX_TEXT_CHARS, TRUNCATED, clean_text
from videodb_retry.settings import Settings
from videodb_retry.steps.poll import Ended, poll_step
from videodb_retry.steps.retry_attempt import InboundMessage, RecordResult, RetryService

from tests.fakes import (
    FakeDeadLetters,
    FakeKey,
    FakeOutcomes,
    FakeWorkflows,
    InMemoryLedger,
    in_memory_sequences,
)

BASE = "https://api.videodb.test"
KEY = "sk-0123456789abcdefghijklmnopqrstuv"
SETTINGS = Settings(api_base_url=BASE, max_retry_attempts=3)
STATE = {
    "download_id": "dl-1",
    "job_id": "job-1",
    "output_url": f"{BASE}/async-response/job-1",
    "attempt": 1,
    "started_at": 1000.0,
    "deadline_at": 9000.0,
    "polls": 0,
}


class OneAnswer(requests.Session):
    """A requests session that answers every request with one status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__()
        self._status, self._body = status, body

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = self._status
        response._content = json.dumps(self._body).encode()
        return response


def client(status: int, body: dict[str, Any]) -> VideoDBClient:
    return VideoDBClient(SETTINGS, FakeKey(KEY), session=OneAnswer(status, body))


def refused(message: str) -> dict[str, Any]:
    return {"success": False, "message": message}


def failed(message: str) -> dict[str, Any]:
    return {"success": False, "status": "failed", "data": {"error": message}}


def retry_service(videodb: VideoDBClient) -> tuple[RetryService, FakeDeadLetters, FakeOutcomes]:
    dead, outcomes = FakeDeadLetters(), FakeOutcomes()
    service = RetryService(
        settings=SETTINGS,
        videodb=videodb,
        dead_letters=dead,
        workflows=FakeWorkflows(),
        outcomes=outcomes,
        ledger=InMemoryLedger(),
        sequences=in_memory_sequences(),
        clock=lambda: 1000.0,
    )
    return service, dead, outcomes


def every_path(message: str) -> dict[str, tuple[str, str]]:
    """Each path's field holding VideoDB's ``message``, with the text the path puts before it."""
    fields: dict[str, tuple[str, str]] = {}
    service, dead, _ = retry_service(client(400, refused(message)))
    assert service.process(InboundMessage("dl-1", "m-1")) is RecordResult.DEAD_LETTERED
    reason = dead.sent[0]["reason"]
    fields["retry 4xx: DLQ reason attribute"] = (
        dead_letter_attribute(reason)["StringValue"],
        "POST /download/dl-1 answered 400: ",
    )
    service, _, outcomes = retry_service(client(200, failed(message)))
    assert service.process(InboundMessage("dl-1", "m-1")) is RecordResult.FAILED
    outcome = outcomes.settled[0]
    fields["retry 200 failed: event error"] = (outcome.detail()["error"], "")
    requeued = parse_body(outcome.next_request().to_body()).reason or ""
    fields["retry 200 failed: re-queued reason"] = (requeued, "attempt 1 failed: ")
    for status, body, prefix in (
        (404, refused(message), "GET /async-response/job-1 answered 404: "),
        (200, failed(message), ""),
    ):
        ended = poll_step(dict(STATE), client(status, body), SETTINGS, now=1010.0)
        assert isinstance(ended, Ended)
        fields[f"poll {status}: event error"] = (ended.outcome.detail()["error"], prefix)
        state = ended.to_state(SETTINGS)
        fields[f"poll {status}: workflow event error"] = (state["outcome"]["detail"]["error"], prefix)
    return fields


def messages() -> st.SearchStrategy[str]:
    # Long texts are what the cap is about: a short piece repeated up to 3,000 characters.
    piece = st.text(min_size=1, max_size=12)
    return st.one_of(
        st.text(min_size=1, max_size=40),
        st.builds(lambda p, n: (p * n)[:3000], piece, st.integers(1, 400)),
    ).filter(lambda m: m.strip() != "")


@settings(max_examples=150, deadline=None)
@given(messages())
@example("x" * 500)  # kept whole by the 200 path, cut to 300 on the 4xx paths before
@example("é\x00" * 700)
def test_every_path_keeps_the_same_cleaned_message_up_to_the_one_cap(message):
    cleaned = clean_text(message)
    for path, (field, prefix) in every_path(message).items():
        assert len(field) <= MAX_TEXT_CHARS, path
        assert field == clean_text(field), f"{path}: refused characters left"
        whole = prefix + cleaned
        if len(whole) <= MAX_TEXT_CHARS:
            assert field == whole, f"{path}: VideoDB's message was cut before the cap"
        else:
            assert field.endswith(TRUNCATED), path
            assert whole.startswith(field[: -len(TRUNCATED)]), path
            assert len(field) == MAX_TEXT_CHARS, f"{path}: cut below the cap"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1100), st.sampled_from([400, 404, 409]))
def test_the_key_is_redacted_wherever_the_cut_falls(offset, status):
    # The key is taken out of the whole message before it is cut: a cut never leaves a piece.
    # (The 4xx paths: a 2xx body is parsed as the job's answer, not searched for the key.)
    message = "e" * offset + KEY + " tail"
    for path, (field, _) in every_path(message).items():
        if path.startswith(("retry 4xx", "poll 404")):
            assert KEY[:12] not in field, path
