"""CloudFormation's intrinsic functions, resolved for the local run.

``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::If``, ``Fn::Join``, ``Fn::FindInMap`` and friends are
resolved against the chosen parameter values, the template's Mappings and conditions, and the
physical ids and attributes of the resources already created (a :class:`PhysicalIds`);
``AWS::NoValue`` removes the entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the property is removed
SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template (or an override) cannot be used as the local run needs it."""


class UnresolvedReference(TemplateError):
    """A reference names a resource that has not been created yet (or does not exist)."""


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
    partition: str = "aws"  # aws-cn, aws-us-gov ... in other partitions

    def pseudo(self, name: str) -> Any:
        """Value of a pseudo parameter such as ``AWS::Region``."""
        values = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local"
            ),
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise TemplateError(f"unsupported pseudo parameter {name}")
        return values[name]


class Intrinsics:
    """Resolves intrinsic functions with the template's parameter values and conditions."""

    def __init__(
        self,
        parameters: Mapping[str, str],
        condition: Callable[[str], bool],
        mappings: Mapping[str, Any] | None = None,
    ) -> None:
        self._parameters = parameters
        self._condition = condition
        self._mappings = mappings or {}

    def evaluate(self, value: Any, ids: PhysicalIds) -> Any:
        """``value`` with every intrinsic function resolved (AWS::NoValue entries are dropped)."""
        if isinstance(value, list):
            items = [self.evaluate(item, ids) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                return self._intrinsic(key, argument, ids)
        resolved = {k: self.evaluate(v, ids) for k, v in value.items()}
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
            return self.evaluate(when_true if self._condition(condition) else when_false, ids)
        if name == "Fn::Equals":
            left, right = (self.evaluate(item, ids) for item in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.evaluate(argument[0], ids)
        if name == "Fn::And":
            return all(self.evaluate(item, ids) for item in argument)
        if name == "Fn::Or":
            return any(self.evaluate(item, ids) for item in argument)
        if name == "Fn::Contains":  # a Rules function: is the string one of the list's?
            items, item = (self.evaluate(part, ids) for part in argument)
            return str(item) in [str(each) for each in items]
        if name == "Fn::Join":
            separator, items = argument
            return str(separator).join(str(item) for item in self.evaluate(items, ids))
        if name == "Fn::Select":
            index, items = argument
            return self.evaluate(items, ids)[int(self.evaluate(index, ids))]
        if name == "Fn::FindInMap":  # the template's Mappings: map, top-level key, second-level key
            map_name, top, second = (str(self.evaluate(part, ids)) for part in argument)
            try:
                return self._mappings[map_name][top][second]
            except KeyError:
                raise TemplateError(f"Fn::FindInMap: no {map_name}/{top}/{second} in Mappings") from None
        if name == "Fn::Split":
            separator, text = argument
            return str(self.evaluate(text, ids)).split(separator)
        raise TemplateError(f"intrinsic function {name} is not supported by the local run")

    def _ref(self, name: str, ids: PhysicalIds) -> Any:
        if name in self._parameters:
            return self._parameters[name]
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
            text, variables = argument[0], self.evaluate(argument[1], ids)
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stays as ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return self._get_att(resource, attribute, ids)
            return str(self._ref(name, ids))

        return SUB_VARIABLE.sub(replace, text)


def references(value: Any) -> set[str]:
    """Logical ids ``value`` refers to through Ref, GetAtt and Sub variables."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                found.add(argument[0] if isinstance(argument, list) else argument.split(".")[0])
            elif key == "Fn::Sub":
                text = argument[0] if isinstance(argument, list) else argument
                found |= {v.split(".")[0] for v in SUB_VARIABLE.findall(text) if not v.startswith("!")}
                if isinstance(argument, list):
                    found |= references(argument[1])
            else:
                found |= references(argument)
    return found
