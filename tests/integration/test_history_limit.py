"""The poll loop is bounded by PollMaxPolls, and so is the execution's event history.

Step Functions fails an execution whose history reaches 25,000 events, and then nothing
announces the outcome or re-queues the download. One execution is run here with a small
PollMaxPolls (and a deadline far away, so only PollMaxPolls can end it): one poll per
invocation, the first failing once with a TransientPollError retry, then polls on the Task
Retry ladder (JobStillRunning). Time is compressed: the Retry sleeps advance an offset that
the poll function's clock reads. Its history is counted per retry, and the longest execution
the definition allows is worked out from those counts, the Retry MaxAttempts of every state
and the most rounds of deferral (WaitToPoll and PollJob again) a day's deadline allows.

Run with ``-s`` to see the figures (they are also recorded as junit properties).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import types
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from videodb_retry.steps.poll import (
    DEFERRAL_CAP_SECONDS,
    DEFERRAL_GRACE_CAP_SECONDS,
    DEFERRAL_JITTER,
    LADDER_FACTOR,
    LADDER_FIRST_SECONDS,
)

from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.moto_env import local_aws
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.stack.template import PROJECT_ROOT, Template
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

from .conftest import API_KEY, FAST, outcomes_of, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

HISTORY_LIMIT = 25_000
MARGIN = 0.9  # "below the limit" means below 90 % of it
SMALL_MAX_POLLS = 6
DEFINITION = PROJECT_ROOT / "statemachine" / "retry_workflow.asl.json"


def retriers(state: str) -> dict[str, int]:
    """MaxAttempts of each Retry entry of ``state`` in the definition file, by error names."""
    states = json.loads(DEFINITION.read_text())["States"]
    return {",".join(r["ErrorEquals"]): int(r.get("MaxAttempts", 3)) for r in states[state].get("Retry", [])}


def poll_max_polls_max_value() -> int:
    spec = Template.load().document["Parameters"]["PollMaxPolls"]
    return int(spec["MaxValue"])


@pytest.fixture(scope="module")
def measured() -> Iterator[dict[str, Any]]:
    """Run one execution to its PollMaxPolls end and count its history."""
    environment = {"POWERTOOLS_METRICS_DISABLED": "true"}
    with mock.patch.dict(os.environ, environment), local_aws(), SandboxServer(api_key=API_KEY) as sandbox:
        overrides = {
            **FAST,
            "VideoDBApiBaseUrl": sandbox.base_url,
            "PollMaxPolls": SMALL_MAX_POLLS,
            "PollDeadlineSeconds": 3600,  # far away: only PollMaxPolls can end the loop
            "PollFirstWaitSeconds": 1,
            "MaxRetryAttempts": 2,  # attempts remain: the end includes the re-queue step
        }
        with EmulatedStack(API_KEY, overrides) as stack, compressed_time(stack):
            # The job never ends; its first poll fails once (one TransientPollError retry).
            sandbox.script("dl-forever", never_finishes=True, poll_status=503, poll_status_times=1)
            consumer = QueueConsumer(stack)
            stack.send_to_queue("dl-forever")
            assert consumer.poll_once() == 1
            assert wait_until(
                lambda: bool(stack.executions()) and stack.running_executions() == 0, timeout=60
            )
            (execution,) = stack.executions()
            sfn = stack.client("stepfunctions")
            events, token = [], None
            while True:
                page = sfn.get_execution_history(
                    executionArn=execution["executionArn"],
                    maxResults=1000,
                    **({"nextToken": token} if token else {}),
                )
                events += page["events"]
                token = page.get("nextToken")
                if not token:
                    break
            yield {
                "execution": execution,
                "events": events,
                "outcomes": outcomes_of(stack, "dl-forever"),
                "polls_seen": len([r for r in sandbox.requests if r.method == "GET"]),
                "poll_invocations": [i for i in stack.invocations if i.function == "PollFunction"],
            }


@contextlib.contextmanager
def compressed_time(stack: EmulatedStack) -> Iterator[None]:
    """Retry sleeps (moto) advance an offset the poll function's clock reads."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    skipped = [0.0]

    def advance(seconds: float) -> None:
        skipped[0] += seconds

    poll_time = types.SimpleNamespace(time=lambda: time.time() + skipped[0], sleep=advance)
    retrier_time = types.SimpleNamespace(sleep=advance, time=time.time, monotonic=time.monotonic)
    with (
        mock.patch.object(stack.functions["PollFunction"].module, "time", poll_time),
        mock.patch.object(retrier_decl, "time", retrier_time),
    ):
        yield


