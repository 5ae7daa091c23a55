"""Issue 20's calibration, the emulated side: one small scenario through the emulated stack
(moto, the real handlers, the sandbox on loopback, the SQS event source) in virtual time, and
what it did, counted as the capacity model counts it (:class:`~.counts.Counts`).

The scenario is the demo's mix (``demo_cases.CASES``) scaled to 300 downloads, each a
``(download_id, Script)`` pair the sandbox (and the model) answer from, all sent at once as
``{"download_id": ..., "attempt": 1}``; the stack runs with ``CALIBRATION_PARAMETERS``.
Time is virtual (:mod:`.stepped_stack`): it stands still while the stack works and jumps to
the next wait's end, so the drain time is what the stack's waits add up to, not this
machine's speed, and a run of hours of virtual time takes seconds.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from videodb_retry.rules.messages import is_valid_download_id

from videodb_retry_local.load.capacity.counts import REDRIVEN, Counts
from videodb_retry_local.load.capacity.stepped_clock import SteppedClock
from videodb_retry_local.load.capacity.stepped_stack import drain, stepped_time
from videodb_retry_local.load.demo_cases import CASES
from videodb_retry_local.load.soak_runner import quick_thread_switches, quiet
from videodb_retry_local.stack import network_guard
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.execution_billing import billed_transitions, execution_history
from videodb_retry_local.stack.moto_env import direct_http, local_aws
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer
from videodb_retry_local.videodb_sandbox.sandbox_downloads import Script

Scenario = Sequence[tuple[str, Script]]

API_KEY = "sk-calibration-key"
COPIES = 50  # of each of the demo's six cases: 300 downloads
REAL_TIMEOUT_S = 150.0  # the emulated run's bound in real time

# Template parameter overrides of the calibration: waits short enough that the scenario's
# polls stay few (each costs real time in the emulation), two attempts per download, and the
# breaker off (its function runs on a schedule the emulated run has not). The budgets give
# POSTs 16 a second (300 downloads queue for them: the retry function waits for its tokens)
# and polls 62, more than the scenario ever asks: a refused poll's next try is jittered and
# which of several polls of one second is refused depends on thread order, so at the default
# budgets the emulated counts vary from run to run (polls 867-870, transitions 1,882-1,918)
# and exact counts cannot be compared.
CALIBRATION_PARAMETERS: dict[str, str] = {
    "PollFirstWaitSeconds": "2",
    "PollDeadlineSeconds": "90",
    "ConcurrencyBudget": "500",
    "VideoDBRequestsPerSecond": "100",
    "MaxRetryAttempts": "2",
    "RequeueDelaySeconds": "30",
    "MaxReceiveCount": "5",
    "RedeliveryFirstDelaySeconds": "10",
    "RedeliveryBackoffFactor": "2",
    "RedeliveryMaxDelaySeconds": "60",
    "BreakerEnabled": "false",
    "LogLevel": "ERROR",
}


def _script(case_id: str, copy: int) -> Script:
    """The Script of one copy of a demo case (the id the demo leaves unknown answers 404)."""
    case = next(c for c in CASES if c.download_id == case_id)
    if case.script is None:
        return Script(retry_status=404)
    behaviour = dict(case.script)
    if "processing_seconds" in behaviour:
        # Spread the quick jobs over 2-30 s: done at the first poll, or several polls later.
        behaviour["processing_seconds"] = float(behaviour["processing_seconds"]) + 4 * (copy % 8)
    return Script(**behaviour)


def _scenario(copies: int) -> list[tuple[str, Script]]:
    """The demo's cases, ``copies`` of each, interleaved; ids named after the case."""
    scenario = []
    for copy in range(copies):
        for case in CASES:
            kind = case.download_id.removeprefix("dl-demo-").strip("()")
            # A poison copy's id is refused by the message parser (a path), as the demo's body is.
            download_id = f"../cal-{kind}-{copy:03d}" if case.body is not None else f"cal-{kind}-{copy:03d}"
            scenario.append((download_id, _script(case.download_id, copy)))
    return scenario


CALIBRATION_SCENARIO: list[tuple[str, Script]] = _scenario(COPIES)


