"""A small interpreter of the Amazon States Language, run as a SimPy process.

It runs the real ``statemachine/retry_workflow.asl.json`` (whatever the design makes of it):
Task (InputPath, Parameters, ResultSelector, ResultPath, OutputPath, Retry with
IntervalSeconds / BackoffRate / MaxAttempts / MaxDelaySeconds / JitterStrategy, Catch), Choice,
Wait, Pass, Succeed and Fail, as the ASL specification (https://states-language.net/spec.html)
and the Step Functions guide ("Handling errors in Step Functions workflows",
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html) define them.
A Task's ``Resource`` is looked up in ``integrations`` (``arn:aws:states:::lambda:invoke``,
``...:sqs:sendMessage``, ``...:events:putEvents``, ``...:dynamodb:updateItem``...): each is a
generator that may take virtual time and returns the task's result or raises
:class:`TaskFailure`. Map and Parallel are not modelled (they raise :class:`AslError`).

Billing, as Step Functions Standard bills it: one state transition per state entered, plus one
per Task retry (``transitions``). ``on_transition`` may delay a transition (the account's
state-transition token bucket).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import simpy

from videodb_retry_local.load.capacity.asl_paths import AslError, PathMissing, read, template, write

Integration = Callable[[dict[str, Any], "Run"], Generator[simpy.Event, Any, Any]]
DEFAULT_MAX_ATTEMPTS = 3  # ASL spec: Retrier defaults
DEFAULT_INTERVAL = 1.0
DEFAULT_BACKOFF = 2.0


class TaskFailure(Exception):
    """A Task's error (``error`` is the name Retry and Catch match, ``cause`` its text)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


@dataclass
class Run:
    """One execution: its name, what it billed, and how it ended."""

    name: str
    input: Any
    transitions: int = 0
    status: str = "RUNNING"  # SUCCEEDED | FAILED
    output: Any = None
    error: str | None = None
    cause: str | None = None
    states: list[str] = field(default_factory=list)  # states entered, in order


