"""template.yaml as CloudFormation would deploy it: the official SAM translation, offline.

``samtranslator`` (PyPI ``aws-sam-translator``, the library ``sam`` and cfn-lint use) expands
every ``AWS::Serverless::*`` resource into the CloudFormation resources it becomes: the
functions' and the workflow's IAM roles with their policy templates expanded, the event
source mapping, the layer version. The local run reads execution roles from here rather than
from a hand-written reading of ``Policies``.

Offline: code locations are swapped for placeholder S3 URIs (as ``sam validate`` does; the
roles do not depend on them), the AWS managed policies the translation attaches are read from
``managed_policies.json`` beside this file, and no AWS call is made.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videodb_retry_local.stack.template import PhysicalIds, Template, TemplateError

MANAGED_POLICIES_FILE = Path(__file__).with_name("managed_policies.json")
_PLACEHOLDER_URI = "s3://videodb-retry-local-translation/placeholder.zip"
# Properties that point at local files; the translation needs an S3 URI but ignores its content.
_LOCAL_URIS = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


@dataclass(frozen=True)
class ExecutionRole:
    """The role a function or state machine acts under, as the translation generates it."""

    principal: str  # the logical id of the function or state machine that assumes it
    role_logical_id: str
    policies: tuple[tuple[str, dict[str, Any]], ...]  # (name, policy document), intrinsics resolved


def managed_policy_documents() -> dict[str, dict[str, Any]]:
    """AWS managed policies by ARN (``arn:aws:iam::aws:policy/...``), from the local copy."""
    documents: dict[str, dict[str, Any]] = json.loads(MANAGED_POLICIES_FILE.read_text(encoding="utf-8"))
    return documents


def translate(template: Template) -> dict[str, Any]:
    """The CloudFormation template that ``sam deploy`` would create for ``template``."""
    from boto3.session import Session
    from samtranslator.parser.parser import Parser
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.translator import Translator

    document = copy.deepcopy(template.document)
    for resource in document.get("Resources", {}).values():
        uri_property = _LOCAL_URIS.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        if uri_property and isinstance(properties.get(uri_property), str):
            properties[uri_property] = _PLACEHOLDER_URI
    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        plugins=[],
        boto_session=Session(region_name="us-east-1"),  # names the region only; no call is made
    )
    try:
        translated: dict[str, Any] = translator.translate(
            sam_template=document,
            parameter_values=dict(template.parameters),
            get_managed_policy_map=_managed_policy_names,
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"SAM translation failed: {causes}") from None
    return translated


def execution_roles(
    translated: Mapping[str, Any], template: Template, ids: PhysicalIds
) -> dict[str, ExecutionRole]:
    """Each function's and state machine's role, by the principal's logical id, resolved
    against the created resources in ``ids`` (managed policies included as documents)."""
    resources = translated["Resources"]
    managed = managed_policy_documents()
    roles: dict[str, ExecutionRole] = {}
    for logical_id, resource in resources.items():
        role_reference = _role_reference(resource)
        if role_reference is None or role_reference not in resources:
            continue
        condition = resource.get("Condition")
        if condition and not template.conditions[condition]:
            continue  # not deployed with these parameter values
        role = resources[role_reference].get("Properties", {})
        policies: list[tuple[str, dict[str, Any]]] = []
        # Resolved as a whole: conditional policies are Fn::If entries (AWS::NoValue when off).
        for inline in template.resolve(role.get("Policies", []), ids):
            policies.append((inline["PolicyName"], inline["PolicyDocument"]))
        for arn in template.resolve(role.get("ManagedPolicyArns", []), ids):
            if arn not in managed:
                raise TemplateError(
                    f"{role_reference}: no local copy of managed policy {arn} ({MANAGED_POLICIES_FILE.name})"
                )
            policies.append((arn.rsplit("/", 1)[-1], managed[arn]))
        roles[logical_id] = ExecutionRole(logical_id, role_reference, tuple(policies))
    return roles


def _role_reference(resource: Mapping[str, Any]) -> str | None:
    """The logical id of the role a Lambda function or a state machine names, if any."""
    properties = resource.get("Properties", {})
    kind = resource.get("Type")
    value = properties.get("Role") if kind == "AWS::Lambda::Function" else None
    if kind == "AWS::StepFunctions::StateMachine":
        value = properties.get("RoleArn")
    if kind == "AWS::Scheduler::Schedule":  # the schedule invokes its target as this role
        value = properties.get("Target", {}).get("RoleArn")
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def _managed_policy_names() -> dict[str, str]:
    # Managed policies a template names in Policies (by name): none is allowed here, the
    # least-privilege test refuses them; the translation still asks for the map.
    return {arn.rsplit("/", 1)[-1]: arn for arn in managed_policy_documents()}
