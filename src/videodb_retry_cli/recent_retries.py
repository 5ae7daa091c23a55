"""``videodb-retry status``: recent retries, one line per workflow execution, newest first.

Each retry attempt that VideoDB accepted is one execution named ``{download_id}--{job_id}``.
Its input holds the attempt and when it started; the poll count, elapsed time, how the
attempt ended and its error are in the workflow state: the output of a succeeded execution
(every outcome, done, failed or timed out, ends the execution as succeeded), or (running, or
an execution that broke: a Fail state has no output) the last state output in its history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from videodb_retry.adapters.workflow import MAX_EXECUTION_NAME
from videodb_retry.rules.messages import is_valid_download_id

from videodb_retry_cli.aws import Aws
from videodb_retry_cli.cli_errors import UsageError
from videodb_retry_cli.output import format_duration, iso_time, print_json, render_table, shorten
from videodb_retry_cli.stack_lookup import Targets

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
# Events read from the end of a history: a few wait/poll rounds, enough to find the last state.
HISTORY_EVENTS = 50
# How many executions are looked through for one download id before giving up.
MAX_SCANNED = 2000
# execution_name() shortens long names to their first (80 - 18) characters + "--" + 16 hex
# digits, so only that many characters of "{download_id}--" are sure to begin the name.
SURE_PREFIX = MAX_EXECUTION_NAME - 18
STATES = ("running", "done", "failed", "timed_out")
# What an execution's own end means when the workflow state does not say (a FAILED execution
# broke: the workflow could not follow the attempt to an outcome).
_BY_EXECUTION = {
    "RUNNING": "running",
    "SUCCEEDED": "done",
    "FAILED": "failed",
    "TIMED_OUT": "timed_out",
    "ABORTED": "aborted",
    "PENDING_REDRIVE": "failed",
}
_OUTPUT_DETAILS = (
    "stateExitedEventDetails",
    "taskSucceededEventDetails",
    "lambdaFunctionSucceededEventDetails",
)


def run(args: Any, aws: Aws, targets: Targets) -> int:
    """Print the recent retries as a table, or as a JSON list with --json."""
    download_id = args.download_id
    if download_id is not None and not is_valid_download_id(download_id):
        raise UsageError(f"{download_id!r} is not a download id (1-128 letters, digits, '-' or '_')")
    sfn = aws.client("stepfunctions")
    arn = targets.state_machine_arn()
    rows = recent_retries(sfn, arn, download_id, args.limit, now=time.time())
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no retries found{' for ' + download_id if download_id else ''} in {arn}")
    else:
        print(_table(rows))
    return 0


def recent_retries(
    sfn: Any, state_machine_arn: str, download_id: str | None, limit: int, now: float
) -> list[dict[str, Any]]:
    """Up to ``limit`` retries, newest first, of ``download_id`` or of every download."""
    rows: list[dict[str, Any]] = []
    for execution in _executions(sfn, state_machine_arn, download_id, limit):
        row = describe_retry(sfn, execution, now)
        # A shortened name matches on its prefix only; the input says whose it really is.
        if download_id and row["download_id"] != download_id:
            continue
        rows.append(row)
        if len(rows) >= limit:
            break
    return rows


def _executions(sfn: Any, arn: str, download_id: str | None, limit: int) -> Iterator[dict[str, Any]]:
    prefix = f"{download_id}--"[:SURE_PREFIX] if download_id else ""
    token = None
    scanned = 0
    while scanned < (MAX_SCANNED if download_id else limit):
        # ListExecutions returns the newest first.
        params: dict[str, Any] = {
            "stateMachineArn": arn,
            "maxResults": 100 if download_id else min(limit, 100),
        }
        if token:
            params["nextToken"] = token
        page = sfn.list_executions(**params)
        for execution in page.get("executions", []):
            scanned += 1
            if execution.get("name", "").startswith(prefix):
                yield execution
        token = page.get("nextToken")
        if not token:
            return


def describe_retry(sfn: Any, execution: dict[str, Any], now: float) -> dict[str, Any]:
    """One retry's row: download id, attempt, status, polls, started, elapsed, error."""
    arn = execution["executionArn"]
    detail = sfn.describe_execution(executionArn=arn)
    given = _object(detail.get("input"))
    execution_status = str(detail.get("status") or execution.get("status") or "")
    state = _object(detail.get("output"))
    if not _is_state(state):
        state = last_state(sfn, arn) or {}
    started = detail.get("startDate") or execution.get("startDate")
    started_at = _number(given.get("started_at"))
    if started_at is None and isinstance(started, datetime):
        started_at = started.timestamp()
    return {
        "download_id": given.get("download_id")
        or state.get("download_id")
        or execution["name"].split("--")[0],
        "job_id": given.get("job_id") or state.get("job_id"),
        "attempt": given.get("attempt") or state.get("attempt"),
        "status": _status(execution_status, state.get("status")),
        "polls": state.get("polls", given.get("polls", 0)),
        "started_at": iso_time(started_at),
        "elapsed_seconds": _elapsed(execution_status, state, started_at, detail, now),
        "error": _error(state, detail, execution_status),
        "execution_status": execution_status,
        "execution_name": execution.get("name"),
        "execution_arn": arn,
    }