def count(events: list[dict[str, Any]], kind: str) -> int:
    return sum(1 for e in events if e["type"] == kind)


@pytest.fixture(scope="module")
def figures(measured: dict[str, Any]) -> dict[str, Any]:
    """Events per part of an execution, measured, and the longest execution computed."""
    events = measured["events"]
    states = json.loads(DEFINITION.read_text())["States"]
    retries_made = (
        count(events, "LambdaFunctionScheduled")
        + count(events, "TaskScheduled")
        - count(events, "TaskStateEntered")
    )
    failed = count(events, "TaskFailed") + count(events, "LambdaFunctionFailed")
    # A retry writes scheduled, started and failed; every other event is the plain execution.
    per_retry = 3
    plain = len(events) - per_retry * retries_made
    plain_task = 5  # TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited
    all_retries = {name: sum(retriers(name).values()) for name, state in states.items() if "Retry" in state}
    # Deferral rounds (a deferred PollJob, the route, WaitToPoll: 9 events) over the longest
    # deadline and the grace after it (as long again, at most 2 h), each wait at least three
    # quarters of the cap once the ladder's ramp (its steps below the cap) has reached it.
    longest_deadline = int(Template.load().document["Parameters"]["PollDeadlineSeconds"]["MaxValue"])
    ramp = math.ceil(math.log(DEFERRAL_CAP_SECONDS / LADDER_FIRST_SECONDS, LADDER_FACTOR))
    rounds = (longest_deadline + DEFERRAL_GRACE_CAP_SECONDS) / (
        DEFERRAL_CAP_SECONDS * (1 - DEFERRAL_JITTER)
    ) + ramp
    per_round = plain_task + 2 + 2
    # The worst execution: every retrier of every state exhausted, PollJob caught and settled
    # by SettlePollError, re-queued and announced, each after all of their own retries, and
    # a day of deferrals.
    longest = plain + plain_task + per_retry * sum(all_retries.values()) + per_round * int(rounds)
    numbers = {
        "measured_total": len(events),
        "retries_measured": retries_made,
        "failed_task_events": failed,
        "events_per_retry": per_retry,
        "events_without_retries": plain,
        "retries_allowed_per_state": all_retries,
        "deferral_rounds_allowed": int(rounds),
        "longest_every_retrier_exhausted": longest,
    }
    print("\nhistory figures:", json.dumps(numbers, indent=2))
    return numbers


def test_poll_loop_is_ended_as_timed_out_by_poll_max_polls(measured, record_property):
    execution = measured["execution"]
    # A timed-out attempt is an outcome: the execution succeeds (issue 21 item 3).
    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    (event,) = measured["outcomes"]
    assert event["detail-type"] == "Download Retry Timed Out"
    assert event["detail"]["polls"] == SMALL_MAX_POLLS
    assert event["detail"]["error"] == f"job still processing after {SMALL_MAX_POLLS} polls (PollMaxPolls)"
    assert event["detail"]["will_retry"] is True
    assert event["detail"]["elapsed_seconds"] < 3600  # the deadline was not what ended it
    assert output["status"] == "timed_out" and output["polls"] == SMALL_MAX_POLLS
    # One GET per invocation, counted by the Task's retries (the transient one too).
    assert measured["polls_seen"] == SMALL_MAX_POLLS
    errors = [i.error_type for i in measured["poll_invocations"]]
    assert errors.count("TransientPollError") == 1
    assert errors.count("JobStillRunning") == len(errors) - 2  # all but the transient and the last
    types = [e["type"] for e in measured["events"]]
    assert types.count("TaskStateEntered") >= 1 and types.count("WaitStateEntered") == 1
    record_property("history_events_measured", len(types))


def test_history_is_counted_per_retry(figures, record_property):
    for name, value in figures.items():
        record_property(name, value)
    # One TransientPollError retry, then a JobStillRunning retry per poll after the first.
    assert figures["retries_measured"] == 1 + (SMALL_MAX_POLLS - 2)
    assert figures["failed_task_events"] == figures["retries_measured"]
    assert figures["events_without_retries"] < 40


def test_longest_execution_stays_below_the_history_limit(figures):
    assert figures["longest_every_retrier_exhausted"] < HISTORY_LIMIT * MARGIN, figures
