"""What the model deploys: the template's own values, read through the local wing's template
reader, so the model runs what ``sam deploy`` would (one source of truth for every number).

:func:`deployment` resolves the template with parameter ``overrides`` and reads each function's
environment into the layer's own ``Settings.from_env`` and ``thresholds_from_env``, the retry
queue's visibility timeout and redrive, the event source mapping (batch size, maximum
concurrency), every function's timeout, memory and reserved concurrency, and the workflow's
definition with its substitutions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from videodb_retry.rules.breaker import Thresholds
from videodb_retry.settings import Settings
from videodb_retry.steps.breaker_control import enabled_from_env, thresholds_from_env

from videodb_retry_local.stack.intrinsics import Physical, PhysicalIds
from videodb_retry_local.stack.template import Template

FUNCTIONS = {
    "retry": "RetryFunction",
    "poll": "PollFunction",
    "breaker": "BreakerFunction",
    "sweeper": "SweeperFunction",
}


class _AnyAttribute(dict[str, str]):
    """Every GetAtt of a resource answers a placeholder (the model needs no real ARNs)."""

    def __init__(self, logical_id: str) -> None:
        super().__init__()
        self._id = logical_id

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return f"arn:aws:sim:us-east-1:123456789012:{self._id}/{key}"


@dataclass(frozen=True)
class FunctionSpec:
    """One function as deployed: its settings and its Lambda configuration."""

    settings: Settings
    environment: dict[str, str]
    timeout_seconds: float
    memory_mb: int
    reserved: int | None


@dataclass(frozen=True)
class Deployment:
    """The stack's numbers as the template deploys them."""

    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]
    thresholds: Thresholds
    breaker_enabled: bool
    batch_size: int
    max_concurrency: int
    visibility_timeout: int
    max_receive_count: int
    definition: dict[str, Any]

    @property
    def retry(self) -> FunctionSpec:
        """The retry function."""
        return self.functions["retry"]

    @property
    def poll(self) -> FunctionSpec:
        """The poll function."""
        return self.functions["poll"]


def deployment(overrides: Mapping[str, Any] | None = None) -> Deployment:
    """The template resolved with ``overrides`` (template parameter name -> value)."""
    template = Template.load(overrides=dict(overrides or {}))
    ids = PhysicalIds()
    for logical_id, resource in template.resources().items():
        ids.resources[logical_id] = Physical(
            f"sim-{logical_id}", cast(dict[str, str], _AnyAttribute(logical_id))
        )
        # SAM makes an event source mapping of each SQS event, logical id <Function><Event>,
        # which the template may Ref (the breaker names the retry queue's mapping).
        for event in resource.get("Properties", {}).get("Events", {}) or {}:
            implicit = f"{logical_id}{event}"
            ids.resources[implicit] = Physical(
                f"sim-{implicit}", cast(dict[str, str], _AnyAttribute(implicit))
            )
    functions = {
        name: _function(template, logical_id, ids)
        for name, logical_id in FUNCTIONS.items()
        if logical_id in template.resources()
    }
    queue = template.properties("RetryQueue", ids)
    source = template.sqs_event_sources("RetryFunction", ids)[0]
    breaker_env = (
        functions["breaker"].environment if "breaker" in functions else functions["retry"].environment
    )
    return Deployment(
        parameters=template.parameters,
        functions=functions,
        thresholds=thresholds_from_env(breaker_env),
        breaker_enabled="breaker" in functions and enabled_from_env(functions["retry"].environment),
        batch_size=int(source["BatchSize"]),
        max_concurrency=int(source.get("ScalingConfig", {}).get("MaximumConcurrency", 1000)),
        visibility_timeout=int(queue["VisibilityTimeout"]),
        max_receive_count=int(queue["RedrivePolicy"]["maxReceiveCount"]),
        definition=json.loads(template.state_machine_definition("RetryWorkflow", ids)),
    )


def _function(template: Template, logical_id: str, ids: PhysicalIds) -> FunctionSpec:
    properties = template.properties(logical_id, ids)
    environment = template.function_environment(logical_id, ids)
    reserved = properties.get("ReservedConcurrentExecutions")
    return FunctionSpec(
        settings=Settings.from_env(environment),
        environment=environment,
        timeout_seconds=float(properties.get("Timeout", 3)),
        memory_mb=int(properties.get("MemorySize", 128)),
        reserved=int(reserved) if reserved not in (None, "") else None,
    )
