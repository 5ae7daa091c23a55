"""Every payload in events/ through `sam local invoke`, in real Lambda containers, offline.

The functions run from the `sam build` output with the offline base image; AWS is a moto
server and VideoDB the sandbox, both on the Docker bridge (see conftest.py). Each test
checks what the invocation did, not only its exit code: the retry function's partial batch
response, the retry POSTs VideoDB received and the key they carried, the workflows started,
the dead-lettered messages and their reasons; the poll function's next state.
"""

from __future__ import annotations

import json
import math
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from videodb_retry.adapters.workflow import execution_name
from videodb_retry.rules.messages import PoisonMessage, parse_body
from videodb_retry.steps.poll import LADDER_CAP_SECONDS, LADDER_FACTOR, LADDER_FIRST_SECONDS

from tests.container.conftest import EVENTS, Stack

pytestmark = pytest.mark.container

MIXED_BATCH = EVENTS / "retry-mixed-batch.json"
RETRY_EVENTS = sorted(p for p in EVENTS.glob("retry-*.json") if p != MIXED_BATCH)
POLL_EVENTS = sorted(EVENTS.glob("poll-*.json"))

# How the sandbox treats the ids the payloads name. Unlisted ids retry normally (VideoDB
# answers "processing" with a job to follow); the flaky one answers 503, a transient error.
RETRY_SCRIPTS: dict[str, dict[str, Any]] = {"dl-blip-flaky": {"retry_status": 503}}
# poll-<status>.json: how the sandbox's job behaves so that one poll sees <status>.
POLL_SCRIPTS: dict[str, dict[str, Any]] = {
    "running": {"never_finishes": True},
    "done": {"processing_seconds": 0},
    "failed": {"fail_times": 1, "failure_message": "sandbox: the source stream could not be read"},
}


@dataclass
class BatchPlan:
    """What the retry function must do with each record of a batch."""

    started: list[str] = field(default_factory=list)  # download ids whose workflow starts
    failed: list[str] = field(default_factory=list)  # message ids reported for redelivery
    dead: dict[str, str] = field(default_factory=dict)  # message id -> body, dead-lettered
    retried: list[str] = field(default_factory=list)  # download ids POSTed to VideoDB
    attempts: dict[str, int] = field(default_factory=dict)


def _plan_batch(records: list[dict[str, Any]], max_attempts: int) -> BatchPlan:
    """Expected handling of each record, by the project's own message contract."""
    plan = BatchPlan()
    for record in records:
        try:
            request = parse_body(record["body"])
        except PoisonMessage:
            plan.dead[record["messageId"]] = record["body"]
            continue
        if request.attempt > max_attempts:
            plan.dead[record["messageId"]] = record["body"]
            continue
        plan.retried.append(request.download_id)
        plan.attempts[request.download_id] = request.attempt
        if request.download_id in RETRY_SCRIPTS:
            plan.failed.append(record["messageId"])
        else:
            plan.started.append(request.download_id)
    return plan


def _script_batch(sandbox: Any, stack: Stack, plan: BatchPlan) -> None:
    for download_id in plan.retried:
        # Jobs' output_url on the origin the functions know the API by (or they refuse to poll).
        sandbox.script(download_id, output_origin=stack.sandbox_url, **RETRY_SCRIPTS.get(download_id, {}))


def _check_batch(invocation: Any, stack: Stack, sandbox: Any, plan: BatchPlan) -> None:
    assert invocation.result == {"batchItemFailures": [{"itemIdentifier": m} for m in plan.failed]}

    key = stack.secret_api_key()
    calls = sandbox.retry_calls()
    assert sorted(call.path for call in calls) == sorted(f"/download/{d}" for d in plan.retried)
    assert all(call.headers.get("x-access-token") == key for call in calls), "retry without the secret's key"

    executions = stack.executions()
    assert sorted(e["input"]["download_id"] for e in executions) == sorted(plan.started)
    for execution in executions:
        state = execution["input"]
        assert state["status"] == "running" and state["polls"] == 0
        assert state["attempt"] == plan.attempts[state["download_id"]]
        assert state["output_url"] == f"{stack.sandbox_url}/async-response/{state['job_id']}"
        assert execution["name"] == execution_name(state["download_id"], state["job_id"])
        assert state["wait_seconds"] >= 1 and state["deadline_at"] > state["started_at"]

    dead = stack.dead_letters()
    assert sorted(m["Body"] for m in dead) == sorted(plan.dead.values())
    for message in dead:
        attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
        assert attributes["source_message_id"] in plan.dead
        assert attributes["reason"].strip(), "dead-lettered without a reason"
        assert attributes["error_code"]


def _function_settings(stack: Stack, function: str) -> dict[str, str]:
    return stack.template.function_environment(function, stack.ids)


# -- the retry function -------------------------------------------------------------------------


