"""Reading template.yaml for the local run: parameters, conditions, resources and what they say.

The local run derives every resource it creates from the SAM template, so what runs locally
is what deploys. This module loads the YAML (short and long intrinsic forms), applies
parameter overrides (checked against the parameter's own constraints), evaluates conditions
and rules, merges SAM Globals into functions, orders resources by their references, and reads
what the local run needs (properties, queue attributes, environments, definitions, outputs)
resolved against the resources already created; ``intrinsics.py`` resolves the ``Ref``,
``Fn::GetAtt``, ``Fn::Sub``, ``Fn::If`` and friends.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from videodb_retry_local.stack.intrinsics import (
    SUB_VARIABLE,
    Intrinsics,
    Physical,
    PhysicalIds,
    TemplateError,
    UnresolvedReference,
    references,
)

# What the local run imports from here; Physical, PhysicalIds and the errors live in intrinsics.py.
__all__ = [
    "DEFAULT_TEMPLATE",
    "PROJECT_ROOT",
    "SERVERLESS_FUNCTION",
    "Physical",
    "PhysicalIds",
    "Template",
    "TemplateError",
    "UnresolvedReference",
    "load_document",
]

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"

# Short-form tags whose long form is not simply "Fn::<Name>".
_SPECIAL_TAGS = {"Ref": "Ref", "Condition": "Condition"}


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation short-form tags into their long forms."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = _SPECIAL_TAGS.get(tag_suffix, f"Fn::{tag_suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            # "!GetAtt Queue.Arn" is the short form of ["Queue", "Arn"].
            resource, _, attribute = str(value).partition(".")
            value = [resource, attribute]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_document(path: Path | str = DEFAULT_TEMPLATE) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML file into plain dicts with long-form intrinsics."""
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template")
    return document


