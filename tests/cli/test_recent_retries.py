"""`status`: recent retries from the workflow's executions, as a table or JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.stepfunctions import models as sfn_models
from videodb_retry.adapters.workflow import execution_name

from tests.cli.conftest import REGION

ROLE = "arn:aws:iam::123456789012:role/retry-workflow"
# Stands in for the retry workflow: the execution starts with the retry's first state and
# ends with the state in "final" (a Pass state's OutputPath). As in the real workflow, every
# outcome (done, failed, timed out) ends the execution as succeeded, its output saying which;
# only a workflow that broke ("broken" in the state: its poll function could not run) ends in a
# Fail state, which has no output, so its state can only be read from its history.
WORKFLOW = {
    "StartAt": "Poll",
    "States": {
        "Poll": {"Type": "Pass", "OutputPath": "$.final", "Next": "EndByStatus"},
        "EndByStatus": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.broken", "IsPresent": True, "Next": "PollStepUnavailable"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
        "PollStepUnavailable": {
            "Type": "Fail",
            "Error": "PollStepUnavailable",
            "Cause": "The poll function could not run",
        },
    },
}
STARTED = 1_750_000_000.0  # 2025-06-15T15:06:40Z


def first_state(
    download_id: str, job_id: str, attempt: int = 1, started_at: float = STARTED
) -> dict[str, Any]:
    """The input the retry function starts an execution with."""
    return {
        "download_id": download_id,
        "job_id": job_id,
        "output_url": f"https://api.videodb.io/async-response/{job_id}",
        "attempt": attempt,
        "started_at": started_at,
        "deadline_at": started_at + 7200,
        "polls": 0,
        "wait_seconds": 5,
        "status": "running",
    }


def final_state(
    start: dict[str, Any], status: str, polls: int, elapsed: float, error: str | None, broken: bool = False
) -> dict[str, Any]:
    """What the poll function hands back at the end (see poll.py)."""
    detail = {
        "download_id": start["download_id"],
        "status": status,
        "polls": polls,
        "attempt": start["attempt"],
    }
    if error:
        detail["error"] = error
    return {
        **{
            k: start[k]
            for k in ("download_id", "job_id", "output_url", "attempt", "started_at", "deadline_at")
        },
        "polls": polls,
        "status": status,
        "elapsed_seconds": elapsed,
        "outcome": {"detail_type": "x", "detail": detail, "requeue": False},
        **({"broken": True} if broken else {}),
    }


@pytest.fixture
def workflow() -> Iterator[tuple[Any, str]]:
    """A state machine that really executes (moto's ASL interpreter)."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(name="RetryWorkflow", definition=json.dumps(WORKFLOW), roleArn=ROLE)[
            "stateMachineArn"
        ]
        yield sfn, arn


def start(sfn: Any, arn: str, download_id: str, job_id: str, **final: Any) -> str:
    state = first_state(download_id, job_id, attempt=final.pop("attempt", 1))
    state["final"] = final_state(state, **final)
    name = execution_name(download_id, job_id)
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(state))["executionArn"]
    _wait_until_ended(sfn, execution)
    return execution


def _wait_until_ended(sfn: Any, execution_arn: str) -> None:
    for _ in range(200):
        if sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING":
            return
        time.sleep(0.01)
    raise AssertionError("execution did not end")


