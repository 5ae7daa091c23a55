"""Reading template.yaml for the local run: parameters, conditions and intrinsic functions.

The local run derives every resource it creates from the SAM template, so what runs locally
is what deploys. This module loads the YAML (short and long intrinsic forms), applies
parameter overrides (checked against the parameter's own constraints), evaluates conditions
and resolves ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::If`` and friends against the
physical ids and attributes of resources already created (a :class:`PhysicalIds`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = PROJECT_ROOT / "template.yaml"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
NO_VALUE = object()  # AWS::NoValue: the property is removed

# Short-form tags whose long form is not simply "Fn::<Name>".
_SPECIAL_TAGS = {"Ref": "Ref", "Condition": "Condition"}
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template (or an override) cannot be used as the local run needs it."""


class UnresolvedReference(TemplateError):
    """A reference names a resource that has not been created yet (or does not exist)."""


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


@dataclass
class Physical:
    """What a created resource answers to ``Ref`` and ``Fn::GetAtt``."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class PhysicalIds:
    """The emulated stack's created resources and pseudo parameters, for resolving intrinsics."""

    stack_name: str = "videodb-retry-local"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    resources: dict[str, Physical] = field(default_factory=dict)

    def pseudo(self, name: str) -> Any:
        """Value of a pseudo parameter such as ``AWS::Region``."""
        values = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local"
            ),
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise TemplateError(f"unsupported pseudo parameter {name}")
        return values[name]


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
            self.conditions[name] = bool(self._evaluate(conditions[name], PhysicalIds()))
        return self.conditions[name]

    def _check_rules(self) -> None:
        # Template Rules guard parameter combinations; CloudFormation refuses the stack otherwise.
        for rule_name, rule in self.document.get("Rules", {}).items():
            if "RuleCondition" in rule and not self._evaluate(rule["RuleCondition"], PhysicalIds()):
                continue
            for assertion in rule.get("Assertions", []):
                if not self._evaluate(assertion["Assert"], PhysicalIds()):
                    why = " ".join(str(assertion.get("AssertDescription", "")).split())
                    raise TemplateError(f"rule {rule_name} fails: {why}")

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
        dependencies = {}
        for logical_id, resource in resources.items():
            depends_on = resource.get("DependsOn", [])
            explicit = {depends_on} if isinstance(depends_on, str) else set(depends_on)
            referenced = {d for d in _references(resource) if d in resources and d != logical_id}
            dependencies[logical_id] = explicit | referenced
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

    # -- intrinsic functions ------------------------------------------------------------

    def resolve(self, value: Any, ids: PhysicalIds) -> Any:
        """Resolve every intrinsic function in ``value`` (AWS::NoValue entries are dropped)."""
        return self._evaluate(value, ids)

    def _evaluate(self, value: Any, ids: PhysicalIds) -> Any:
        if isinstance(value, list):
            items = [self._evaluate(item, ids) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, argument, ids)
        resolved = {k: self._evaluate(v, ids) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _intrinsic(self, name: str, argument: Any, ids: PhysicalIds) -> Any:
        if name == "Ref":
            return self._ref(argument, ids)
        if name == "Condition":
            return self._condition(argument)
        if name == "Fn::GetAtt":
            resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._get_att(resource, attribute, ids)
        if name == "Fn::Sub":
            return self._sub(argument, ids)
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return self._evaluate(when_true if self._condition(condition) else when_false, ids)
        if name == "Fn::Equals":
            left, right = (self._evaluate(item, ids) for item in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self._evaluate(argument[0], ids)
        if name == "Fn::And":
            return all(self._evaluate(item, ids) for item in argument)
        if name == "Fn::Or":
            return any(self._evaluate(item, ids) for item in argument)
        if name == "Fn::Contains":  # a Rules function: is the string one of the list's?
            items, item = (self._evaluate(part, ids) for part in argument)
            return str(item) in [str(each) for each in items]
        if name == "Fn::Join":
            separator, items = argument
            return str(separator).join(str(item) for item in self._evaluate(items, ids))
        if name == "Fn::Select":
            index, items = argument
            return self._evaluate(items, ids)[int(self._evaluate(index, ids))]
        if name == "Fn::Split":
            separator, text = argument
            return str(self._evaluate(text, ids)).split(separator)
        raise TemplateError(f"intrinsic function {name} is not supported by the local run")

    def _ref(self, name: str, ids: PhysicalIds) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name.startswith("AWS::"):
            return ids.pseudo(name)
        if name in ids.resources:
            return ids.resources[name].ref
        raise UnresolvedReference(f"Ref {name}: no such parameter or created resource")

    def _get_att(self, resource: str, attribute: str, ids: PhysicalIds) -> str:
        physical = ids.resources.get(resource)
        if physical is None:
            raise UnresolvedReference(f"GetAtt {resource}.{attribute}: resource not created")
        if attribute not in physical.attributes:
            raise UnresolvedReference(f"GetAtt {resource}.{attribute}: attribute unknown")
        return physical.attributes[attribute]

    def _sub(self, argument: Any, ids: PhysicalIds) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], self._evaluate(argument[1], ids)
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stays as ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self._get_att(*name.split(".", 1), ids))
            return str(self._ref(name, ids))

        return _SUB_VARIABLE.sub(replace, text)

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
        left = _SUB_VARIABLE.findall(text)
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


def _references(value: Any) -> set[str]:
    """Logical ids ``value`` refers to through Ref, GetAtt and Sub variables."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                found.add(argument[0] if isinstance(argument, list) else argument.split(".")[0])
            elif key == "Fn::Sub":
                text = argument[0] if isinstance(argument, list) else argument
                found |= {v.split(".")[0] for v in _SUB_VARIABLE.findall(text) if not v.startswith("!")}
                if isinstance(argument, list):
                    found |= _references(argument[1])
            else:
                found |= _references(argument)
    return found