class Template:
    """A SAM template with parameter values chosen and conditions evaluated."""

    def __init__(
        self,
        document: dict[str, Any],
        base_dir: Path | str = PROJECT_ROOT,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.document = document
        self.base_dir = Path(base_dir)
        self.parameters = self._choose_parameters(dict(overrides or {}))
        self._intrinsics = Intrinsics(self.parameters, self._condition, document.get("Mappings", {}))
        self.conditions: dict[str, bool] = {}
        for name in document.get("Conditions", {}):
            self._condition(name)
        self._check_rules()

    @classmethod
    def load(
        cls, path: Path | str = DEFAULT_TEMPLATE, overrides: Mapping[str, Any] | None = None
    ) -> Template:
        """Load ``path``; relative paths in it (CodeUri, DefinitionUri) are read next to it."""
        return cls(load_document(path), Path(path).resolve().parent, overrides)

    # -- parameters, conditions, rules -------------------------------------------------

    def _choose_parameters(self, overrides: dict[str, Any]) -> dict[str, str]:
        declared = self.document.get("Parameters", {})
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(f"unknown parameter override(s): {', '.join(unknown)}")
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in overrides:
                raw = overrides[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default and no override")
            # CloudFormation hands every parameter value around as a string.
            values[name] = _check_parameter(name, spec, str(raw))
        return values

    def _condition(self, name: str) -> bool:
        if name not in self.conditions:
            conditions = self.document.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self.conditions[name] = bool(self._before_resources(conditions[name]))
        return self.conditions[name]

    def _check_rules(self) -> None:
        # Template Rules guard parameter combinations; CloudFormation refuses the stack otherwise.
        for rule_name, rule in self.document.get("Rules", {}).items():
            if "RuleCondition" in rule and not self._before_resources(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions", []):
                if not self._before_resources(assertion["Assert"]):
                    why = " ".join(str(assertion.get("AssertDescription", "")).split())
                    raise TemplateError(f"rule {rule_name} fails: {why}")

    def _before_resources(self, value: Any) -> Any:
        # Conditions and rules see parameters and pseudo parameters only: no resource exists yet.
        return self._intrinsics.evaluate(value, PhysicalIds())

    # -- resources ----------------------------------------------------------------------

    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources whose Condition holds, SAM Globals merged into serverless functions."""
        chosen = {}
        for logical_id, resource in self.document["Resources"].items():
            condition = resource.get("Condition")
            if condition and not self._condition(condition):
                continue
            resource = copy.deepcopy(resource)
            if resource["Type"] == SERVERLESS_FUNCTION:
                resource["Properties"] = self._with_globals(resource.get("Properties", {}))
            chosen[logical_id] = resource
        return chosen

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """The chosen resources of one type, by logical id."""
        return {k: v for k, v in self.resources().items() if v["Type"] == resource_type}

    def _with_globals(self, properties: dict[str, Any]) -> dict[str, Any]:
        # SAM merges Globals into each function: maps merge (the function wins), lists add up,
        # scalars are overridden.
        merged = copy.deepcopy(self.document.get("Globals", {}).get("Function", {}))
        return _merge_globals(merged, properties)

    def creation_order(self) -> list[str]:
        """Logical ids of the chosen resources, each after every resource it references."""
        resources = self.resources()
        generated = self._generated_resources()
        dependencies = {}
        for logical_id, resource in resources.items():
            depends_on = resource.get("DependsOn", [])
            explicit = {depends_on} if isinstance(depends_on, str) else set(depends_on)
            referenced = {generated.get(d, d) for d in references(resource)} - {logical_id}
            dependencies[logical_id] = explicit | {d for d in referenced if d in resources}
        order: list[str] = []
        visiting: set[str] = set()

        def visit(logical_id: str) -> None:
            if logical_id in order:
                return
            if logical_id in visiting:
                raise TemplateError(f"circular reference through {logical_id}")
            visiting.add(logical_id)
            for dependency in sorted(dependencies[logical_id]):
                visit(dependency)
            visiting.discard(logical_id)
            order.append(logical_id)

        for logical_id in resources:  # template order where dependencies allow
            visit(logical_id)
        return order

    def _generated_resources(self) -> dict[str, str]:
        """Resources SAM generates that the template may reference, by logical id, with the
        function that makes them: an event source mapping ``<Function><Event>`` for each SQS
        event (SAM docs "Referencing AWS SAM generated resources")."""
        generated = {}
        for logical_id, resource in self.resources_of_type(SERVERLESS_FUNCTION).items():
            for event_name, event in resource.get("Properties", {}).get("Events", {}).items():
                if event.get("Type") == "SQS":
                    generated[f"{logical_id}{event_name}"] = logical_id
        return generated

    # -- intrinsic functions ------------------------------------------------------------

    def resolve(self, value: Any, ids: PhysicalIds) -> Any:
        """Resolve every intrinsic function in ``value`` (AWS::NoValue entries are dropped)."""
        return self._intrinsics.evaluate(value, ids)

    # -- what the local run reads -------------------------------------------------------

    def properties(self, logical_id: str, ids: PhysicalIds) -> dict[str, Any]:
        """The resolved Properties of one chosen resource."""
        resources = self.resources()
        if logical_id not in resources:
            raise TemplateError(f"no resource {logical_id} (or its condition is false)")
        return self.resolve(resources[logical_id].get("Properties", {}), ids)

    def queue_attributes(self, logical_id: str, ids: PhysicalIds) -> dict[str, str]:
        """SQS CreateQueue attributes from an ``AWS::SQS::Queue``'s properties."""
        properties = self.properties(logical_id, ids)
        attributes = {}
        for name, value in properties.items():
            if name in ("QueueName", "Tags"):
                continue
            if isinstance(value, bool):
                attributes[name] = "true" if value else "false"
            elif isinstance(value, dict):  # RedrivePolicy / RedriveAllowPolicy are JSON strings
                attributes[name] = json.dumps(value, separators=(",", ":"))
            else:
                attributes[name] = str(value)
        return attributes

    def function_environment(self, logical_id: str, ids: PhysicalIds) -> dict[str, str]:
        """A function's environment variables: Globals and its own, resolved, as strings."""
        properties = self.properties(logical_id, ids)
        variables = properties.get("Environment", {}).get("Variables", {})
        return {name: str(value) for name, value in variables.items()}

    def sqs_event_sources(self, logical_id: str, ids: PhysicalIds) -> list[dict[str, Any]]:
        """A function's SQS event sources (Queue ARN, BatchSize, FunctionResponseTypes, ...)."""
        events = self.properties(logical_id, ids).get("Events", {})
        return [event["Properties"] for event in events.values() if event.get("Type") == "SQS"]

    def state_machine_definition(self, logical_id: str, ids: PhysicalIds) -> str:
        """The state machine's definition file with its DefinitionSubstitutions applied."""
        properties = self.properties(logical_id, ids)
        text = (self.base_dir / properties["DefinitionUri"]).read_text(encoding="utf-8")
        for key, value in properties.get("DefinitionSubstitutions", {}).items():
            text = text.replace("${" + key + "}", str(value))
        left = SUB_VARIABLE.findall(text)
        if left:
            raise TemplateError(f"definition of {logical_id} has unsubstituted ${{{left[0]}}}")
        json.loads(text)  # a broken substitution must fail here, not inside Step Functions
        return text

    def outputs(self, ids: PhysicalIds) -> dict[str, Any]:
        """The stack outputs, resolved (outputs whose Condition is false are left out)."""
        outputs = {}
        for name, output in self.document.get("Outputs", {}).items():
            if output.get("Condition") and not self._condition(output["Condition"]):
                continue
            outputs[name] = self.resolve(output["Value"], ids)
        return outputs


def _check_parameter(name: str, spec: dict[str, Any], value: str) -> str:
    """Check a parameter value against its Type, AllowedValues/Pattern and Min/MaxValue."""
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        raise TemplateError(f"parameter {name}={value!r} is not one of {spec['AllowedValues']}")
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        raise TemplateError(f"parameter {name}={value!r} does not match {spec['AllowedPattern']}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(f"parameter {name}={value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}={value} is below its MinValue {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}={value} is above its MaxValue {spec['MaxValue']}")
    return value


def _merge_globals(globals_: Any, local: Any) -> Any:
    if isinstance(globals_, dict) and isinstance(local, dict) and not _is_intrinsic(local):
        merged = dict(globals_)
        for key, value in local.items():
            merged[key] = _merge_globals(globals_[key], value) if key in globals_ else value
        return merged
    if isinstance(globals_, list) and isinstance(local, list):
        return globals_ + local
    return local


def _is_intrinsic(value: dict[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::", "Condition"))