class Interpreter:
    """Runs executions of one state machine definition."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        integrations: Mapping[str, Integration],
        rng: random.Random,
        on_transition: Callable[[], float] | None = None,
        keep_states: bool = False,
    ) -> None:
        self._definition = definition
        self._integrations = integrations
        self._rng = rng
        self._on_transition = on_transition
        self._keep_states = keep_states

    def run(self, env: simpy.Environment, run: Run) -> Generator[simpy.Event, Any, Run]:
        """The execution ``run`` from StartAt to its end (a SimPy process body)."""
        states = self._definition["States"]
        name, data = self._definition["StartAt"], run.input
        context: dict[str, Any] = {"Execution": {"Name": run.name, "Input": run.input}, "State": {}}
        while True:
            yield from self._bill(env, run, name)
            state = states[name]
            context["State"] = {"Name": name, "RetryCount": 0}
            try:
                kind = state["Type"]
                if kind == "Task":
                    next_name, data = yield from self._task(env, run, state, data, context)
                elif kind == "Choice":
                    next_name = _choose(state, data, context)
                elif kind == "Wait":
                    yield env.timeout(_wait_seconds(state, data, context))
                    next_name, data = state.get("Next"), _output(state, _input(state, data, context), context)
                elif kind == "Pass":
                    next_name, data = state.get("Next"), _pass(state, data, context)
                elif kind == "Succeed":
                    next_name, data = None, _output(state, _input(state, data, context), context)
                elif kind == "Fail":
                    return _end(run, "FAILED", None, state.get("Error"), state.get("Cause"))
                else:
                    raise AslError(f"state type {kind} is not modelled")
            except TaskFailure as failure:  # no Retry/Catch took it: the execution fails
                return _end(run, "FAILED", None, failure.error, failure.cause)
            except PathMissing as missing:
                return _end(run, "FAILED", None, "States.Runtime", str(missing))
            if next_name is None or state.get("End"):
                return _end(run, "SUCCEEDED", data, None, None)
            name = next_name

    def _bill(self, env: simpy.Environment, run: Run, name: str) -> Generator[simpy.Event, Any, None]:
        run.transitions += 1
        if self._keep_states:
            run.states.append(name)
        if self._on_transition is not None:
            delay = self._on_transition()
            if delay > 0:
                yield env.timeout(delay)

    def _task(
        self, env: simpy.Environment, run: Run, state: Mapping[str, Any], data: Any, context: dict[str, Any]
    ) -> Generator[simpy.Event, Any, tuple[str | None, Any]]:
        integration = self._integrations.get(state["Resource"])
        if integration is None:
            raise AslError(f"Task resource {state['Resource']} is not modelled")
        attempts: dict[int, int] = {}
        while True:
            effective = _input(state, data, context)
            parameters = (
                template(state["Parameters"], effective, context) if "Parameters" in state else effective
            )
            try:
                result = yield from integration(parameters, run)
            except TaskFailure as failure:
                delay = self._retry_delay(state, failure.error, attempts)
                if delay is None:
                    catcher = _catcher(state, failure.error)
                    if catcher is None:
                        raise
                    caught = {"Error": failure.error, "Cause": failure.cause}
                    return catcher["Next"], write(catcher.get("ResultPath", "$"), data, caught)
                yield env.timeout(delay)
                context["State"]["RetryCount"] += 1
                run.transitions += 1  # a retry is billed as a transition
                continue
            if "ResultSelector" in state:
                result = template(state["ResultSelector"], result, context)
            combined = write(state.get("ResultPath", "$"), data, result)
            return state.get("Next"), _output(state, combined, context)

    def _retry_delay(self, state: Mapping[str, Any], error: str, attempts: dict[int, int]) -> float | None:
        for index, retrier in enumerate(state.get("Retry", [])):
            if not _matches(retrier["ErrorEquals"], error):
                continue
            made = attempts.get(index, 0)
            if made >= retrier.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS):
                return None
            attempts[index] = made + 1
            delay = retry_interval(retrier, made)
            if retrier.get("JitterStrategy", "NONE") == "FULL":
                delay = self._rng.uniform(0, delay)
            return float(delay)
        return None


def retry_interval(retrier: Mapping[str, Any], made: int) -> float:
    """The wait before a Retry's try after ``made`` retries, before any jitter:
    ``IntervalSeconds x BackoffRate**made``, at most ``MaxDelaySeconds``."""
    delay = (
        retrier.get("IntervalSeconds", DEFAULT_INTERVAL) * retrier.get("BackoffRate", DEFAULT_BACKOFF) ** made
    )
    if "MaxDelaySeconds" in retrier:
        delay = min(delay, retrier["MaxDelaySeconds"])
    return float(delay)


def _matches(names: list[str], error: str) -> bool:
    if error in names:
        return True
    if "States.ALL" in names and error != "States.Runtime":
        return True
    return "States.TaskFailed" in names and not error.startswith("States.")


def _catcher(state: Mapping[str, Any], error: str) -> Mapping[str, Any] | None:
    return next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], error)), None)


def _input(state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> Any:
    path = state.get("InputPath", "$")
    return {} if path is None else read(path, data, context)


def _output(state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> Any:
    path = state.get("OutputPath", "$")
    return {} if path is None else read(path, data, context)


def _pass(state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> Any:
    effective = _input(state, data, context)
    if "Result" in state:
        result = state["Result"]
    elif "Parameters" in state:
        result = template(state["Parameters"], effective, context)
    else:
        result = effective
    return _output(state, write(state.get("ResultPath", "$"), data, result), context)


def _wait_seconds(state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> float:
    if "Seconds" in state:
        return float(state["Seconds"])
    if "SecondsPath" in state:
        return float(read(state["SecondsPath"], data, context))
    raise AslError("Wait with a Timestamp is not modelled")


def _end(run: Run, status: str, output: Any, error: str | None, cause: str | None) -> Run:
    run.status, run.output, run.error, run.cause = status, output, error, cause
    return run


def _choose(state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> str:
    for rule in state.get("Choices", []):
        if _holds(rule, data, context):
            return str(rule["Next"])
    if "Default" not in state:
        raise TaskFailure("States.NoChoiceMatched", "no choice rule matched and there is no Default")
    return str(state["Default"])


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "StringEquals": lambda a, b: isinstance(a, str) and a == b,
    "BooleanEquals": lambda a, b: isinstance(a, bool) and a == b,
    "NumericEquals": lambda a, b: _number(a) and a == b,
    "NumericLessThan": lambda a, b: _number(a) and a < b,
    "NumericLessThanEquals": lambda a, b: _number(a) and a <= b,
    "NumericGreaterThan": lambda a, b: _number(a) and a > b,
    "NumericGreaterThanEquals": lambda a, b: _number(a) and a >= b,
    "StringMatches": lambda a, b: isinstance(a, str) and fnmatch.fnmatchcase(a, b),
    "IsNull": lambda a, b: (a is None) == b,
    "IsBoolean": lambda a, b: isinstance(a, bool) == b,
    "IsNumeric": lambda a, b: _number(a) == b,
    "IsString": lambda a, b: isinstance(a, str) == b,
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _holds(rule: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> bool:
    if "And" in rule:
        return all(_holds(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(_holds(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not _holds(rule["Not"], data, context)
    try:
        value = read(rule["Variable"], data, context)
    except PathMissing:
        if "IsPresent" in rule:
            return rule["IsPresent"] is False
        raise
    if "IsPresent" in rule:
        return rule["IsPresent"] is True
    for key, compare in _COMPARE.items():
        if key in rule:
            return compare(value, rule[key])
        if key + "Path" in rule:
            return compare(value, read(rule[key + "Path"], data, context))
    raise AslError(f"choice rule {sorted(rule)} is not modelled")
