"""The capacity model's ASL interpreter: Retry/Catch/Choice/paths as Step Functions runs them,
and the real workflow's billed transitions and polls equal to what moto's executions of it
bill (bench figure 5's jobs).
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import pytest
import simpy

from videodb_retry_local.load.capacity.asl import Interpreter, Run, TaskFailure
from videodb_retry_local.load.capacity.asl_paths import intrinsic, read, template, write
from videodb_retry_local.load.capacity.model import run_scenario
from videodb_retry_local.load.capacity.scenarios import Scenario
from videodb_retry_local.load.capacity.sim_videodb import VideoDBBehaviour

FLAKY = "arn:aws:states:::flaky"


def _definition(retry: list[dict[str, Any]], catch: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": FLAKY,
        "Parameters": {"n.$": "$.n", "retries.$": "$$.State.RetryCount"},
        "ResultSelector": {"got.$": "$.value"},
        "ResultPath": "$.result",
        "Retry": retry,
        "Next": "Route",
    }
    if catch:
        task["Catch"] = catch
    return {
        "StartAt": "Call",
        "States": {
            "Call": task,
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.result.got", "NumericGreaterThan": 1, "Next": "Big"}],
                "Default": "Small",
            },
            "Big": {"Type": "Succeed"},
            "Small": {"Type": "Fail", "Error": "TooSmall"},
            "Caught": {"Type": "Pass", "Result": "handled", "ResultPath": "$.note", "End": True},
        },
    }


def _execute(definition: dict[str, Any], failures: int, data: dict[str, Any]) -> tuple[Run, float, list[int]]:
    env = simpy.Environment()
    seen: list[int] = []

    def flaky(parameters: dict[str, Any], run: Run) -> Generator[simpy.Event, Any, Any]:
        yield env.timeout(1)
        seen.append(parameters["retries"])
        if len(seen) <= failures:
            raise TaskFailure("Flaky", "not yet")
        return {"value": parameters["n"]}

    interpreter = Interpreter(definition, {FLAKY: flaky}, random.Random(1))
    process = env.process(interpreter.run(env, Run("x", data)))
    env.run()
    run = process.value
    assert isinstance(run, Run)
    return run, env.now, seen


def test_retry_waits_grow_by_the_backoff_rate_and_each_retry_is_billed() -> None:
    retry = [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3}]
    run, now, seen = _execute(_definition(retry), failures=2, data={"n": 5})
    assert run.status == "SUCCEEDED"
    assert seen == [0, 1, 2]  # $$.State.RetryCount as each attempt saw it
    assert now == 3 * 1 + 2 + 6  # three 1 s calls, waits 2 and 2 x 3
    assert run.transitions == 1 + 2 + 2  # Call, its two retries, Route, Big
    assert run.output == {"n": 5, "result": {"got": 5}}


def test_max_delay_caps_the_wait() -> None:
    retry = [
        {
            "ErrorEquals": ["States.ALL"],
            "IntervalSeconds": 10,
            "BackoffRate": 10,
            "MaxAttempts": 3,
            "MaxDelaySeconds": 15,
        }
    ]
    _, now, _ = _execute(_definition(retry), failures=2, data={"n": 5})
    assert now == 3 + 10 + 15


def test_retries_spent_go_to_the_catcher_with_error_and_cause() -> None:
    retry = [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 1}]
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]
    run, _, seen = _execute(_definition(retry, catch), failures=5, data={"n": 5})
    assert len(seen) == 2
    assert run.status == "SUCCEEDED"
    assert run.output == {"n": 5, "error": {"Error": "Flaky", "Cause": "not yet"}, "note": "handled"}


def test_an_uncaught_error_fails_the_execution_with_its_name() -> None:
    run, _, _ = _execute(_definition([]), failures=1, data={"n": 5})
    assert (run.status, run.error) == ("FAILED", "Flaky")


def test_choice_default_and_fail_state() -> None:
    run, _, _ = _execute(_definition([]), failures=0, data={"n": 1})
    assert (run.status, run.error, run.transitions) == ("FAILED", "TooSmall", 3)


def test_paths_templates_and_intrinsics() -> None:
    data = {"a": {"b": [1, {"c": "x"}]}, "s": "hi"}
    assert read("$.a.b[1].c", data, {}) == "x"
    assert write("$.a.d", data, 2)["a"] == {"b": [1, {"c": "x"}], "d": 2}
    assert write(None, data, 2) is data
    filled = template({"k.$": "$.s", "f.$": "States.Format('{} there', $.s)", "n": {"m": 1}}, data, {})
    assert filled == {"k": "hi", "f": "hi there", "n": {"m": 1}}
    assert intrinsic("States.MathAdd($.a.b[0], 41)", data, {}) == 42
    assert intrinsic("States.StringToJson(States.JsonToString($.a))", data, {}) == data["a"]


@pytest.mark.parametrize(
    ("job_seconds", "transitions", "polls"),
    # Figure 5's jobs through moto's executions of the real workflow with the real handlers
    # (bench.polling_executions.run_all(JOBS, 5) on this design: 4/1, 7/4, 15/12, 23/20; today's
    # design, before the budgets, billed 3/2, 5/8, 15/18, 23/26 there and here alike).
    [(10.0, 4, 1), (60.0, 7, 4), (600.0, 15, 12), (3600.0, 23, 20)],
)
def test_the_real_workflow_bills_what_moto_bills(job_seconds: float, transitions: int, polls: int) -> None:
    scenario = Scenario(
        "one-job",
        downloads=1,
        rate=None,
        job_seconds=(job_seconds,),
        fail_every=0,
        behaviour=VideoDBBehaviour(post_latency=0.0, get_latency=0.0),
        horizon=4 * 3600.0,
    )
    result = run_scenario(scenario)
    assert (result.transitions, result.requests["poll"]) == (transitions, polls)
    assert result.outcome_events == {"Download Retry Succeeded": 1}