def emulated_counts(
    scenario: Scenario, parameters: dict[str, str], real_timeout: float = REAL_TIMEOUT_S
) -> Counts:
    """Run ``scenario`` through the emulated stack with ``parameters`` and count what it did."""
    start = time.time()  # virtual time starts at the wall clock's, so timestamps look real
    clock = SteppedClock(start)
    with (
        network_guard.loopback_only("calibration"),
        quiet(),
        quick_thread_switches(),
        SandboxServer(api_key=API_KEY, clock=clock) as sandbox,
        local_aws(),
    ):
        for download_id, script in scenario:
            if is_valid_download_id(download_id):  # a poison id never reaches VideoDB
                sandbox.script(download_id, script)
        stack = EmulatedStack(API_KEY, {**parameters, "VideoDBApiBaseUrl": sandbox.base_url})
        stack.create()
        try:
            # The function's own redelivery backoff decides when a failed record comes back.
            consumer = QueueConsumer(stack, redelivery_seconds=None)
            with stepped_time(clock, stack), direct_http():
                _send(stack, scenario)
                drain(clock, consumer, real_timeout)
                return _counted(stack, sandbox, start)
        finally:
            stack.close()


def _send(stack: EmulatedStack, scenario: Scenario) -> None:
    """Every download's first attempt on the retry queue, at the virtual start (batches of 10,
    SendMessageBatch's most: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html)."""
    sqs = stack.client("sqs")
    bodies = [json.dumps({"download_id": download_id, "attempt": 1}) for download_id, _ in scenario]
    for first in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[first : first + 10])]
        answer = sqs.send_message_batch(QueueUrl=stack.retry_queue_url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"the retry queue refused messages: {answer['Failed']}")


def _counted(stack: EmulatedStack, sandbox: SandboxServer, start: float) -> Counts:
    """What the run did: VideoDB's requests, the executions' billing, the endings."""
    outcomes = _received(stack, stack.observer_queue_url)
    letters = _received(stack, stack.dead_letter_queue_url)
    arns = _execution_arns(stack)
    sfn = stack.client("stepfunctions")
    histories = [execution_history(sfn, arn) for arn in arns]
    _check_endings(stack, histories)
    endings = [sent for _, _, sent in outcomes + letters]
    return Counts(
        posts=len(sandbox.retry_calls()),
        polls=sum(1 for r in sandbox.requests if r.method == "GET" and r.path.startswith("/async-response/")),
        executions=len(arns),
        transitions=sum(billed_transitions(history) for history in histories),
        outcome_events=dict(Counter(json.loads(body)["detail-type"] for body, _, _ in outcomes)),
        dead_letters=dict(Counter(attributes.get("error_code", REDRIVEN) for _, attributes, _ in letters)),
        drain_seconds=round(max(endings, default=start) - start, 3),
    )


def _check_endings(stack: EmulatedStack, histories: list[list[dict[str, Any]]]) -> None:
    """Every execution ended, and a failed one in one of the workflow's own Fail states: an
    execution the emulation broke (States.Runtime, stopped) must fail the run, not be counted."""
    definition = json.loads(
        stack.client("stepfunctions").describe_state_machine(stateMachineArn=stack.state_machine_arn)[
            "definition"
        ]
    )
    designed = {state["Error"] for state in definition["States"].values() if state["Type"] == "Fail"}
    broken = []
    for history in histories:
        last: dict[str, Any] = history[-1] if history else {"type": "none"}
        failure = last.get("executionFailedEventDetails", {}).get("error")
        if last["type"] not in ("ExecutionSucceeded", "ExecutionFailed") or (
            failure is not None and failure not in designed
        ):
            broken.append(f"{last['type']} {failure or ''}".strip())
    if broken:
        raise RuntimeError(
            f"{len(broken)} executions did not end by the workflow's design: {sorted(set(broken))}"
        )


def _received(stack: EmulatedStack, queue_url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every message of a queue (read and deleted): body, message attributes, and when it was
    sent on the virtual clock (SentTimestamp, in milliseconds)."""
    sqs = stack.client("sqs")
    found: list[tuple[str, dict[str, str], float]] = []
    while True:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            attributes = {
                k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()
            }
            found.append((message["Body"], attributes, int(message["Attributes"]["SentTimestamp"]) / 1000))
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def _execution_arns(stack: EmulatedStack) -> list[str]:
    """Every execution of the retry workflow (all pages)."""
    pages = stack.client("stepfunctions").get_paginator("list_executions")
    return [
        execution["executionArn"]
        for page in pages.paginate(stateMachineArn=stack.state_machine_arn)
        for execution in page["executions"]
    ]
