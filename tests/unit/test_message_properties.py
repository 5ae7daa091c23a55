"""Property-based tests of the message contract and the retry step's handling of bad input:
whatever arrives, nothing crashes, no invalid id reaches the API, every poison body gets a reason."""

from __future__ import annotations

import json
import string
from types import SimpleNamespace
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from videodb_retry.adapters.dead_letter import DeadLetterQueue
from videodb_retry.rules.messages import PoisonMessage, RetryRequest, is_valid_download_id, parse_body
from videodb_retry.rules.status import JobState, JobStatus
from videodb_retry.settings import Settings
from videodb_retry.steps.retry_attempt import InboundMessage, RecordResult, RetryService

from tests.fakes import InMemoryLedger, in_memory_sequences
from videodb_retry_local.stack.aws_limits import _SQS_REFUSED_CHARS, StrictAws

SQS_MAX_BYTES = 256 * 1024

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
path_like_ids = st.sampled_from(
    [
        "../x",
        "a/b",
        "/etc/passwd",
        "download-1/../../admin",
        "http://evil.example/",
        "%2e%2e%2f",
        "a b",
        "a\tb",
        "download-1?x=1",
        "download-1#f",
        "\uff44\uff4f\uff57\uff4e\uff4c\uff4f\uff41\uff44",  # fullwidth "download"
        "download\u200b1",
        "~root",
        "a\\b",
        "..",
        ".",
    ]
)
bodies = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
    json_values.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["download_id", "attempt", "reason", "detail", "detail-type"]),
        json_values,
        max_size=5,
    ).map(json.dumps),
    path_like_ids,
    path_like_ids.map(lambda i: json.dumps({"download_id": i})),
    path_like_ids.map(lambda i: json.dumps({"detail-type": "Download Failed", "detail": {"download_id": i}})),
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=200),
)


@given(bodies)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_parse_body_either_yields_a_valid_id_or_poison_with_a_reason(body):
    try:
        request = parse_body(body)
    except PoisonMessage as exc:
        assert str(exc)
    else:
        assert is_valid_download_id(request.download_id)
        assert request.attempt >= 1


class RecordingApi:
    """Stands in for the VideoDB client; remembers every id it was asked to retry."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def retry_download(self, download_id: str) -> JobStatus:
        self.ids.append(download_id)
        return JobStatus(state=JobState.DONE, job_id="job-1")

    def followable_url(self, url: str) -> str:
        return url


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, **kwargs) -> None:
        self.sent.append(kwargs)


class NullOutcomes:
    def settle(self, outcome) -> None:
        pass


@given(bodies)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_retry_step_never_sends_an_invalid_id_and_dead_letters_poison_with_a_reason(body):
    api, dead_letters = RecordingApi(), RecordingDeadLetters()
    service = RetryService(
        settings=Settings(max_retry_attempts=1_000_000),
        videodb=api,  # type: ignore[arg-type]
        dead_letters=dead_letters,  # type: ignore[arg-type]
        workflows=None,  # type: ignore[arg-type]
        outcomes=NullOutcomes(),  # type: ignore[arg-type]
        ledger=InMemoryLedger(),
        sequences=in_memory_sequences(),
    )
    result = service.process(InboundMessage(body=body, message_id="m-1"))
    assert all(is_valid_download_id(i) for i in api.ids)
    if result is RecordResult.DEAD_LETTERED:
        (sent,) = dead_letters.sent
        assert sent["reason"] and sent["error_code"] in ("poison", "attempts_exhausted")
        assert sent["body"] == body  # the original body, not a stripped or re-encoded one
        assert api.ids == []
    else:
        assert len(api.ids) == 1 and dead_letters.sent == []


@given(
    st.integers(min_value=0, max_value=SQS_MAX_BYTES),
    st.sampled_from(["a", "é", "😀", "\udcff", "\x00", "\x1b", "\ufffe"]),
    st.text(max_size=3000),
    st.one_of(st.none(), st.text(max_size=200)),
)
@settings(max_examples=80, deadline=None)
def test_any_dead_letter_fits_what_sqs_accepts(size, char, reason, download_id):
    # Body of any size up to the limit, VideoDB's message with any characters (a control
    # character in a 404's message was refused by real SQS): the request SQS gets is valid.
    body = char * (size // max(1, len(char.encode("utf-8", "replace"))))
    sent: list[dict] = []
    fake = SimpleNamespace(send_message=lambda **params: sent.append(params))
    with mock.patch("videodb_retry.adapters.dead_letter.client", lambda service: fake):
        DeadLetterQueue(SimpleNamespace(dead_letter_queue_url="https://q")).send(
            body, reason, "http_404", "m-1", download_id, receive_count=3
        )
    (params,) = sent
    StrictAws().before("SendMessage", params)  # raises LimitExceeded naming the limit
    assert params["MessageAttributes"]["error_code"]["StringValue"] == "http_404"
    if reason and not _SQS_REFUSED_CHARS.search(reason) and len(reason) <= 1024:
        assert params["MessageAttributes"]["reason"]["StringValue"] == reason


ID_ALPHABET = string.ascii_letters + string.digits + "-_"
JSON_WHITESPACE = " \t\n\r"
# Whitespace Python's str.strip() would remove but JSON does not allow around a value.
OTHER_WHITESPACE = "\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2003\u2028\u3000"


@given(
    st.text(alphabet=ID_ALPHABET, min_size=1, max_size=128),
    st.text(alphabet=JSON_WHITESPACE, max_size=5),
    st.text(alphabet=JSON_WHITESPACE, max_size=5),
)
def test_json_whitespace_around_a_bare_id_or_json_is_ignored(download_id, before, after):
    assert parse_body(before + download_id + after).download_id == download_id
    assert parse_body(before + json.dumps({"download_id": download_id}) + after).download_id == download_id


@given(
    st.text(alphabet=ID_ALPHABET, min_size=1, max_size=100),
    st.text(alphabet=OTHER_WHITESPACE, min_size=1, max_size=3),
    st.booleans(),
)
def test_other_whitespace_around_an_id_is_poison(download_id, space, in_front):
    body = space + download_id if in_front else download_id + space
    try:
        parse_body(body)
    except PoisonMessage as exc:
        assert str(exc)
    else:
        raise AssertionError(f"{body!r} was accepted")


@given(
    st.text(alphabet=ID_ALPHABET, max_size=60),
    st.characters(min_codepoint=0x80, exclude_categories=["Cs"]),
    st.text(alphabet=ID_ALPHABET, max_size=60),
)
def test_an_id_with_any_non_ascii_character_is_poison(head, char, tail):
    for body in (head + char + tail, json.dumps({"download_id": head + char + tail})):
        try:
            parse_body(body)
        except PoisonMessage:
            continue
        raise AssertionError(f"{body!r} was accepted")


@given(st.sampled_from(["null", "true", "false", "0", "12345", "007", "1e5"]) | st.integers(0).map(str))
def test_a_body_that_is_both_a_valid_id_and_json_is_the_id(body):
    # The bare-id reading wins: "null" or "12345" names a download, it is not a JSON value.
    assert parse_body(body) == RetryRequest(download_id=body)
