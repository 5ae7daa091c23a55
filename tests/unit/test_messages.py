import json

import pytest
from videodb_retry.rules.messages import MAX_DOWNLOAD_ID_LENGTH, PoisonMessage, RetryRequest, parse_body


def test_bare_id_is_attempt_one():
    assert parse_body("download-abc123") == RetryRequest("download-abc123", 1, None)


def test_bare_id_with_surrounding_whitespace():
    assert parse_body("  download-abc123\n").download_id == "download-abc123"


def test_json_with_attempt_and_reason():
    body = json.dumps({"download_id": "download-1", "attempt": 2, "reason": "timed out"})
    assert parse_body(body) == RetryRequest("download-1", 2, "timed out")


def test_eventbridge_event():
    event = {
        "version": "0",
        "id": "e1",
        "detail-type": "Download Failed",
        "source": "videodb",
        "detail": {"download_id": "download_x_9", "error": "network"},
    }
    request = parse_body(json.dumps(event))
    assert request.download_id == "download_x_9"
    assert request.attempt == 1
    assert request.reason == "network"


def test_request_round_trips_through_its_body():
    request = RetryRequest("download-7", 3, "attempt 2 failed")
    assert parse_body(request.to_body()) == request


@pytest.mark.parametrize(
    "body, reason_part",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("../../etc/passwd", "neither"),
        ("download/abc", "neither"),
        ("download abc", "neither"),
        ("download-\x00abc", "neither"),
        ("http://evil.example/x", "neither"),
        ("[1, 2]", "object"),
        ("3.5", "object"),
        ('"download-1"', "object"),
        ("{}", "no download_id"),
        ('{"download_id": 12}', "must be a string"),
        ('{"download_id": null}', "must be a string"),
        ('{"download_id": ""}', "empty"),
        ('{"download_id": "a/../b"}', "characters"),
        ('{"download_id": "%2e%2e"}', "characters"),
        ('{"download_id": "download-1", "attempt": "2"}', "attempt"),
        ('{"download_id": "download-1", "attempt": 0}', "attempt"),
        ('{"download_id": "download-1", "attempt": true}', "attempt"),
        ('{"download_id": "download-1", "attempt": 1.5}', "attempt"),
        ('{"download_id": "download-1", "reason": 5}', "reason"),
        ('{"detail-type": "Download Failed", "detail": "x"}', "no detail object"),
        ('{"detail-type": "Download Failed", "detail": {}}', "no detail.download_id"),
        ('{"detail-type": "Download Failed", "detail": {"download_id": "a b"}}', "characters"),
        pytest.param("[" * 100_000 + "]" * 100_000, "neither", id="deep-nesting"),
    ],
)
def test_poison_bodies_are_refused_with_a_reason(body, reason_part):
    with pytest.raises(PoisonMessage) as caught:
        parse_body(body)
    assert reason_part in str(caught.value)


def test_too_long_id_is_poison():
    with pytest.raises(PoisonMessage, match="longer than"):
        parse_body(json.dumps({"download_id": "a" * (MAX_DOWNLOAD_ID_LENGTH + 1)}))
    assert parse_body("a" * MAX_DOWNLOAD_ID_LENGTH).download_id == "a" * MAX_DOWNLOAD_ID_LENGTH


def test_poison_reason_does_not_echo_control_characters():
    with pytest.raises(PoisonMessage) as caught:
        parse_body("bad\x1b[31mid\nwith newline")
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)
