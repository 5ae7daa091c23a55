"""The least drain time the design's request split allows a scenario (``drain_split_bound_seconds``).

The floor (``Scenario.floor_seconds``) is what the budgets allow any design. This bound is what
this design allows with a perfect poll schedule, so that ``make scale`` shows how much of a
scenario's drain time is our polling and how much is the split itself:

- intake (POSTs) runs at the split's ``Budgets.intake_per_second`` in queue order (what SQS
  gives; no design can do better without knowing which jobs will be long and fail), so the
  ``i``-th download's first POST is in window ``i // intake`` at the earliest (nor before its
  arrival);
- each job's end is seen at the workflow's first poll at or after it: the first wait
  (``PollFirstWaitSeconds``), then the definition's Retry on ``JobStillRunning`` (the
  interpreter's ``retry_interval``), with no poll ever deferred;
- a failed first job's download is POSTed again ``RequeueDelaySeconds`` after that poll, at once
  (no queue ahead of it), and its second job is seen the same way.

Second attempts are given no intake time and no poll is deferred, so the bound is below any run
of the design; where it is above 1.25 x the floor, no poll schedule of this split meets issue
20's drain goal.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from videodb_retry_local.load.capacity.asl import retry_interval
from videodb_retry_local.load.capacity.deployment import deployment
from videodb_retry_local.load.capacity.scenarios import Scenario


@cache
def _still_running_retrier() -> dict[str, Any]:
    """The poll Task's Retry on ``JobStillRunning``, as the deployed definition has it."""
    poll = deployment().definition["States"]["PollJob"]
    return next(r for r in poll["Retry"] if "JobStillRunning" in r["ErrorEquals"])


@cache
def seen_at(job_seconds: float, first_wait: float) -> float:
    """When the workflow's polls first find a job of ``job_seconds`` ended (seconds after its
    POST): the first poll after ``first_wait``, then every step of the ladder."""
    at, step = float(first_wait), 0
    while at < job_seconds:
        at += retry_interval(_still_running_retrier(), step)
        step += 1
    return at


def split_bound_seconds(
    scenario: Scenario, intake_per_second: int, first_wait: float, requeue_delay: float
) -> float:
    """The least drain time of ``scenario`` under a split admitting ``intake_per_second`` POSTs
    (see the module's docstring); never below the scenario's own job chains from its arrivals."""
    latest = 0.0
    for index in range(scenario.downloads):
        script = scenario.script(index)
        job = scenario.job_seconds[index % len(scenario.job_seconds)]
        posted = max(scenario.arrival(index), float(index // intake_per_second))
        chain = seen_at(job, first_wait) + script.fail_times * (requeue_delay + seen_at(job, first_wait))
        latest = max(latest, posted + chain)
    return latest
