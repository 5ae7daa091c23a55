"""What AWS authorizes for one API call: the IAM action(s) and the resource ARN(s).

The names follow AWS's Service Authorization Reference
(https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html):
most operations are authorized as ``<service prefix>:<OperationName>`` on the resource they
name; the exceptions are listed in :data:`ACTION_OF_OPERATION`. A call to a service this module
cannot place raises :class:`UnmappedCall`, so a new kind of call is mapped on purpose, never
waved through.

Encryption with a customer-managed KMS key adds the key permissions the caller needs
(:data:`KMS_ON_USE`): SQS producers need ``kms:GenerateDataKey`` and ``kms:Decrypt``, consumers
``kms:Decrypt`` (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html);
reading a secret encrypted with one needs ``kms:Decrypt``
(https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Operations whose IAM action is not their own name (Service Authorization Reference).
ACTION_OF_OPERATION = {
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
    ("lambda", "Invoke"): "lambda:InvokeFunction",
}
# IAM service prefixes that differ from botocore's signing name.
PREFIX_OF_SIGNING_NAME = {"monitoring": "cloudwatch"}
# Operations authorized on "*" (no resource-level permissions).
STAR_RESOURCE = {
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
# Key permissions a caller needs when the resource is encrypted with a customer-managed key.
KMS_ON_USE = {
    "sqs:SendMessage": ("kms:GenerateDataKey", "kms:Decrypt"),
    "sqs:ReceiveMessage": ("kms:Decrypt",),
    "secretsmanager:GetSecretValue": ("kms:Decrypt",),
}


class UnmappedCall(LookupError):
    """An AWS call whose IAM action or resource this module does not know."""


@dataclass
class RequestContext:
    """Account facts the mapping needs: where resources live and which keys encrypt them."""

    region: str = "us-east-1"
    account_id: str = "123456789012"
    secret_arns: dict[str, str] = field(default_factory=dict)  # secret name -> ARN
    kms_keys: dict[str, str] = field(default_factory=dict)  # resource ARN -> customer-managed key ARN
    mapping_functions: dict[str, str] = field(default_factory=dict)  # mapping UUID -> function ARN
    key_policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # key ARN -> its key policy
    # Resources of this stack are named "<stack name>-<logical id>-<suffix>": a name with the
    # stack's name and another suffix is a stack closed before, whose late calls are not ours.
    stack_name: str = ""
    suffix: str = ""

    def is_other_stack(self, resource: str) -> bool:
        """True for a resource of an earlier local stack of the same name."""
        return bool(self.stack_name) and f"{self.stack_name}-" in resource and self.suffix not in resource

    def arn(self, service: str, resource: str) -> str:
        """An ARN in this account and region."""
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"


@dataclass(frozen=True)
class Request:
    """One authorization AWS makes: an action on a resource, with the condition keys it sets."""

    action: str
    resource: str
    condition_keys: tuple[tuple[str, str], ...] = ()


def requests_for(
    client: Any, operation: str, params: Mapping[str, Any], context: RequestContext
) -> Iterator[Request]:
    """Each authorization AWS makes for ``operation`` with ``params``."""
    prefix = _prefix(client)
    action = ACTION_OF_OPERATION.get((prefix, operation), f"{prefix}:{operation}")
    if action in STAR_RESOURCE:
        yield Request(action, "*")
        return
    locate = _RESOURCES.get(prefix)
    if locate is None:
        raise UnmappedCall(f"no IAM resource mapping for {prefix}:{operation}")
    for resource in locate(operation, params, context):
        yield Request(action, resource, _condition_keys(action, resource, context))
        key = context.kms_keys.get(resource)
        if key:
            # The service calls KMS with the caller's permissions, and says so in kms:ViaService.
            via = (("kms:ViaService", f"{prefix}.{context.region}.amazonaws.com"),)
            for key_action in KMS_ON_USE.get(action, ()):
                yield Request(key_action, key, via)


def _condition_keys(action: str, resource: str, context: RequestContext) -> tuple[tuple[str, str], ...]:
    # Lambda sets lambda:FunctionArn on event source mapping calls: the function it invokes.
    if action.startswith("lambda:") and ":event-source-mapping:" in resource:
        function = context.mapping_functions.get(resource.rsplit(":", 1)[-1])
        if function is None:
            raise UnmappedCall(f"{action}: unknown event source mapping {resource}")
        return (("lambda:FunctionArn", function),)
    return ()


def _prefix(client: Any) -> str:
    model = client.meta.service_model
    name = model.signing_name or model.endpoint_prefix
    return PREFIX_OF_SIGNING_NAME.get(name, name)


def _sqs(operation: str, params: Mapping[str, Any], context: RequestContext) -> list[str]:
    url = params.get("QueueUrl")
    if not url:
        raise UnmappedCall(f"sqs:{operation} names no QueueUrl")
    account, name = urlsplit(url).path.strip("/").split("/")[-2:]
    return [f"arn:aws:sqs:{context.region}:{account}:{name}"]


def _states(operation: str, params: Mapping[str, Any], context: RequestContext) -> list[str]:
    for name in ("stateMachineArn", "executionArn", "resourceArn"):
        if params.get(name):
            return [str(params[name])]
    raise UnmappedCall(f"states:{operation} names no state machine or execution")


def _events(operation: str, params: Mapping[str, Any], context: RequestContext) -> list[str]:
    if operation != "PutEvents":
        raise UnmappedCall(f"events:{operation} is not mapped")
    buses = {entry.get("EventBusName") or "default" for entry in params.get("Entries", [])}
    return sorted(b if b.startswith("arn:") else context.arn("events", f"event-bus/{b}") for b in buses)


def _dynamodb(operation: str, params: Mapping[str, Any], context: RequestContext) -> list[str]:
    tables = [params["TableName"]] if "TableName" in params else sorted(params.get("RequestItems", {}))
    if not tables:
        raise UnmappedCall(f"dynamodb:{operation} names no table")
    return [context.arn("dynamodb", f"table/{table}") for table in tables]


def _secretsmanager(operation: str, params: Mapping[str, Any], context: RequestContext) -> list[str]:
    secret = str(params.get("SecretId", ""))
    if secret.startswith("arn:"):
        return [secret]
    if secret in context.secret_arns:
        return [context.secret_arns[secret]]
    raise UnmappedCall(f"secretsmanager:{operation}: unknown secret {secret!r}")


def _lambda(operation: str, params: Mapping[str, Any], context: RequestContext) -> list[str]:
    if "UUID" in params:
        return [context.arn("lambda", f"event-source-mapping:{params['UUID']}")]
    name = str(params.get("FunctionName", ""))
    if not name:
        raise UnmappedCall(f"lambda:{operation} names no FunctionName")
    return [name if name.startswith("arn:") else context.arn("lambda", f"function:{name}")]


def _kms(operation: str, params: Mapping[str, Any], context: RequestContext) -> list[str]:
    key = str(params.get("KeyId", ""))
    if not key.startswith("arn:"):
        raise UnmappedCall(f"kms:{operation}: the key is not named by its ARN ({key!r})")
    return [key]


_RESOURCES: dict[str, Callable[[str, Mapping[str, Any], RequestContext], list[str]]] = {
    "sqs": _sqs,
    "states": _states,
    "events": _events,
    "dynamodb": _dynamodb,
    "secretsmanager": _secretsmanager,
    "lambda": _lambda,
    "kms": _kms,
}
