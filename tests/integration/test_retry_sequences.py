"""Retry sequences through the emulated stack: the real retry and poll functions, the workflow
executing in moto, the sequence records in the idempotency table.

One failure of a download is one retry sequence: a report while it runs does nothing, a report
sent after it ended (the workflow's or the retry function's last attempt) begins the next one,
and a download may begin at most SEQUENCE_LIMIT of them in a day.
"""

from __future__ import annotations

import json
from typing import Any

from videodb_retry.rules.sequence import SEQUENCE_LIMIT

from .conftest import dead_letters_of, outcomes_of, wait_until


def record(stack: Any, download_id: str) -> dict[str, Any]:
    item = (
        stack.client("dynamodb")
        .get_item(TableName=stack.ref("IdempotencyTable"), Key={"id": {"S": f"sequence#{download_id}"}})
        .get("Item", {})
    )
    return {name: next(iter(value.values())) for name, value in item.items()}


def finals(stack: Any, download_id: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in outcomes_of(stack, download_id) if e["detail"]["will_retry"] is False]


def test_a_failure_after_the_workflow_ended_its_sequence_begins_the_next(stack, consumer, sandbox):
    # Processing, then done: the poll function ends sequence 1 when it returns the last attempt.
    sandbox.script("dl-again", processing_seconds=1, not_failed_retry_status=None)
    stack.send_to_queue("dl-again")
    assert consumer.run(until=lambda: len(finals(stack, "dl-again")) == 1, timeout=30)
    assert wait_until(lambda: record(stack, "dl-again").get("running") is False, timeout=10)
    assert record(stack, "dl-again")["ended_as"] == "done"

    stack.send_to_queue("dl-again")  # the download failed again, later
    assert consumer.run(until=lambda: len(finals(stack, "dl-again")) == 2, timeout=30)
    assert [(d["status"], d["sequence"], d["attempt"]) for d in finals(stack, "dl-again")] == [
        ("done", 1, 1),
        ("done", 2, 1),
    ]
    assert len(sandbox.retry_calls("dl-again")) == 2
    assert [e["status"] for e in stack.executions()] == ["SUCCEEDED", "SUCCEEDED"]


def test_a_report_while_the_sequence_runs_does_nothing_and_attempts_carry_the_sequence(
    stack, consumer, sandbox
):
    # Failed at once, then done at once: attempt 2 is re-queued with sequence 1 in its body;
    # a report arriving meanwhile is a duplicate.
    sandbox.script("dl-busy", answer_done_at_once=True, fail_times=1, not_failed_retry_status=None)
    stack.send_to_queue("dl-busy")
    assert consumer.run(until=lambda: len(outcomes_of(stack, "dl-busy")) == 1, timeout=30)
    assert record(stack, "dl-busy")["running"] is True
    stack.send_to_queue(json.dumps({"detail-type": "Download Failed", "detail": {"download_id": "dl-busy"}}))
    assert consumer.run(until=lambda: len(finals(stack, "dl-busy")) == 1, timeout=30)
    assert [
        (e["detail"]["status"], e["detail"]["sequence"], e["detail"]["attempt"])
        for e in outcomes_of(stack, "dl-busy")
    ] == [
        ("failed", 1, 1),
        ("done", 1, 2),
    ]
    assert len(sandbox.retry_calls("dl-busy")) == 2  # the report in between POSTed nothing
    assert record(stack, "dl-busy")["ended_as"] == "succeeded"


def test_a_download_reported_again_and_again_is_stopped_by_the_bound_with_a_reason(stack, consumer, sandbox):
    sandbox.script("dl-loop", answer_failed_at_once=True, not_failed_retry_status=None)
    for sequence in range(1, SEQUENCE_LIMIT + 2):
        stack.send_to_queue("dl-loop")
        assert consumer.run(
            until=lambda n=sequence: (
                len(finals(stack, "dl-loop")) == min(n, SEQUENCE_LIMIT)
                and (n <= SEQUENCE_LIMIT or bool(dead_letters_of(stack, download_id="dl-loop")))
            ),
            timeout=30,
        )
    (letter,) = dead_letters_of(stack, download_id="dl-loop")
    assert letter["attributes"]["error_code"] == "sequences_exhausted"
    assert f"{SEQUENCE_LIMIT} retry sequences began in the last 24 h" in letter["attributes"]["reason"]
    assert record(stack, "dl-loop")["refused_reason"] == letter["attributes"]["reason"]
    attempts = stack.template.parameters["MaxRetryAttempts"]
    assert len(sandbox.retry_calls("dl-loop")) == SEQUENCE_LIMIT * int(attempts)
