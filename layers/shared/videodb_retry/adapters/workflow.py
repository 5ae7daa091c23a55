"""Starting the wait/poll workflow for a retry that VideoDB is processing."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from videodb_retry.adapters.aws_clients import client
from videodb_retry.settings import Settings

MAX_EXECUTION_NAME = 80
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def execution_name(download_id: str, job_id: str) -> str:
    """A deterministic execution name for one download's job (at most 80 characters).

    Step Functions refuses a second execution with the same name, so a duplicate start of
    the same job is detected by the service itself.
    """
    name = _NOT_ALLOWED.sub("_", f"{download_id}--{job_id}")
    if len(name) <= MAX_EXECUTION_NAME and name == f"{download_id}--{job_id}":
        return name
    # Too long or altered by cleaning: keep a readable prefix and make it unique with a hash.
    digest = hashlib.sha256(f"{download_id}\0{job_id}".encode()).hexdigest()[:16]
    return f"{name[: MAX_EXECUTION_NAME - 18]}--{digest}"


class WorkflowStarter:
    """Starts executions of the retry workflow state machine."""

    def __init__(self, settings: Settings) -> None:
        self._arn = settings.state_machine_arn

    def start(self, state: dict[str, Any]) -> bool:
        """Start the workflow for ``state``; False when this job's execution already exists."""
        sfn = client("stepfunctions")
        try:
            sfn.start_execution(
                stateMachineArn=self._arn,
                name=execution_name(state["download_id"], state["job_id"]),
                input=json.dumps(state),
            )
        except sfn.exceptions.ExecutionAlreadyExists:
            return False
        return True
