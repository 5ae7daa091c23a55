"""A throttle is a delay, never an ending (issue 20 item 5): the emulated workflow against a
poll function Lambda refuses with TooManyRequestsException, as the account's other workloads
can make it. No execution ends without its outcome event and its re-queue or dead letter."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from moto.core.exceptions import JsonRESTError

from videodb_retry_local.emulated_stack import EmulatedStack
from videodb_retry_local.moto_env import scaled_retry_waits

from .conftest import dead_letters_of, final_outcome, outcomes_of


class TooManyRequests(JsonRESTError):
    """What Lambda answers an invoke beyond the account's concurrency (HTTP 429); Step Functions
    names it ``Lambda.TooManyRequestsException``."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate exceeded")


def throttle_poll_function(stack: EmulatedStack, monkeypatch: pytest.MonkeyPatch, times: float) -> list[int]:
    """Refuse the poll function's first ``times`` invocations (inf: every one); returns the
    one-item count of refusals."""
    refused = [0]
    run = stack.invoke

    def invoke(logical_id: str, event: Any) -> Any:
        if logical_id == "PollFunction" and refused[0] < times:
            refused[0] += 1
            raise TooManyRequests()
        return run(logical_id, event)

    monkeypatch.setattr(stack, "invoke", invoke)
    return refused


def ended(stack: EmulatedStack) -> Callable[[], bool]:
    return lambda: bool(stack.executions()) and stack.running_executions() == 0


def test_a_throttled_poll_is_retried_until_it_runs(stack, consumer, sandbox, monkeypatch):
    sandbox.script("dl-throttled")
    refused = throttle_poll_function(stack, monkeypatch, times=8)

    stack.send_to_queue("dl-throttled")

    assert consumer.run(until=final_outcome(stack, "dl-throttled"), timeout=60)
    (outcome,) = outcomes_of(stack, "dl-throttled")
    assert outcome["detail-type"] == "Download Retry Succeeded" and refused[0] == 8
    (execution,) = stack.executions()
    assert execution["status"] == "SUCCEEDED" and json.loads(execution["output"])["status"] == "done"


def test_a_poll_function_that_never_runs_ends_in_the_dead_letter_queue_and_a_failed_event(
    stack, consumer, sandbox, monkeypatch
):
    sandbox.script("dl-never-runs", never_finishes=True)
    throttle_poll_function(stack, monkeypatch, times=float("inf"))

    with scaled_retry_waits(0):  # the hours of retries, at once
        stack.send_to_queue("dl-never-runs")
        assert consumer.run(until=ended(stack), timeout=240)

    (execution,) = stack.executions()
    assert execution["status"] == "FAILED" and execution["error"] == "PollStepUnavailable"
    (letter,) = dead_letters_of(stack, download_id="dl-never-runs")
    assert letter["attributes"]["error_code"] == "poll_unavailable"
    assert json.loads(letter["body"]) == {
        "download_id": "dl-never-runs",
        "attempt": 2,
        "reason": "attempt settled without the poll function: it could not run",
    }
    (outcome,) = outcomes_of(stack, "dl-never-runs")
    assert outcome["detail-type"] == "Download Retry Failed"
    assert outcome["detail"]["will_retry"] is False and outcome["detail"]["attempt"] == 1
    assert outcome["detail"]["max_attempts"] == 3 and "dead-letter" in outcome["detail"]["error"]


def test_posts_the_request_budget_cannot_admit_come_back_as_new_messages(make_stack, sandbox):
    """Our own budget never spends a receive: one intake request a second, and a retry function
    with no time to wait for the next window, so every POST but the window's first is deferred:
    its record goes back on the queue as a new message (receive count 1 again), until each
    download has had its POST; none reaches the DLQ."""
    from videodb_retry_local.sqs_event_source import QueueConsumer

    stack = make_stack(ConcurrencyBudget=50, VideoDBRequestsPerSecond=2, MaxReceiveCount=5)
    assert stack.functions["RetryFunction"].module.settings.budgets.intake_per_second == 1
    # No patience: the invocation's time left minus a reserve that leaves none.
    stack.functions["RetryFunction"].module.time_left._reserve = 10_000
    ids = [f"dl-budget-{n}" for n in range(6)]
    for download_id in ids:
        sandbox.script(download_id, answer_done_at_once=True)
        stack.send_to_queue(download_id)
    consumer = QueueConsumer(stack, redelivery_seconds=1)

    assert consumer.run(until=lambda: all(final_outcome(stack, i)() for i in ids), timeout=120)
    assert all(len(sandbox.retry_calls(i)) == 1 for i in ids)  # one POST each, never refused twice
    assert stack.dead_letters() == []
    # A deferred report comes back as its sequence's attempt (a JSON body naming the id).
    deliveries = [d for d in consumer.deliveries if d.body in ids or _named(d.body) in ids]
    assert len(deliveries) > len(ids)  # some were deferred and came back...
    assert {d.receive_count for d in deliveries} == {1}  # ...as new messages, no receive spent


def _named(body: str) -> str | None:
    """The download id a JSON body names (None for a bare id)."""
    try:
        return str(json.loads(body)["download_id"])
    except (ValueError, KeyError, TypeError):
        return None