def test_json_lists_retries_newest_first(cli: Any, workflow: tuple[Any, str]) -> None:
    sfn, arn = workflow
    start(
        sfn, arn, "download-a", "job-1", status="failed", polls=3, elapsed=42.04, error="source unreachable"
    )
    start(sfn, arn, "download-b", "job-2", status="done", polls=2, elapsed=12.5, error=None)
    start(
        sfn,
        arn,
        "download-a",
        "job-3",
        attempt=2,
        status="timed_out",
        polls=9,
        elapsed=7200.0,
        error="job still processing after 7200 s",
    )

    result = cli("status", "--state-machine-arn", arn, "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [(r["download_id"], r["job_id"]) for r in rows] == [
        ("download-a", "job-3"),
        ("download-b", "job-2"),
        ("download-a", "job-1"),
    ]
    timed_out, done, failed = rows
    assert done == {
        "download_id": "download-b",
        "job_id": "job-2",
        "attempt": 1,
        "status": "done",
        "polls": 2,
        "started_at": "2025-06-15T15:06:40Z",
        "elapsed_seconds": 12.5,
        "error": None,
        "execution_status": "SUCCEEDED",
        "execution_name": "download-b--job-2",
        "execution_arn": done["execution_arn"],
    }
    # A failed download is an outcome: its execution succeeded, its output says failed.
    assert (failed["status"], failed["polls"], failed["elapsed_seconds"], failed["error"]) == (
        "failed",
        3,
        42.0,
        "source unreachable",
    )
    assert failed["execution_status"] == timed_out["execution_status"] == "SUCCEEDED"
    assert (timed_out["status"], timed_out["attempt"], timed_out["polls"]) == ("timed_out", 2, 9)
    assert timed_out["error"] == "job still processing after 7200 s"


def test_a_broken_execution_is_failed_with_the_workflows_error(cli: Any, workflow: tuple[Any, str]) -> None:
    sfn, arn = workflow
    start(sfn, arn, "download-x", "job-1", status="running", polls=2, elapsed=30.0, error=None, broken=True)

    (row,) = json.loads(cli("status", "--json", "--state-machine-arn", arn).out)
    # A Fail state has no output: the state comes from the history, the error from the Fail.
    assert (row["status"], row["polls"], row["execution_status"]) == ("failed", 2, "FAILED")
    assert row["error"] == "PollStepUnavailable: The poll function could not run"


def test_filter_by_download_id_and_limit(cli: Any, workflow: tuple[Any, str]) -> None:
    sfn, arn = workflow
    for n in range(4):
        start(
            sfn,
            arn,
            "download-a",
            f"job-{n}",
            attempt=n + 1,
            status="failed",
            polls=1,
            elapsed=1.0,
            error="e",
        )
    start(
        sfn, arn, "download-ab", "job-x", status="done", polls=1, elapsed=1.0, error=None
    )  # same prefix, other id

    rows = json.loads(cli("status", "download-a", "--json", "--state-machine-arn", arn).out)
    assert [r["job_id"] for r in rows] == ["job-3", "job-2", "job-1", "job-0"]
    rows = json.loads(cli("status", "download-a", "--json", "--limit", "2", "--state-machine-arn", arn).out)
    assert [r["attempt"] for r in rows] == [4, 3]
    rows = json.loads(cli("status", "--json", "--limit", "1", "--state-machine-arn", arn).out)
    assert [r["download_id"] for r in rows] == ["download-ab"]
    assert json.loads(cli("status", "download-zzz", "--json", "--state-machine-arn", arn).out) == []


def test_long_ids_with_shortened_execution_names_are_found(cli: Any, workflow: tuple[Any, str]) -> None:
    sfn, arn = workflow
    long_id = "d" * 100
    other = "d" * 99 + "e"  # shares the shortened name's prefix
    start(sfn, arn, long_id, "job-1", status="done", polls=1, elapsed=3.0, error=None)
    start(sfn, arn, other, "job-2", status="done", polls=1, elapsed=3.0, error=None)
    assert len(execution_name(long_id, "job-1")) <= 80

    rows = json.loads(cli("status", long_id, "--json", "--state-machine-arn", arn).out)
    assert [(r["download_id"], r["job_id"]) for r in rows] == [(long_id, "job-1")]


