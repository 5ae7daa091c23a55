"""``videodb-retry breaker``: see the circuit breaker, or open / close it by hand.

The breaker function does the work (one code path for the schedule and the operator): this
command invokes it synchronously with ``{"action": "status" | "open" | "close", "reason": ...}``
and prints what it reports.
"""

from __future__ import annotations

import json
from typing import Any

from videodb_retry_cli.aws import Aws
from videodb_retry_cli.cli_errors import CliError, UsageError
from videodb_retry_cli.output import iso_time, print_json
from videodb_retry_cli.stack_lookup import Targets

BREAKER_FUNCTION_NAME = "BreakerFunctionName"  # the template's output key
ACTIONS = ("status", "open", "close")
MAX_REASON = 500  # the function keeps this many characters


def run(args: Any, aws: Aws, targets: Targets) -> int:
    """Invoke the breaker function with the action and print its report."""
    action = args.action
    if action != "status" and not (args.reason or "").strip():
        raise UsageError(f"'breaker {action}' needs --reason TEXT (it is recorded and announced)")
    if args.reason and len(args.reason) > MAX_REASON:
        raise UsageError(f"--reason is at most {MAX_REASON} characters")
    name = args.function_name or targets.output(BREAKER_FUNCTION_NAME)
    event: dict[str, Any] = {"action": action}
    if args.reason:
        event["reason"] = args.reason.strip()
    report = invoke(aws, name, event)
    if args.json:
        print_json(report)
    else:
        print(describe(report))
    return 0


def invoke(aws: Aws, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """One synchronous invocation; a function error is a CliError with its message."""
    answer = aws.client("lambda").invoke(
        FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
    )
    payload = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else None
        raise CliError(f"the breaker function failed: {message or answer['FunctionError']}")
    if not isinstance(payload, dict) or "mode" not in payload:
        raise CliError(f"the breaker function answered something unexpected: {str(payload)[:200]}")
    return payload


def describe(report: dict[str, Any]) -> str:
    """Two human lines: the mode and since when, then why."""
    # A breaker that never switched reports ``since`` 0 (no state row yet): not "since 1970".
    since = f"since {iso_time(report['since'])}" if report.get("since") else "never opened"
    if report["mode"] == "open":
        head = (
            "open (retries paused"
            + (", by hand: probes off" if report.get("manual") else "; probing VideoDB")
            + ")"
        )
        extra = f"probes so far: {report.get('probes', 0)}"
    else:
        head = f"closed (retries running, concurrency up to {report.get('concurrency')})"
        extra = ""
    lines = [f"breaker {head} {since}", f"reason: {report.get('reason') or '-'}"]
    if extra:
        lines.append(extra)
    return "\n".join(lines)
