"""The retry-sequence rules one by one, the message contract's ``sequence`` field, and the
ledger key that keeps attempts from before sequences were numbered."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from videodb_retry.rules.messages import PoisonMessage, RetryRequest, parse_body
from videodb_retry.rules.outcomes import Ending, Outcome
from videodb_retry.rules.sequence import (
    SEQUENCE_PERIOD_SECONDS,
    Report,
    SequenceRecord,
    Verdict,
    admit,
    carry_on,
    expires_at,
    finish,
)
from videodb_retry.steps.retry_sequences import end_after_poll

from tests.fakes import in_memory_sequences

NOW = 2_000_000.0
STALE = 3600.0


def running(number: int = 1, touched: float = NOW - 10, by: str = "m-1") -> SequenceRecord:
    return SequenceRecord(
        "dl-1", number=number, running=True, begun_by=by, touched_at=touched, starts=(touched,), version=2
    )


def test_a_redelivery_of_the_report_that_began_the_sequence_carries_on_as_it():
    admission, stored = admit(running(by="m-1"), Report("m-1", NOW - 20), NOW, STALE)
    assert (admission.verdict, admission.number, stored) == (Verdict.BEGUN, 1, None)


def test_a_running_sequence_untouched_past_the_window_counts_as_ended():
    stale = running(touched=NOW - STALE - 1)
    admission, stored = admit(stale, Report("m-2", NOW), NOW, STALE)
    assert admission.verdict is Verdict.BEGUN and stored is not None and stored.number == 2
    # ...but a report sent before its last touch is still about the failure it handled.
    admission, _ = admit(stale, Report("m-3", NOW - STALE - 2), NOW, STALE)
    assert admission.verdict is Verdict.DUPLICATE


def test_next_attempts_run_only_while_their_sequence_does():
    assert carry_on(running(number=2), 2, NOW)[0] is True
    assert carry_on(running(number=2), 2, NOW)[1].touched_at == NOW  # type: ignore[union-attr]
    assert carry_on(running(number=3), 2, NOW) == (False, None)  # superseded
    ended = finish(running(number=2), "failed", NOW, 2, None)
    assert ended is not None and carry_on(ended, 2, NOW) == (False, None)
    assert carry_on(SequenceRecord("dl-1"), 7, NOW) == (True, None)  # never stored: untracked


def test_ending_is_idempotent_and_only_ends_its_own_sequence():
    record = running(number=2, by="m-9")
    assert finish(record, "done", NOW, 1, None) is None
    assert finish(record, "dead_lettered", NOW, None, "m-8") is None
    ended = finish(record, "dead_lettered", NOW, None, "m-9")
    assert ended is not None and not ended.running and ended.covered_until == NOW
    assert finish(ended, "done", NOW + 1, 2, None) is None


def test_the_record_outlives_the_bounds_period():
    record = running(touched=NOW)
    assert expires_at(record, STALE) == NOW + SEQUENCE_PERIOD_SECONDS + STALE


@pytest.mark.parametrize("value", [0, -1, True, "2", 1.5, None])
def test_sequence_in_a_body_is_a_whole_number_of_at_least_one(value):
    body = json.dumps({"download_id": "dl-1", "attempt": 2, "sequence": value})
    if value is None:
        assert parse_body(body).sequence is None
    else:
        with pytest.raises(PoisonMessage, match="sequence"):
            parse_body(body)


def test_a_reattempt_goes_back_through_the_contract_with_its_sequence():
    request = RetryRequest("dl-1", attempt=2, sequence=4, reason="attempt 1 failed: x")
    assert parse_body(request.to_body()) == request
    assert not request.is_report and RetryRequest("dl-1").is_report


def test_an_event_carries_when_it_was_reported():
    body = json.dumps(
        {"detail-type": "Download Failed", "time": "2026-12-05T10:00:00Z", "detail": {"download_id": "dl-1"}}
    )
    assert parse_body(body).reported_at == 1796464800.0
    assert parse_body(body.replace("2026-12-05T10:00:00Z", "yesterday")).reported_at is None


def test_an_attempt_without_a_sequence_keeps_the_ledger_key_of_earlier_releases():
    def key(jmespath: str, data: dict) -> str | None:
        store = DynamoDBPersistenceLayer(table_name="t", boto3_client=object())
        store.configure(IdempotencyConfig(event_key_jmespath=jmespath), function_name="issue")
        return store._get_hashed_idempotency_key(data)

    earlier = key("[download_id, attempt]", {"download_id": "dl-1", "attempt": 2})
    assert key("key", {"key": list(RetryRequest("dl-1", attempt=2).ledger_key)}) == earlier
    assert key("key", {"key": list(RetryRequest("dl-1", attempt=2, sequence=1).ledger_key)}) != earlier


def test_the_poll_function_ends_a_sequence_only_with_its_last_attempt():
    sequences = in_memory_sequences()
    sequences.begin("dl-1", Report("m-1", NOW - 1), NOW)

    def outcome(ending: Ending, attempt: int, sequence: int | None = 1) -> Outcome:
        return Outcome(ending, "dl-1", attempt=attempt, max_attempts=2, sequence=sequence)

    end_after_poll(sequences, outcome(Ending.FAILED, 1), NOW)  # attempt 2 follows
    end_after_poll(sequences, outcome(Ending.DONE, 2, sequence=None), NOW)  # from before sequences
    assert sequences.carry_on("dl-1", 1, NOW) is True
    end_after_poll(sequences, outcome(Ending.TIMED_OUT, 2), NOW + 1)
    assert sequences.carry_on("dl-1", 1, NOW + 1) is False
    assert sequences.begin("dl-1", Report("m-2", NOW + 2), NOW + 2).number == 2
