"""Amazon States Language data flow: JSONPath reads and writes, Parameters templates, intrinsics.

The subset the project's workflows use (``$``, ``$.a.b``, ``$.a[0]``, ``$$.State.RetryCount``
and the rest of the context object; ``"key.$"`` templates; the ``States.*`` intrinsics below),
as the ASL specification defines it (https://states-language.net/spec.html, "Paths",
"Payload Template", "Intrinsic Functions"). Anything else raises :class:`AslError`, so a new
construct in the workflow fails the model loudly instead of being skipped.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]")
_INTRINSIC = re.compile(r"^(States\.[A-Za-z]+)\((.*)\)$", re.S)


class AslError(Exception):
    """A construct the interpreter does not know, or a path that selects nothing."""


class PathMissing(AslError):
    """A reference path that selects nothing (Step Functions' States.Runtime)."""


def read(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    """The value ``path`` selects in ``data`` (``$...``) or in the context object (``$$...``)."""
    if path.startswith("$$"):
        return _walk(path[2:], context, path)
    if not path.startswith("$"):
        raise AslError(f"not a path: {path!r}")
    return _walk(path[1:], data, path)


def _walk(rest: str, value: Any, path: str) -> Any:
    position = 0
    while position < len(rest):
        match = _STEP.match(rest, position)
        if match is None:
            raise AslError(f"path {path!r} uses a form the model does not read")
        key = match.group(1) or match.group(3)
        try:
            value = value[int(match.group(2))] if key is None else value[key]
        except (KeyError, IndexError, TypeError):
            raise PathMissing(f"path {path!r} selects nothing") from None
        position = match.end()
    return value


def write(path: str | None, data: Any, value: Any) -> Any:
    """``data`` with ``value`` placed at the ResultPath ``path`` (None: ``data`` unchanged)."""
    if path is None:
        return data
    if path == "$":
        return value
    steps = [m.group(1) or m.group(3) for m in _STEP.finditer(path[1:])]
    if not path.startswith("$.") or None in steps:
        raise AslError(f"ResultPath {path!r} uses a form the model does not write")
    result = copy.copy(data) if isinstance(data, dict) else {}
    node = result
    for step in steps[:-1]:
        child = node.get(step)
        node[step] = copy.copy(child) if isinstance(child, dict) else {}
        node = node[step]
    node[steps[-1]] = value
    return result


def template(value: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """A Parameters / ResultSelector template filled from ``data`` and the context object."""
    if isinstance(value, list):
        return [template(item, data, context) for item in value]
    if not isinstance(value, dict):
        return value
    filled: dict[str, Any] = {}
    for key, item in value.items():
        if key.endswith(".$"):
            filled[key[:-2]] = _dynamic(item, data, context)
        else:
            filled[key] = template(item, data, context)
    return filled


def _dynamic(expression: str, data: Any, context: Mapping[str, Any]) -> Any:
    if expression.startswith("States."):
        return intrinsic(expression, data, context)
    return read(expression, data, context)


def intrinsic(expression: str, data: Any, context: Mapping[str, Any]) -> Any:
    """One ``States.*`` intrinsic call (Format, JsonToString, StringToJson, MathAdd, Array,
    ArrayLength, UUID is left out: the model's runs must be deterministic)."""
    match = _INTRINSIC.match(expression.strip())
    if match is None:
        raise AslError(f"not an intrinsic call: {expression!r}")
    name, args = match.group(1), [_argument(a, data, context) for a in _split(match.group(2))]
    if name == "States.Format":
        text = args[0]
        for arg in args[1:]:
            shown = arg if isinstance(arg, str) else json.dumps(arg, separators=(",", ":"))
            text = text.replace("{}", shown, 1)
        return text
    if name == "States.JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if name == "States.StringToJson":
        return json.loads(args[0])
    if name == "States.MathAdd":
        return args[0] + args[1]
    if name == "States.Array":
        return list(args)
    if name == "States.ArrayLength":
        return len(args[0])
    raise AslError(f"intrinsic {name} is not modelled")


def _argument(text: str, data: Any, context: Mapping[str, Any]) -> Any:
    text = text.strip()
    if text.startswith("$"):
        return read(text, data, context)
    if text.startswith("States."):
        return intrinsic(text, data, context)
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("\\'", "'")
    return json.loads(text)


def _split(args: str) -> list[str]:
    """Top-level comma-separated arguments (quotes and parentheses respected)."""
    parts, depth, quoted, current = [], 0, False, ""
    for index, char in enumerate(args):
        if char == "'" and (index == 0 or args[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    if current.strip():
        parts.append(current)
    return parts
