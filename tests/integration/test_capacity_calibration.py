"""Issue 20's calibration: the calibration scenario through the emulated stack (moto, the real
handlers, the sandbox) in virtual time, against what its scripts imply and against the
capacity model: every count equal, the drain time within 10 %.

One emulated run serves every test (about a minute of real time on a shared machine).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from videodb_retry_local.load.capacity.calibration import (
    CALIBRATION_PARAMETERS,
    CALIBRATION_SCENARIO,
    emulated_counts,
)
from videodb_retry_local.load.capacity.counts import Counts
from videodb_retry_local.load.capacity.model import model_counts
from videodb_retry_local.videodb_sandbox.sandbox_downloads import Script

DRAIN_TOLERANCE = 0.10  # the bound on the model's drain time against the emulated one


@pytest.fixture(scope="module")
def emulated() -> Counts:
    """The calibration scenario's counts, measured once on the emulated stack."""
    return emulated_counts(CALIBRATION_SCENARIO, CALIBRATION_PARAMETERS)


def _predicted(scenario: list[tuple[str, Script]], attempts: int) -> dict[str, Any]:
    """What each download's script implies, written from the scripts and the README's rules
    (not from the code under test): POSTs, executions, outcome events, dead letters."""
    posts = executions = 0
    outcomes: Counter[str] = Counter()
    letters: Counter[str] = Counter()
    for download_id, script in scenario:
        if "/" in download_id:  # a path is no download id: poison, VideoDB never asked
            letters["poison"] += 1
            continue
        if script.retry_status == 404 and script.retry_status_times is None:
            posts += 1  # refused for good: dead-lettered with the status
            letters["http_404"] += 1
            continue
        if script.retry_status is not None:
            posts += script.retry_status_times or 0  # each transient refusal is one more POST
        if script.never_finishes:
            posts, executions = posts + attempts, executions + attempts
            outcomes["Download Retry Timed Out"] += attempts
            continue
        failures = min(script.fail_times, attempts)
        posts += failures + (failures < attempts)
        executions += failures + (failures < attempts)
        outcomes["Download Retry Failed"] += failures
        outcomes["Download Retry Succeeded"] += failures < attempts
    return {"posts": posts, "executions": executions, "outcomes": outcomes, "letters": letters}


def test_the_scenario_is_the_demo_mix_at_300_downloads() -> None:
    ids = [download_id for download_id, _ in CALIBRATION_SCENARIO]
    assert len(ids) == 300
    assert len(set(ids)) == len(ids)
    # Each of the demo's cases, 50 times: the id names its case (cal-<case>-<copy>).
    kinds = Counter(download_id.split("-")[1] for download_id in ids)
    assert kinds == {kind: 50 for kind in ("quick", "second", "stuck", "missing", "poison", "blip")}


def test_emulated_counts_are_what_the_scripts_imply(emulated: Counts) -> None:
    attempts = int(CALIBRATION_PARAMETERS["MaxRetryAttempts"])
    predicted = _predicted(CALIBRATION_SCENARIO, attempts)
    assert emulated.posts == predicted["posts"]
    assert emulated.executions == predicted["executions"]
    assert emulated.outcome_events == dict(predicted["outcomes"])
    assert emulated.dead_letters == dict(predicted["letters"])
    # Every execution polls at least once, and bills at least its poll, route and announce.
    assert emulated.polls > emulated.executions
    assert emulated.transitions >= 3 * emulated.executions
    # The never-finishing downloads bound the drain from below: each attempt runs to its
    # deadline, and the next one starts after the re-queue delay.
    deadline = float(CALIBRATION_PARAMETERS["PollDeadlineSeconds"])
    requeue = float(CALIBRATION_PARAMETERS["RequeueDelaySeconds"])
    assert emulated.drain_seconds >= attempts * deadline + (attempts - 1) * requeue


def test_the_model_counts_what_the_emulated_stack_counts(emulated: Counts) -> None:
    model = model_counts(CALIBRATION_SCENARIO, CALIBRATION_PARAMETERS)
    differences = [line for line in model.differences(emulated) if not line.startswith("drain_seconds:")]
    assert differences == [], f"model {model.to_dict()} != emulated {emulated.to_dict()}"
    error = abs(model.drain_seconds - emulated.drain_seconds) / emulated.drain_seconds
    drains = f"model {model.drain_seconds} s, emulated {emulated.drain_seconds} s"
    assert error <= DRAIN_TOLERANCE, drains
