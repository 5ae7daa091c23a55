"""Figure 5: what following a job costs — Step Functions state transitions per job and how late
the workflow notices the job's end — for jobs that finish after 10 s, 1 min, 10 min and 1 h.

Real executions in moto of statemachine/retry_workflow.asl.json (started by the retry
function's real handler) with the template's default timing parameters, against the baseline
bench/baseline_job_poller.asl.json (AWS's Job Status Poller shape: a fixed 30 s Wait), whose
poll step is the same poll function. Transitions are the history events of type
``*StateEntered`` (what AWS bills). Executions run one at a time.

The executions, in compressed time (a 1 h job takes seconds), and the detection delay (from the
job's end to the first poll after it) are taken by ``bench.polling_executions``; the monthly cost
model is ``bench.polling_model``. This module turns them into the figure's rows and notes.
"""

from __future__ import annotations

import json
from typing import Any

from bench.common import ROOT, Figure, Row, command, ratio
from bench.polling_executions import run_all
from bench.polling_model import (
    ASSUMED_API_LATENCY_S,
    DOWNLOADS_PER_MONTH,
    MIX,
    WARM_CONTAINERS,
    cost_sum,
    monthly_cost,
)

KEY = "polling"
WORKFLOW_DEFINITION = ROOT / "statemachine" / "retry_workflow.asl.json"
JOBS = {"10 s": 10, "1 min": 60, "10 min": 600, "1 h": 3600}
TRANSITIONS_TARGET = 0.25
COST_TARGET = 0.30


def _job_cell(run: dict[str, Any]) -> str:
    return f"{run['transitions']} transitions ({run['polls']} polls); noticed +{run['detection_s']:.1f} s"


def allowed_delay(duration: float) -> float:
    """The detection target: max(10 s, 25 % of the job's duration)."""
    return max(10.0, 0.25 * duration)


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
        f"Ours (template defaults): a Wait state, then the first poll {p['PollFirstWaitSeconds']} s "
        "after the retry (nothing sleeps in Lambda; each invocation makes one request); then the Task "
        f"Retry on JobStillRunning waits {ladder['IntervalSeconds']} s x{ladder['BackoffRate']}ⁿ "
        f"(MaxDelaySeconds {ladder['MaxDelaySeconds']}) between one-poll invocations; deadline "
        f"{p['PollDeadlineSeconds']} s. Every poll takes a token from the request budget first "
        "(never refused here: one job at a time). "
        "Baseline: bench/baseline_job_poller.asl.json, a fixed 30 s Wait, one poll step per invocation "
        f"(random seed {seed} for its ±10 % jittered wait_seconds, which it does not use).",
        "Time compressed as the module docstring says: moto's Wait (`WaitFunction._wait_interval`) and "
        "Retry sleeps, and the poll function's own `time.sleep`, advance a virtual clock that the sandbox "
        "(`clock=`) and the poll function (its module's `time`) read; a 1 h job runs in seconds.",
        "Transitions = billed state transitions per execution: history events of type *StateEntered "
        "plus one per Task retry (TaskScheduled beyond the state's entry), as AWS bills retries. "
        "Ours ends a done job in 2 states after the poll (route, announce) and starts with a Wait; "
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
    run = run_all(jobs, seed)
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
                "PollDeadlineSeconds",
                "ConcurrencyBudget",
                "VideoDBRequestsPerSecond",
            )
        },
    }
    figure.notes += _notes(jobs, run, costs, seed)
    return figure
