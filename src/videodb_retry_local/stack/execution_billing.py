"""What a Step Functions Standard execution is billed: its history, read whole, and its state
transitions counted the way AWS bills them (used by bench figure 5 and the capacity
calibration)."""

from __future__ import annotations

from typing import Any


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of one execution's history (all pages)."""
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def billed_transitions(history: list[dict[str, Any]]) -> int:
    """State transitions AWS bills: every state entered, plus every Task retry ("each retry
    will be charged as an additional state transition", AWS Step Functions pricing page,
    https://aws.amazon.com/step-functions/pricing/)."""
    entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
    tasks = sum(1 for e in history if e["type"] == "TaskStateEntered")
    scheduled = sum(1 for e in history if e["type"] in ("TaskScheduled", "LambdaFunctionScheduled"))
    return entered + max(0, scheduled - tasks)
