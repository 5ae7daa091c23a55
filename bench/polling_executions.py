"""Figure 5's runs: real executions in moto of the retry workflow (started by the retry
function's real handler) and of the baseline fixed-30 s poller, one job at a time, in
compressed time; what each one cost in billed transitions and how late it noticed the job's end.

Compressed time: moto's Wait state really sleeps. Here its wait (``WaitFunction._wait_interval``)
is replaced by ``VirtualClock.advance(seconds)``, and so is the sleep between a Task's retries;
the same clock is the sandbox's ``clock=`` (when jobs end) and the poll function's
``time.time()`` (its module's ``time`` is swapped for one whose ``time()`` reads the clock).
The clock is real time plus every wait skipped, reset before each job, so the retry function's
own ``time.time()`` (``started_at``, ``deadline_at``) agrees with it. A 1 h job takes seconds.

Detection delay: from the job's end (its POST time on the sandbox clock + its duration) to the
first poll the sandbox received after it.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import types
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import requests

from bench.common import API_KEY, ROOT, VirtualClock, bench_stack, quiet, sqs_event
from videodb_retry_local.stack.execution_billing import billed_transitions, execution_history

BASELINE_DEFINITION = ROOT / "bench" / "baseline_job_poller.asl.json"
REAL_TIMEOUT_S = 120.0  # no execution may run longer than this in real time


@contextlib.contextmanager
def compressed_time(clock: VirtualClock, poll_module: Any, slept: list[float]) -> Iterator[None]:
    """Waits (and retry back-offs) of moto's Step Functions advance ``clock`` instead of sleeping;
    the poll function reads ``clock`` as ``time.time()`` and its ``time.sleep`` advances it too,
    each sleep appended to ``slept`` (billed Lambda duration the real run does not take)."""

    def sleep_in_function(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def skip_wait(self: Any, env: Any, wait_seconds: int) -> None:
        clock.advance(wait_seconds)

    retrier_time = types.SimpleNamespace(sleep=clock.advance, time=time.time, monotonic=time.monotonic)
    with (
        mock.patch.object(WaitFunction, "_wait_interval", skip_wait),
        mock.patch.object(retrier_decl, "time", retrier_time),
        mock.patch.object(poll_module, "time", types.SimpleNamespace(time=clock, sleep=sleep_in_function)),
    ):
        yield


def _wait_for_end(sfn: Any, execution_arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + REAL_TIMEOUT_S
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.02)
    sfn.stop_execution(executionArn=execution_arn, error="BenchTimeout")
    raise TimeoutError(f"execution {execution_arn} still running after {REAL_TIMEOUT_S} s (real)")


def _follow(
    stack: Any,
    sandbox: Any,
    execution_arn: str,
    download_id: str,
    duration: float,
    invoked_from: int,
    slept: list[float],
) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    described = _wait_for_end(sfn, execution_arn)
    history = execution_history(sfn, execution_arn)
    state = json.loads(described["input"])
    job_path = urlsplit(state["output_url"]).path
    posts = [r.time for r in sandbox.retry_calls(download_id)]
    polls = [r.time for r in sandbox.requests if r.method == "GET" and r.path == job_path]
    ended_at = posts[-1] + duration
    noticed = [t for t in polls if t >= ended_at]
    output = json.loads(described.get("output") or "{}")
    poll_invocations = [i for i in stack.invocations[invoked_from:] if i.function == "PollFunction"]
    return {
        "status": described["status"],
        "outcome": output.get("status"),
        "transitions": billed_transitions(history),
        "events": len(history),
        "polls": len(polls),
        "poll_offsets_s": [t - posts[-1] for t in polls],  # after the retry's POST, sandbox clock
        "detection_s": (noticed[0] - ended_at) if noticed else None,
        "poll_invocation_s": [i.seconds for i in poll_invocations],
        "slept_in_function_s": sum(slept),
        "input": state,
    }


def _ours(
    stack: Any, sandbox: Any, clock: VirtualClock, slept: list[float], label: str, duration: float
) -> dict[str, Any]:
    clock.reset()
    slept.clear()
    download_id = f"job-{label.replace(' ', '')}-{uuid.uuid4().hex[:8]}"
    sandbox.script(download_id, processing_seconds=duration)
    invoked_from = len(stack.invocations)
    result = stack.invoke("RetryFunction", sqs_event([download_id]))
    if result.get("batchItemFailures"):
        raise RuntimeError(f"retry of {download_id} failed: {result}")
    sfn = stack.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    (execution,) = [e for e in executions if e["name"].startswith(f"{download_id}--")]
    retry_seconds = next(i.seconds for i in stack.invocations[invoked_from:] if i.function == "RetryFunction")
    followed = _follow(stack, sandbox, execution["executionArn"], download_id, duration, invoked_from, slept)
    return {**followed, "retry_invocation_s": retry_seconds}


def _baseline(
    stack: Any,
    sandbox: Any,
    clock: VirtualClock,
    slept: list[float],
    arn: str,
    label: str,
    duration: float,
    like: dict[str, Any],
) -> dict[str, Any]:
    clock.reset()
    slept.clear()
    download_id = f"base-{label.replace(' ', '')}-{uuid.uuid4().hex[:8]}"
    sandbox.script(download_id, processing_seconds=duration)
    answer = requests.post(
        f"{sandbox.base_url}/download/{download_id}", headers={"x-access-token": API_KEY}, timeout=10
    )
    answer.raise_for_status()
    job = answer.json()["data"]
    now = clock()
    state = {
        **like,  # the state the retry function starts its workflow with, for a new job
        "download_id": download_id,
        "job_id": job["id"],
        "output_url": job["output_url"],
        "started_at": now,
        "deadline_at": now + (like["deadline_at"] - like["started_at"]),
    }
    invoked_from = len(stack.invocations)
    sfn = stack.client("stepfunctions")
    execution_arn = sfn.start_execution(stateMachineArn=arn, name=download_id, input=json.dumps(state))[
        "executionArn"
    ]
    return _follow(stack, sandbox, execution_arn, download_id, duration, invoked_from, slept)


def _create_baseline(stack: Any) -> str:
    poll = stack.functions["PollFunction"]
    definition = BASELINE_DEFINITION.read_text(encoding="utf-8").replace("${PollFunctionArn}", poll.arn)
    role = stack.client("iam").create_role(
        RoleName="bench-baseline-job-poller",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "states.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    return stack.client("stepfunctions").create_state_machine(
        name="bench-baseline-job-poller", definition=definition, roleArn=role, type="STANDARD"
    )["stateMachineArn"]


def run_all(jobs: dict[str, float], seed: int) -> dict[str, Any]:
    """Every job through both designs, one execution at a time, in one emulated stack."""
    clock = VirtualClock()
    random.seed(seed)  # the one-step poll's ±10 % jitter, reproducible
    slept: list[float] = []
    ours: dict[str, dict[str, Any]] = {}
    theirs: dict[str, dict[str, Any]] = {}
    with bench_stack(latency_seconds=0.0, clock=clock) as (sandbox, stack), quiet():
        poll = stack.functions["PollFunction"]
        baseline_arn = _create_baseline(stack)
        with compressed_time(clock, poll.module, slept):
            for label, duration in jobs.items():
                ours[label] = _ours(stack, sandbox, clock, slept, label, duration)
                theirs[label] = _baseline(
                    stack, sandbox, clock, slept, baseline_arn, label, duration, ours[label]["input"]
                )
        return {
            "ours": ours,
            "baseline": theirs,
            "parameters": dict(stack.template.parameters),
            "memory_gb": poll.memory_mb / 1024,
            "retry_gb": stack.functions["RetryFunction"].memory_mb / 1024,
        }