def test_table_is_aligned_and_readable(cli: Any, workflow: tuple[Any, str]) -> None:
    sfn, arn = workflow
    start(sfn, arn, "download-a", "job-1", status="failed", polls=3, elapsed=62.4, error="source unreachable")
    start(sfn, arn, "download-bbbb", "job-2", status="done", polls=12, elapsed=5.0, error=None)

    result = cli("status", "--state-machine-arn", arn)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["DOWNLOAD_ID", "ATTEMPT", "STATUS", "POLLS", "STARTED", "ELAPSED", "ERROR"]
    assert lines[1].split() == ["download-bbbb", "1", "done", "12", "2025-06-15T15:06:40Z", "5s"]
    assert lines[2].split() == [
        "download-a",
        "1",
        "failed",
        "3",
        "2025-06-15T15:06:40Z",
        "1m02s",
        "source",
        "unreachable",
    ]
    # aligned: every column starts at the same place on every line
    for header in ("STATUS", "STARTED", "ERROR"):  # left-aligned columns
        column = lines[0].index(header)
        assert all(
            line[column - 1] == " " and line[column] != " " for line in lines[1:] if len(line) > column
        )
    assert lines[2][lines[0].index("ERROR") :] == "source unreachable"
    for header in ("ATTEMPT", "POLLS", "ELAPSED"):  # numbers: right-aligned
        end = lines[0].index(header) + len(header)
        assert all(line[end - 1] != " " and line[end : end + 1] in ("", " ") for line in lines[1:])


def test_nothing_found(cli: Any, workflow: tuple[Any, str]) -> None:
    _, arn = workflow
    result = cli("status", "--state-machine-arn", arn)
    assert result.code == 0
    assert result.out.strip() == f"no retries found in {arn}"


def _history(state: dict[str, Any], role_arn: str) -> list[dict[str, Any]]:
    """A running retry's history: started, one poll done, now waiting (newest last)."""
    at = datetime(2025, 6, 15, tzinfo=UTC)
    polled = {**state, "polls": 4, "status": "running", "elapsed_seconds": 30.0, "wait_seconds": 8}
    return [
        {
            "id": 1,
            "type": "ExecutionStarted",
            "timestamp": at,
            "executionStartedEventDetails": {"input": json.dumps(state)},
        },
        {
            "id": 2,
            "type": "TaskSucceeded",
            "timestamp": at,
            "previousEventId": 1,
            "taskSucceededEventDetails": {
                "resourceType": "lambda",
                "resource": "invoke",
                "output": json.dumps({"Payload": polled}),
            },
        },
        {
            "id": 3,
            "type": "TaskStateExited",
            "timestamp": at,
            "previousEventId": 2,
            "stateExitedEventDetails": {"name": "PollJob", "output": json.dumps(polled)},
        },
        {
            "id": 4,
            "type": "WaitStateEntered",
            "timestamp": at,
            "previousEventId": 3,
            "stateEnteredEventDetails": {"name": "WaitBeforePoll", "input": json.dumps(polled)},
        },
    ]


def test_running_retry_reads_polls_from_the_history(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():  # executions are not run: they stay RUNNING
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(name="wf", definition=json.dumps(WORKFLOW), roleArn=ROLE)[
            "stateMachineArn"
        ]
        started_at = time.time() - 90
        state = first_state("download-r", "job-r", started_at=started_at)
        monkeypatch.setattr(
            sfn_models.Execution, "get_execution_history", lambda self, role: _history(state, role)
        )
        sfn.start_execution(stateMachineArn=arn, name="download-r--job-r", input=json.dumps(state))

        result = cli("status", "download-r", "--json", "--state-machine-arn", arn)
    assert result.code == 0, result.err
    (row,) = json.loads(result.out)
    assert (row["status"], row["polls"], row["execution_status"], row["error"]) == (
        "running",
        4,
        "RUNNING",
        None,
    )
    assert 89 <= row["elapsed_seconds"] <= 120  # measured until now, not until the last poll


def test_unknown_state_machine_is_one_line(cli: Any, workflow: tuple[Any, str]) -> None:
    _, arn = workflow
    result = cli("status", "--state-machine-arn", arn + "-gone")
    assert result.code == 1
    assert len(result.err_lines) == 1
    assert result.err.startswith("videodb-retry: ListExecutions failed: StateMachineDoesNotExist")
