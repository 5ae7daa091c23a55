"""The poll loop is bounded by PollMaxPolls, and so is the execution's event history.

Step Functions fails an execution whose history reaches 25,000 events, and then nothing
announces the outcome or re-queues the download. One execution is run here with a small
PollMaxPolls (and a deadline far away, so only PollMaxPolls can end it); its history is
counted per poll round, one round having a TransientPollError retry, and the longest
execution the template allows is worked out from those counts, PollMaxPolls' MaxValue in
template.yaml and the Retry MaxAttempts in the workflow definition.

Run with ``-s`` to see the figures (they are also recorded as junit properties).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from videodb_retry_local.sandbox import SandboxServer
from videodb_retry_local.stack import EmulatedStack, QueueConsumer, local_aws
from videodb_retry_local.template import PROJECT_ROOT, Template

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


def split_rounds(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """The events before the first wait, and one list per poll round (a round starts at a wait)."""
    head: list[dict[str, Any]] = []
    rounds: list[list[dict[str, Any]]] = []
    for event in events:
        if event["type"] == "WaitStateEntered":
            rounds.append([])
        (rounds[-1] if rounds else head).append(event)
    return head, rounds


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
            "PollMaxWaitSeconds": 1,
            "MaxRetryAttempts": 2,  # attempts remain: the end includes the re-queue step
        }
        with EmulatedStack(API_KEY, overrides) as stack:
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


@pytest.fixture(scope="module")
def figures(measured: dict[str, Any]) -> dict[str, Any]:
    """Events per part of an execution, measured, and the longest execution computed."""
    head, rounds = split_rounds(measured["events"])
    sizes = [len(r) for r in rounds]
    # Rounds 2 .. N-1 are plain polls that said "running"; round 1 had the retry, round N ends.
    plain = collections.Counter(sizes[1:-1]).most_common(1)[0][0]
    per_retry = sizes[0] - plain
    tail = sizes[-1] - plain
    transient = retriers("PollJob")["TransientPollError"]
    lambda_errors = sum(v for k, v in retriers("PollJob").items() if k != "TransientPollError")
    settle_retries = sum(retriers("SettlePollError").values())
    end_retries = sum(retriers("RequeueDownload").values()) + sum(retriers("AnnounceOutcome").values())
    max_polls = poll_max_polls_max_value()
    plain_task = 5  # TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited
    # The worst end: the last poll also exhausts its retries, is caught, settled by
    # SettlePollError (after all of its retries), re-queued and announced after all of theirs.
    worst_tail = tail + per_retry * (transient + settle_retries + end_retries) + plain_task
    numbers = {
        "measured_total": len(measured["events"]),
        "measured_rounds": len(rounds),
        "events_before_first_poll": len(head),
        "events_per_poll_round": plain,
        "events_per_transient_retry": per_retry,
        "events_of_final_round_beyond_a_plain_round": tail,
        "poll_max_polls_max_value": max_polls,
        "transient_poll_error_max_attempts": transient,
        "lambda_error_max_attempts": lambda_errors,
        "longest_without_retries": len(head) + max_polls * plain + tail,
        "longest_every_poll_all_transient_retries": len(head)
        + max_polls * (plain + transient * per_retry)
        + worst_tail,
        "longest_every_poll_all_retries": len(head)
        + max_polls * (plain + (transient + lambda_errors) * per_retry)
        + worst_tail,
    }
    budget = HISTORY_LIMIT * MARGIN - len(head) - worst_tail
    numbers["max_safe_poll_max_polls_without_retries"] = int(budget // plain)
    numbers["max_safe_poll_max_polls_with_transient_retries"] = int(budget // (plain + transient * per_retry))
    numbers["max_safe_poll_max_polls_with_all_retries"] = int(
        budget // (plain + (transient + lambda_errors) * per_retry)
    )
    print("\nhistory figures:", json.dumps(numbers, indent=2))
    return numbers


def test_poll_loop_is_ended_as_timed_out_by_poll_max_polls(measured, record_property):
    execution = measured["execution"]
    assert execution["status"] == "FAILED" and execution["error"] == "DownloadRetryTimedOut"
    output = json.loads(execution.get("output") or "{}")
    (event,) = measured["outcomes"]
    assert event["detail-type"] == "Download Retry Timed Out"
    assert event["detail"]["polls"] == SMALL_MAX_POLLS
    assert event["detail"]["error"] == f"job still processing after {SMALL_MAX_POLLS} polls (PollMaxPolls)"
    assert event["detail"]["will_retry"] is True
    assert event["detail"]["elapsed_seconds"] < 3600  # the deadline was not what ended it
    assert output == {} or output.get("polls") == SMALL_MAX_POLLS
    # Six answered polls plus the one the sandbox failed (retried by the workflow).
    assert measured["polls_seen"] == SMALL_MAX_POLLS + 1
    errors = [i.error_type for i in measured["poll_invocations"]]
    assert errors.count("TransientPollError") == 1 and len(errors) == SMALL_MAX_POLLS + 1
    types = [e["type"] for e in measured["events"]]
    assert types.count("WaitStateEntered") == SMALL_MAX_POLLS
    record_property("history_events_measured", len(types))


def test_history_is_counted_per_poll_round(figures, record_property):
    for name, value in figures.items():
        record_property(name, value)
    assert figures["measured_rounds"] == SMALL_MAX_POLLS
    # Wait entered/exited, task entered/scheduled/started/succeeded/exited, choice entered/exited.
    assert figures["events_per_poll_round"] == 9
    assert figures["events_per_transient_retry"] == 3  # task scheduled, started, failed
    assert figures["events_before_first_poll"] >= 1  # ExecutionStarted


def test_longest_execution_without_poll_retries_stays_below_the_history_limit(figures):
    assert figures["longest_without_retries"] < HISTORY_LIMIT * MARGIN, figures


def test_longest_execution_with_every_poll_using_its_transient_retries_stays_below_the_history_limit(figures):
    # PollMaxPolls counts polls that answered, not the TransientPollError retries the
    # workflow makes of one poll, each of which writes its own task events.
    assert figures["longest_every_poll_all_transient_retries"] < HISTORY_LIMIT * MARGIN, (
        f"{figures['longest_every_poll_all_transient_retries']} events at PollMaxPolls="
        f"{figures['poll_max_polls_max_value']}; at most "
        f"{figures['max_safe_poll_max_polls_with_transient_retries']} polls keep it below "
        f"{int(HISTORY_LIMIT * MARGIN)}"
    )
