"""Where the queues and the workflow are: explicit options, else the stack's outputs.

The stack name is ``--stack-name`` or, failing that, ``stack_name`` in samconfig.toml (the
file ``sam deploy`` writes), so an operator in the project directory needs no options.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from videodb_retry_cli.aws import Aws, error_code
from videodb_retry_cli.cli_errors import CliError, UsageError

DEFAULT_CONFIG_FILE = "samconfig.toml"
DEFAULT_CONFIG_ENV = "default"

# The template's output keys (template.yaml, Outputs).
RETRY_QUEUE_URL = "RetryQueueUrl"
RETRY_QUEUE_ARN = "RetryQueueArn"
DEAD_LETTER_QUEUE_URL = "DeadLetterQueueUrl"
RETRY_WORKFLOW_ARN = "RetryWorkflowArn"


@dataclass(frozen=True)
class SamConfig:
    """What this tool needs from samconfig.toml: the stack name and the deploy region."""

    path: Path
    found: bool
    stack_name: str | None = None
    region: str | None = None

    @classmethod
    def load(cls, path: str | None, env: str) -> SamConfig:
        """Read ``path`` (default ./samconfig.toml, which may be absent) for environment ``env``.

        A file named explicitly must exist; the default one is optional.
        """
        file = Path(path or DEFAULT_CONFIG_FILE)
        try:
            with file.open("rb") as handle:
                document = tomllib.load(handle)
        except FileNotFoundError:
            if path:
                raise UsageError(f"config file not found: {file}") from None
            return cls(path=file, found=False)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"cannot read {file}: {exc}") from None
        section = document.get(env)
        if not isinstance(section, dict):
            if env != DEFAULT_CONFIG_ENV or path:
                raise UsageError(f"{file} has no [{env}] environment")
            return cls(path=file, found=True)
        # sam reads a command's parameters first, then the environment's global ones.
        deploy = _table(section, "deploy")
        common = _table(section, "global")
        return cls(
            path=file,
            found=True,
            stack_name=_text(deploy.get("stack_name")) or _text(common.get("stack_name")),
            region=_text(deploy.get("region")) or _text(common.get("region")),
        )


class Targets:
    """Resolves the retry queue, the dead-letter queue and the workflow for one command.

    ``config`` is called (and samconfig.toml read) only when no option names the resource.
    """

    def __init__(
        self,
        aws: Aws,
        config: Callable[[], SamConfig | None],
        stack_name: str | None = None,
        queue_url: str | None = None,
        dlq_url: str | None = None,
        state_machine_arn: str | None = None,
    ) -> None:
        self._aws = aws
        self._load_config = config
        self._stack_name = stack_name
        self._queue_url = queue_url
        self._dlq_url = dlq_url
        self._state_machine_arn = state_machine_arn
        self._outputs: dict[str, str] | None = None

    @property
    def stack_name(self) -> str:
        """``--stack-name``, else samconfig.toml's stack_name; a CliError when neither exists."""
        if self._stack_name:
            return self._stack_name
        config = self._load_config()
        if config and config.stack_name:
            return config.stack_name
        where = (
            f"{config.path} has no stack_name"
            if config and config.found
            else f"no {DEFAULT_CONFIG_FILE} in {Path.cwd()}"
        )
        raise CliError(f"which stack? use --stack-name (or --queue-url / --state-machine-arn); {where}")

    def output(self, key: str) -> str:
        """One output of the stack (DescribeStacks), read once per run."""
        if self._outputs is None:
            self._outputs = self._describe_outputs()
        value = self._outputs.get(key)
        if not value:
            raise CliError(
                f"stack {self.stack_name!r} has no output {key}: is it a videodb-retry stack, fully deployed?"
            )
        return value

    def retry_queue_url(self) -> str:
        """The retry queue: ``--queue-url`` or the RetryQueueUrl output."""
        return self._queue_url or self.output(RETRY_QUEUE_URL)

    def dead_letter_queue_url(self) -> str:
        """The DLQ: ``--dlq-url``; with only ``--queue-url``, that queue's redrive target;
        else the DeadLetterQueueUrl output."""
        if self._dlq_url:
            return self._dlq_url
        if self._queue_url:
            return self._dlq_of(self._queue_url)
        return self.output(DEAD_LETTER_QUEUE_URL)

    def state_machine_arn(self) -> str:
        """The retry workflow: ``--state-machine-arn`` or the RetryWorkflowArn output."""
        return self._state_machine_arn or self.output(RETRY_WORKFLOW_ARN)

    def queue_arn(self, queue_url: str) -> str:
        """The ARN of a queue, read from the queue itself (works for any --queue-url)."""
        return self.queue_attributes(queue_url, "QueueArn")["QueueArn"]

    def queue_attributes(self, queue_url: str, *names: str) -> dict[str, str]:
        """GetQueueAttributes for ``names`` on ``queue_url``."""
        answer = self._aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))
        return dict(answer.get("Attributes", {}))

    def _dlq_of(self, queue_url: str) -> str:
        policy = self.queue_attributes(queue_url, "RedrivePolicy").get("RedrivePolicy")
        try:
            target = json.loads(policy)["deadLetterTargetArn"] if policy else None
        except (ValueError, KeyError, TypeError):
            target = None
        if not target:
            raise CliError(f"queue {queue_url} has no dead-letter queue; pass --dlq-url")
        # arn:aws:sqs:<region>:<account>:<name>
        parts = target.split(":")
        if len(parts) != 6:
            raise CliError(f"queue {queue_url} names an odd dead-letter queue ARN {target!r}; pass --dlq-url")
        answer = self._aws.client("sqs").get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])
        return str(answer["QueueUrl"])

    def _describe_outputs(self) -> dict[str, str]:
        name = self.stack_name
        try:
            stacks = self._aws.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                region = self._aws.region or "this region"
                raise CliError(f"stack {name!r} not found in {region}") from None
            raise
        if not stacks:
            raise CliError(f"stack {name!r} not found")
        return {
            str(o.get("OutputKey")): str(o.get("OutputValue", ""))
            for o in stacks[0].get("Outputs", [])
            if o.get("OutputKey")
        }


def _table(section: dict[str, Any], command: str) -> dict[str, Any]:
    table = section.get(command, {})
    parameters = table.get("parameters", {}) if isinstance(table, dict) else {}
    return parameters if isinstance(parameters, dict) else {}


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