def last_state(sfn: Any, execution_arn: str) -> dict[str, Any] | None:
    """The newest workflow state in an execution's history (None if there is none yet)."""
    answer = sfn.get_execution_history(
        executionArn=execution_arn, reverseOrder=True, maxResults=HISTORY_EVENTS
    )
    # Sorted here too: an emulator may ignore reverseOrder.
    for event in sorted(answer.get("events", []), key=lambda e: e.get("id", 0), reverse=True):
        for key in _OUTPUT_DETAILS:
            document = _object(event.get(key, {}).get("output"))
            # A task's raw result wraps the state: {"Payload": state} or {"state": state}.
            for inner in ("Payload", "state"):
                if isinstance(document.get(inner), dict):
                    document = document[inner]
            if _is_state(document):
                return document
    return None


def _status(execution_status: str, state_status: object) -> str:
    by_execution = _BY_EXECUTION.get(execution_status, execution_status.lower() or "unknown")
    if state_status not in STATES:
        return by_execution
    if execution_status in ("ABORTED", "TIMED_OUT"):
        return by_execution  # the execution was stopped whatever its last state said
    if execution_status in ("FAILED", "PENDING_REDRIVE") and state_status in ("running", "done"):
        return "failed"  # the workflow itself broke after that state
    return str(state_status)


def _elapsed(
    execution_status: str, state: dict[str, Any], started_at: float | None, detail: dict[str, Any], now: float
) -> float | None:
    if execution_status == "RUNNING" and started_at is not None:
        return round(now - started_at, 1)  # still going: the last poll's figure is stale
    recorded = _number(state.get("elapsed_seconds"))
    if recorded is not None:
        return round(recorded, 1)
    start, stop = detail.get("startDate"), detail.get("stopDate")
    if isinstance(start, datetime) and isinstance(stop, datetime):
        return round((stop - start).total_seconds(), 1)
    return None


def _error(state: dict[str, Any], detail: dict[str, Any], execution_status: str) -> str | None:
    outcome = state.get("outcome")
    outcome_detail = outcome.get("detail") if isinstance(outcome, dict) else None
    if isinstance(outcome_detail, dict) and outcome_detail.get("error"):
        return str(outcome_detail["error"])
    if execution_status in ("FAILED", "TIMED_OUT", "ABORTED") and (
        detail.get("error") or detail.get("cause")
    ):
        return ": ".join(str(detail[k]) for k in ("error", "cause") if detail.get(k))
    return None


def _table(rows: list[dict[str, Any]]) -> str:
    headers = ["DOWNLOAD_ID", "ATTEMPT", "STATUS", "POLLS", "STARTED", "ELAPSED", "ERROR"]
    cells = [
        (
            r["download_id"],
            r["attempt"] if r["attempt"] is not None else "",
            r["status"],
            r["polls"],
            r["started_at"] or "",
            format_duration(r["elapsed_seconds"]),
            shorten(r["error"], 70),
        )
        for r in rows
    ]
    return render_table(headers, cells, right=[1, 3, 5])


def _object(text: object) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_state(document: dict[str, Any]) -> bool:
    return document.get("status") in STATES


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
