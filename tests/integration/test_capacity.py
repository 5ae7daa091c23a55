"""Issue 20's invariants in a short run of the capacity model (seeded, deterministic; no time is
asserted): a mass failure and an outage through the stack as this branch deploys it lose
nothing, POST no attempt twice, end no execution by throttling, and stay inside both budgets."""

from __future__ import annotations

import pytest

from videodb_retry_local.load.capacity.deployment import deployment
from videodb_retry_local.load.capacity.model import budget_of, run_scenario
from videodb_retry_local.load.capacity.scenarios import Scenario
from videodb_retry_local.load.capacity.sim_videodb import VideoDBBehaviour

SHORT = (
    # 400 failed downloads at once, figure 5's mix of job durations.
    Scenario("mass", downloads=400, rate=None, horizon=12 * 3600.0),
    # 1 failure/s for 20 min; VideoDB down from minute 2 to minute 12.
    Scenario(
        "outage",
        downloads=1200,
        rate=1.0,
        job_seconds=(10.0, 60.0),
        behaviour=VideoDBBehaviour(outages=((120.0, 720.0),)),
        horizon=6 * 3600.0,
    ),
)


@pytest.mark.parametrize("scenario", SHORT, ids=lambda s: s.name)
def test_the_stack_holds_issue_20s_invariants(scenario: Scenario) -> None:
    budget = budget_of(deployment())
    result = run_scenario(scenario)
    assert result.unfinished == 0, "the run reached its horizon with work pending"
    assert result.lost == 0
    assert result.duplicate_posts == 0
    assert result.ended_by_throttling == 0, result.ended_without_outcome
    assert result.peak_lambda_concurrency <= budget["lambda_concurrency"]
    assert result.peak_videodb_rps <= budget["videodb_rps"]
    settled = sum(result.outcome_events.values()) + sum(result.dead_letters.values())
    assert settled >= result.downloads
    # The split's bound (bounds.py) is below any run of this design: the model never beats it.
    assert result.drain_split_bound_seconds is not None
    assert result.drain_seconds >= result.drain_split_bound_seconds


def test_the_same_seed_gives_the_same_run() -> None:
    scenario = SHORT[0]
    first, second = run_scenario(scenario).to_json(), run_scenario(scenario).to_json()
    assert first == second
