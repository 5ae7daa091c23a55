"""The SAM stack emulated in-process with moto, running the project's real handlers.

:class:`EmulatedStack` creates every resource of template.yaml inside an active moto mock
(see :func:`videodb_retry_local.stack.moto_env.local_aws`), routes Lambda ``Invoke`` to the handler
modules (:mod:`~videodb_retry_local.stack.lambda_runtime`), and gives callers the stack's outputs and
what the run produced. Two local-only helpers are added and named as such: an observer rule and
queue that capture every outcome event, and a record of every function invocation.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from moto.core.models import botocore_stubber

from videodb_retry_local.stack.lambda_runtime import Invocation, LocalFunction
from videodb_retry_local.stack.moto_env import REGION, STACK_NAME
from videodb_retry_local.stack.provisioning import TemplateProvisioning
from videodb_retry_local.stack.template import DEFAULT_TEMPLATE, PhysicalIds, Template, TemplateError


class EmulatedStack(TemplateProvisioning):
    """Every resource of template.yaml, created in moto; use inside :func:`local_aws`.

    ``api_key`` is put into the created secret as JSON ``{"api_key": ...}`` or, with
    ``api_key_format="plain"``, as the bare key (``None`` leaves the template's empty value).
    ``overrides`` are template parameter overrides (e.g. short waits for tests and the demo).
    """

    def __init__(
        self,
        api_key: str | None,
        overrides: Mapping[str, Any] | None = None,
        template_path: Path | str = DEFAULT_TEMPLATE,
        api_key_format: str = "json",
        stack_name: str = STACK_NAME,
        region: str = REGION,
    ) -> None:
        self.template = Template.load(template_path, overrides)
        self.ids = PhysicalIds(stack_name=stack_name, region=region)
        self.functions: dict[str, LocalFunction] = {}
        self.invocations: list[Invocation] = []
        self.outputs: dict[str, Any] = {}
        self.observer_queue_url = ""
        self._api_key = api_key
        self._api_key_format = api_key_format
        self._suffix = secrets.token_hex(4).upper()
        self._saved_env: dict[str, str] | None = None
        self._clients: dict[str, Any] = {}
        self._patch: Any = None
        self._outcomes: list[dict[str, Any]] = []
        self._dead_letters: list[dict[str, Any]] = []

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> EmulatedStack:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create(self) -> EmulatedStack:
        """Create every resource in dependency order, then the local-only observer."""
        self._saved_env = dict(os.environ)
        self._reset_caches()
        creators = {
            "AWS::SecretsManager::Secret": self._create_secret,
            "AWS::Serverless::LayerVersion": self._create_layer,
            "AWS::SQS::Queue": self._create_queue,
            "AWS::Events::Rule": self._create_rule,
            "AWS::SQS::QueuePolicy": self._create_queue_policy,
            "AWS::Logs::LogGroup": self._create_log_group,
            "AWS::Serverless::Function": self._create_function,
            "AWS::Serverless::StateMachine": self._create_state_machine,
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::Serverless::SimpleTable": self._create_table,
            "AWS::SNS::Topic": self._create_topic,
            "AWS::CloudWatch::Alarm": self._create_alarm,
            "AWS::CloudWatch::Dashboard": self._create_dashboard,
        }
        try:
            self._route_lambda_invokes()
            resources = self.template.resources()
            for logical_id in self.template.creation_order():
                kind = resources[logical_id]["Type"]
                if kind not in creators:
                    raise TemplateError(f"{logical_id}: the local run cannot create a {kind}")
                creators[kind](logical_id)
            self.outputs = self.template.outputs(self.ids)
            self._create_outcome_observer()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop running executions, unroute Lambda invokes and restore the environment."""
        workflow = self.ids.resources.get(self._logical_of("AWS::Serverless::StateMachine") or "")
        # Only while moto intercepts: after the mock ends a client call would go to AWS.
        if workflow is not None and self._patch is not None and botocore_stubber.enabled:
            sfn = self.client("stepfunctions")
            # Executions run in moto's threads; stopped here, none outlives the mock.
            running = sfn.list_executions(stateMachineArn=workflow.ref, statusFilter="RUNNING")
            for execution in running["executions"]:
                with contextlib.suppress(Exception):
                    sfn.stop_execution(executionArn=execution["executionArn"], error="LocalRunClosed")
        if self._patch is not None:
            self._patch.stop()
            self._patch = None
        for function in self.functions.values():
            sys.modules.pop(function.module.__name__, None)
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None
        self._clients.clear()
        self._reset_caches()

    @property
    def resource_suffix(self) -> str:
        """The suffix every created resource's name carries (CloudFormation's random part)."""
        return self._suffix

    def client(self, service: str) -> Any:
        """A boto3 client in the stack's region (inside the mock: moto), one per service:
        building a client is costly and the consumer asks for some on every batch."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.ids.region)  # type: ignore[call-overload]
        return self._clients[service]

    def _create_outcome_observer(self) -> None:
        """Local only: a rule catching every outcome event into a queue callers can read."""
        sources = sorted(self.outcome_event_sources())
        sqs, events = self.client("sqs"), self.client("events")
        name = f"{self.ids.stack_name}-local-outcome-observer"
        self.observer_queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.observer_queue_url, AttributeNames=["QueueArn"])
        bus = self.event_bus_name
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": sources}))
        events.put_targets(
            Rule=name,
            EventBusName=bus,
            Targets=[{"Id": "observer", "Arn": queue_arn["Attributes"]["QueueArn"]}],
        )

    # -- what callers use ---------------------------------------------------------------

    def ref(self, logical_id: str) -> str:
        """What ``Ref`` of a created resource gives (queue URL, function name, ...)."""
        return self.ids.resources[logical_id].ref

    @property
    def retry_queue_url(self) -> str:
        """URL of the retry queue (the stack output)."""
        return self.outputs["RetryQueueUrl"]

    @property
    def dead_letter_queue_url(self) -> str:
        """URL of the dead-letter queue (the stack output)."""
        return self.outputs["DeadLetterQueueUrl"]

    @property
    def state_machine_arn(self) -> str:
        """ARN of the retry workflow (the stack output)."""
        return self.outputs["RetryWorkflowArn"]

    @property
    def secret_arn(self) -> str:
        """ARN of the API key secret (the stack output)."""
        return self.outputs["ApiKeySecretArn"]

    @property
    def event_bus_name(self) -> str:
        """The event bus carrying failure events in and outcome events out."""
        return self.template.parameters["EventBusName"]

    def outcome_event_sources(self) -> set[str]:
        """Sources outcome events are sent with (by the functions and by the workflow)."""
        sources = {
            env["OUTCOME_EVENT_SOURCE"]
            for env in (self.template.function_environment(f, self.ids) for f in self.functions)
            if "OUTCOME_EVENT_SOURCE" in env
        }
        for logical_id in self.template.resources_of_type("AWS::Serverless::StateMachine"):
            substitutions = self.template.properties(logical_id, self.ids).get("DefinitionSubstitutions", {})
            if "OutcomeEventSource" in substitutions:
                sources.add(substitutions["OutcomeEventSource"])
        return sources

    def put_api_key(self, key: str, api_key_format: str = "json") -> None:
        """Store ``key`` in the secret, as JSON ``{"api_key": ...}`` or plain (key rotation)."""
        if api_key_format not in ("json", "plain"):
            raise ValueError("api_key_format is 'json' or 'plain'")
        value = json.dumps({"api_key": key}) if api_key_format == "json" else key
        self.client("secretsmanager").put_secret_value(
            SecretId=self._created_secret_arn(), SecretString=value
        )

    def _created_secret_arn(self) -> str:
        # Also needed while the stack is being created, before its outputs exist.
        logical_id = self._logical_of("AWS::SecretsManager::Secret")
        if logical_id is None or logical_id not in self.ids.resources:
            raise TemplateError("the stack created no secret (ExistingApiKeySecretArn is set)")
        return self.ids.resources[logical_id].ref

    def send_failure_event(self, download_id: Any, **detail: Any) -> None:
        """Put a "download failed" event on the bus, shaped as the template's rule expects."""
        answer = self.client("events").put_events(
            Entries=[
                {
                    "Source": self.template.parameters["FailureEventSource"],
                    "DetailType": self.template.parameters["FailureEventDetailType"],
                    "Detail": json.dumps({"download_id": download_id, **detail}),
                    "EventBusName": self.event_bus_name,
                }
            ]
        )
        if answer["FailedEntryCount"]:
            raise RuntimeError(f"event not accepted: {answer['Entries']}")

    def send_to_queue(self, body: str, delay_seconds: int = 0) -> str:
        """Send a raw body to the retry queue; returns the SQS message id."""
        return self.client("sqs").send_message(
            QueueUrl=self.retry_queue_url, MessageBody=body, DelaySeconds=delay_seconds
        )["MessageId"]

    def outcome_events(self) -> list[dict[str, Any]]:
        """Every outcome event seen so far (drains the local observer queue into a list)."""
        self._outcomes.extend(json.loads(m["Body"]) for m in self._drain(self.observer_queue_url))
        return list(self._outcomes)

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead-letter message seen so far: ``body`` and ``attributes`` (name -> value)."""
        for message in self._drain(self.dead_letter_queue_url):
            attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
            self._dead_letters.append(
                {"message_id": message["MessageId"], "body": message["Body"], "attributes": attributes}
            )
        return list(self._dead_letters)

    def _drain(self, url: str) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        drained: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return drained
            drained.extend(messages)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def executions(self) -> list[dict[str, Any]]:
        """The workflow's executions (name, status, input and output when finished)."""
        sfn = self.client("stepfunctions")
        found = []
        for summary in sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]:
            found.append(sfn.describe_execution(executionArn=summary["executionArn"]))
        return found

    def running_executions(self) -> int:
        """How many workflow executions are still running."""
        sfn = self.client("stepfunctions")
        return len(
            sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")["executions"]
        )
