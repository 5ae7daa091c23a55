"""Figure 5: what following a job costs — Step Functions state transitions per job and how late
the workflow notices the job's end — for jobs that finish after 10 s, 1 min, 10 min and 1 h.

Real executions in moto of statemachine/retry_workflow.asl.json (started by the retry
function's real handler) with the template's default timing parameters, against the baseline
bench/baseline_job_poller.asl.json (AWS's Job Status Poller shape: a fixed 30 s Wait), whose
poll step is the same poll function. Transitions are the history events of type
``*StateEntered`` (what AWS bills). Executions run one at a time.

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

from bench.common import (
    API_KEY,
    ROOT,
    Figure,
    Row,
    VirtualClock,
    bench_stack,
    command,
    quiet,
    ratio,
    sqs_event,
)
from bench.polling_model import (
    ASSUMED_API_LATENCY_S,
    DOWNLOADS_PER_MONTH,
    MIX,
    WARM_CONTAINERS,
    cost_sum,
    monthly_cost,
)

KEY = "polling"
BASELINE_DEFINITION = ROOT / "bench" / "baseline_job_poller.asl.json"
WORKFLOW_DEFINITION = ROOT / "statemachine" / "retry_workflow.asl.json"
JOBS = {"10 s": 10, "1 min": 60, "10 min": 600, "1 h": 3600}
TRANSITIONS_TARGET = 0.25
COST_TARGET = 0.30
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


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events, token = [], None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def billed_transitions(history: list[dict[str, Any]]) -> int:
    """State transitions AWS bills: every state entered, plus every Task retry ("each retry
    will be charged as an additional state transition")."""
    entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
    tasks = sum(1 for e in history if e["type"] == "TaskStateEntered")
    scheduled = sum(1 for e in history if e["type"] in ("TaskScheduled", "LambdaFunctionScheduled"))
    return entered + max(0, scheduled - tasks)


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
    history = _history(sfn, execution_arn)
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


def _job_cell(run: dict[str, Any]) -> str:
    return f"{run['transitions']} transitions ({run['polls']} polls); noticed +{run['detection_s']:.1f} s"


def allowed_delay(duration: float) -> float:
    """The detection target: max(10 s, 25 % of the job's duration)."""
    return max(10.0, 0.25 * duration)


def _run_all(jobs: dict[str, float], seed: int) -> dict[str, Any]:
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


def _job_rows(jobs: dict[str, float], ours: dict[str, Any], theirs: dict[str, Any]) -> list[Row]:
    rows = []
    for label, duration in jobs.items():
        for run in (ours[label], theirs[label]):
            if run["status"] != "SUCCEEDED" or run["outcome"] != "done" or run["detection_s"] is None:
                raise RuntimeError(f"job {label} did not end done: {run['status']} {run['outcome']}")
        mine, base = ours[label], theirs[label]
        limit = allowed_delay(duration)
        rows.append(
            Row(
                figure=f"5. Polling a job done after {label}: transitions; detection delay",
                measured=_job_cell(mine),
                baseline=_job_cell(base),
                ratio=ratio(mine["transitions"] / base["transitions"]),
                target=f"≤ 1.00x; delay ≤ {limit:.0f} s",
                met=mine["detection_s"] <= limit and mine["transitions"] <= base["transitions"],
                command=command(KEY),
            )
        )
    total_mine = sum(run["transitions"] for run in ours.values())
    total_base = sum(run["transitions"] for run in theirs.values())
    rows.append(
        Row(
            figure=f"5. Polling, the {len(jobs)} jobs together: state transitions",
            measured=f"{total_mine} transitions",
            baseline=f"{total_base} transitions (fixed 30 s wait)",
            ratio=ratio(total_mine / total_base),
            target=f"≤ {TRANSITIONS_TARGET}x",
            met=total_mine / total_base <= TRANSITIONS_TARGET,
            command=command(KEY),
        )
    )
    return rows


def _costs(jobs: dict[str, float], run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Both designs' monthly cost, when the jobs cover the MIX's durations."""
    if not set(MIX) <= set(jobs.values()):
        return {}
    by_duration = {duration: label for label, duration in jobs.items()}
    retry_runs = [r["retry_invocation_s"] for r in run["ours"].values()]
    retry_s = sum(retry_runs) / len(retry_runs) + ASSUMED_API_LATENCY_S
    ttl = int(run["parameters"]["SecretCacheTtlSeconds"])
    return {
        name: {
            **monthly_cost(
                {d: run[name][by_duration[d]] for d in MIX}, retry_s, run["retry_gb"], run["memory_gb"], ttl
            ),
            "retry_invocation_s": retry_s,
        }
        for name in ("ours", "baseline")
    }


def _cost_row(costs: dict[str, dict[str, float]]) -> Row:
    o, b = costs["ours"], costs["baseline"]
    return Row(
        figure=f"5. Monthly cost, {DOWNLOADS_PER_MONTH:,} retried downloads (SFN + Lambda + Secrets)",
        measured=f"${o['total']:.2f} (SFN ${o['step_functions']:.2f})",
        baseline=f"${b['total']:.2f} (SFN ${b['step_functions']:.2f})",
        ratio=ratio(o["total"] / b["total"]),
        target=f"≤ {COST_TARGET:.2f}x",
        met=o["total"] / b["total"] <= COST_TARGET,
        command=command(KEY),
    )


def _notes(
    jobs: dict[str, float], run: dict[str, Any], costs: dict[str, dict[str, float]], seed: int
) -> list[str]:
    p = run["parameters"]
    states = json.loads(WORKFLOW_DEFINITION.read_text(encoding="utf-8"))["States"]
    (ladder,) = [r for r in states["PollJob"]["Retry"] if r["ErrorEquals"] == ["JobStillRunning"]]
    notes = [
        f"Ours (template defaults): the first invocation polls {p['PollFirstWaitSeconds']} s after "
        f"the retry, then waits x{p['PollBackoffFactor']} capped at {p['PollMaxWaitSeconds']} s, "
        f"sleeping inside the function, until {p['PollInlineSeconds']} s; then the Task Retry on "
        f"JobStillRunning waits {ladder['IntervalSeconds']} s x{ladder['BackoffRate']}ⁿ (MaxDelaySeconds "
        f"{ladder['MaxDelaySeconds']}) between one-poll invocations; deadline {p['PollDeadlineSeconds']} s. "
        "Baseline: bench/baseline_job_poller.asl.json, a fixed 30 s Wait, one poll step per invocation "
        f"(random seed {seed} for its ±10 % jittered wait_seconds, which it does not use).",
        "Time compressed as the module docstring says: moto's Wait (`WaitFunction._wait_interval`) and "
        "Retry sleeps, and the poll function's own `time.sleep`, advance a virtual clock that the sandbox "
        "(`clock=`) and the poll function (its module's `time`) read; a 1 h job runs in seconds.",
        "Transitions = billed state transitions per execution: history events of type *StateEntered "
        "plus one per Task retry (TaskScheduled beyond the state's entry), as AWS bills retries. "
        "Ours ends a done job in 2 states after the poll (route, announce); "
        "the baseline does not announce.",
    ]
    if costs:
        o, b = costs["ours"], costs["baseline"]
        notes.append(
            f"Cost model: {DOWNLOADS_PER_MONTH:,} downloads/month, each retried once, job durations "
            + ", ".join(f"{share:.0%} {label}" for label, share in zip(jobs, MIX.values(), strict=False))
            + f"; per download ours {o['mean_transitions']:.1f} transitions, "
            f"{o['mean_poll_invocations']:.1f} poll invocations, {o['mean_polls']:.1f} polls, "
            f"{o['mean_poll_seconds']:.1f} s of poll function (baseline {b['mean_transitions']:.1f}, "
            f"{b['mean_poll_invocations']:.1f}, {b['mean_polls']:.1f}, {b['mean_poll_seconds']:.1f} s). "
            "Step Functions Standard $0.025/1,000 transitions; Lambda "
            "$0.20/M requests (one retry invocation per download plus the poll invocations) and "
            f"$0.0000166667/GB-s: poll function at {run['memory_gb'] * 1024:.0f} MB for its measured "
            "seconds plus the seconds it slept (virtual time, billed like any duration) plus an assumed "
            f"{ASSUMED_API_LATENCY_S * 1000:.0f} ms VideoDB latency per poll; retry function at "
            f"{run['retry_gb'] * 1024:.0f} MB, {o['retry_invocation_s'] * 1000:.0f} ms per download; "
            f"Secrets Manager $0.05/10,000 calls, one per {p['SecretCacheTtlSeconds']} s TTL per warm "
            f"container, {WARM_CONTAINERS} containers ({o['secret_calls']:,.0f} calls, figure 4). "
            "No free tier. "
            f"Ours: {cost_sum(o)}; baseline: {cost_sum(b)}."
        )
    return notes


def measure(jobs: dict[str, float] | None = None, seed: int = 5) -> Figure:
    """Billed transitions and detection delay per job, ours vs the fixed-30 s poller; monthly cost."""
    jobs = dict(jobs or JOBS)
    figure = Figure(KEY, "Polling cost")
    run = _run_all(jobs, seed)
    ours, theirs = run["ours"], run["baseline"]
    figure.rows += _job_rows(jobs, ours, theirs)
    costs = _costs(jobs, run)
    if costs:
        figure.rows.append(_cost_row(costs))
    total_mine = sum(r["transitions"] for r in ours.values())
    total_base = sum(r["transitions"] for r in theirs.values())
    figure.data = {
        "ours": {k: {x: y for x, y in v.items() if x != "input"} for k, v in ours.items()},
        "baseline": {k: {x: y for x, y in v.items() if x != "input"} for k, v in theirs.items()},
        "transitions_ratio": total_mine / total_base,
        "costs": costs,
        "parameters": {
            name: run["parameters"][name]
            for name in (
                "PollFirstWaitSeconds",
                "PollBackoffFactor",
                "PollMaxWaitSeconds",
                "PollInlineSeconds",
                "PollDeadlineSeconds",
            )
        },
    }
    figure.notes += _notes(jobs, run, costs, seed)
    return figure