def test_mixed_batch_reports_only_the_transient_record_and_dead_letters_the_poison(
    invoke: Any, stack: Stack, sandbox_server: Any, api_key: str
) -> None:
    records = json.loads(MIXED_BATCH.read_text())["Records"]
    message_id = {record["body"]: record["messageId"] for record in records}
    plan = _plan_batch(records, int(_function_settings(stack, "RetryFunction")["MAX_RETRY_ATTEMPTS"]))
    _script_batch(sandbox_server, stack, plan)

    invocation = invoke("RetryFunction", MIXED_BATCH)

    # Only the record VideoDB answered 503 for goes back to the queue.
    assert invocation.result == {"batchItemFailures": [{"itemIdentifier": message_id["dl-blip-flaky"]}]}
    # Every well-formed id was retried once, with the key from the emulated secret.
    key = stack.secret_api_key()
    assert key == api_key
    retried = {call.path: call.headers.get("x-access-token") for call in sandbox_server.retry_calls()}
    well_formed = ("dl-ok-bare", "dl-ok-json", "dl-ok-from-event", "dl-blip-flaky")
    assert retried == {f"/download/{d}": key for d in well_formed}
    assert len(sandbox_server.retry_calls()) == 4
    # The three VideoDB is processing each got a workflow execution in the emulator.
    started = {e["input"]["download_id"]: e for e in stack.executions()}
    assert set(started) == {"dl-ok-bare", "dl-ok-json", "dl-ok-from-event"}
    # The poison message is in the DLQ, whole, with why.
    [dead] = stack.dead_letters()
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert dead["Body"] == "../../etc/passwd"
    assert attributes["error_code"] == "poison"
    assert attributes["source_message_id"] == message_id["../../etc/passwd"]
    with pytest.raises(PoisonMessage) as why:
        parse_body(dead["Body"])
    assert attributes["reason"] == str(why.value)
    # And the generic expectations agree.
    _check_batch(invocation, stack, sandbox_server, plan)


@pytest.mark.parametrize("event_path", RETRY_EVENTS, ids=[p.name for p in RETRY_EVENTS])
def test_retry_payload(event_path: Path, invoke: Any, stack: Stack, sandbox_server: Any) -> None:
    records = json.loads(event_path.read_text())["Records"]
    plan = _plan_batch(records, int(_function_settings(stack, "RetryFunction")["MAX_RETRY_ATTEMPTS"]))
    _script_batch(sandbox_server, stack, plan)

    invocation = invoke("RetryFunction", event_path)

    _check_batch(invocation, stack, sandbox_server, plan)


# -- the poll function --------------------------------------------------------------------------


def _start_job(sandbox: Any, api_key: str, download_id: str) -> dict[str, Any]:
    """Have the sandbox start a retry job for ``download_id``; returns its id and output_url."""
    request = urllib.request.Request(
        f"{sandbox.base_url}/download/{download_id}", method="POST", headers={"x-access-token": api_key}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # our own server only
    with opener.open(request, timeout=10) as answer:
        return json.loads(answer.read())["data"]


def _wait_bounds(polls: int) -> tuple[int, int]:
    """Range of a bare poll step's wait hint: the workflow's ladder (poll.LADDER_*), 10 % jitter."""
    base = min(LADDER_FIRST_SECONDS * LADDER_FACTOR ** (polls - 1), LADDER_CAP_SECONDS)
    return max(1, math.floor(base * 0.9)), max(1, min(math.ceil(base * 1.1), LADDER_CAP_SECONDS))


@pytest.mark.parametrize("event_path", POLL_EVENTS, ids=[p.name for p in POLL_EVENTS])
def test_poll_payload(
    event_path: Path, invoke: Any, stack: Stack, sandbox_server: Any, api_key: str, tmp_path: Path
) -> None:
    expected = event_path.stem.removeprefix("poll-")
    if expected not in POLL_SCRIPTS:
        pytest.fail(f"{event_path.name}: no expectation for status {expected!r}; add it to POLL_SCRIPTS")
    state = json.loads(event_path.read_text())
    sandbox_server.script(state["download_id"], output_origin=stack.sandbox_url, **POLL_SCRIPTS[expected])
    # The payload names a job; the sandbox's job for that download takes its place.
    job = _start_job(sandbox_server, api_key, state["download_id"])
    event = tmp_path / event_path.name
    event.write_text(json.dumps({**state, "job_id": job["id"], "output_url": job["output_url"]}))

    invocation = invoke("PollFunction", event)

    result = invocation.result
    settings = _function_settings(stack, "PollFunction")
    assert result["status"] == expected
    assert result["polls"] == state["polls"] + 1
    assert (result["download_id"], result["job_id"]) == (state["download_id"], job["id"])
    job_path = f"/async-response/{job['id']}"
    polls = [r for r in sandbox_server.requests if r.method == "GET" and r.path == job_path]
    assert len(polls) == 1, "expected exactly one poll of the job"
    assert polls[0].headers.get("x-access-token") == stack.secret_api_key()
    if expected == "running":
        low, high = _wait_bounds(result["polls"])
        assert low <= result["wait_seconds"] <= high, (result["wait_seconds"], low, high)
        assert "outcome" not in result
        return
    outcome = result["outcome"]
    detail = outcome["detail"]
    assert "wait_seconds" not in result
    assert detail["status"] == expected and detail["download_id"] == state["download_id"]
    assert detail["polls"] == state["polls"] + 1
    will_retry = expected != "done" and state["attempt"] < int(settings["MAX_RETRY_ATTEMPTS"])
    assert outcome["requeue"] is will_retry and detail["will_retry"] is will_retry
    if expected == "done":
        assert outcome["detail_type"] == "Download Retry Succeeded"
        assert detail["result"]["download_url"]
    else:
        assert outcome["detail_type"] == "Download Retry Failed"
        assert POLL_SCRIPTS["failed"]["failure_message"] in detail["error"]
        if will_retry:
            assert json.loads(outcome["requeue_body"])["attempt"] == state["attempt"] + 1
        assert outcome["requeue_delay_seconds"] == int(settings["REQUEUE_DELAY_SECONDS"])
