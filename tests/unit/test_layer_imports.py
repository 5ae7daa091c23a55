"""Rule modules import no adapter: the layer's decisions are typed against ``ports.py``.

Read from the source with ``ast`` (every import, at module level or inside a function), so a
rule module that reaches boto3, requests or an adapter module, directly or through another
layer module that is not a rule, fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYER = Path(__file__).resolve().parents[2] / "layers" / "shared" / "videodb_retry"

# Decisions: what a message means, how an answer maps, how long to wait, what to do next.
RULES = {
    "backoff",
    "breaker",
    "breaker_control",
    "budgets",
    "errors",
    "gated_videodb",
    "http_answers",
    "messages",
    "origin",
    "outcomes",
    "poll",
    "ports",
    "record_delivery",
    "redelivery_policy",
    "retry_attempt",
    "sanitise",
    "settings",
    "status",
    "sweeper",
}
# Neither rule nor adapter: logs and metrics go to stdout (EMF), no AWS call is made.
NEUTRAL = {"__init__", "observability"}
# Libraries that talk to AWS or HTTP, and the Powertools parts that do.
ADAPTER_LIBRARIES = (
    "boto3",
    "botocore",
    "requests",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.batch",
)


def imports_of(module: str) -> set[str]:
    """Every module name ``module`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    tree = ast.parse((LAYER / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer_module(name: str) -> str | None:
    """The layer module ``name`` refers to, if any (``videodb_retry.x`` or ``videodb_retry.x.y``)."""
    parts = name.split(".")
    if parts[0] != "videodb_retry" or len(parts) < 2:
        return None
    return parts[1] if (LAYER / f"{parts[1]}.py").exists() else None


def test_every_layer_module_is_classified() -> None:
    # A new module is a rule or an adapter by decision, not by default.
    modules = {path.stem for path in LAYER.glob("*.py")}
    adapters = modules - RULES - NEUTRAL
    assert modules >= RULES, sorted(RULES - modules)
    assert adapters, "the layer has adapter modules (client, aws_clients, ...)"


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_module_imports_no_adapter(rule: str) -> None:
    imported = imports_of(rule)
    libraries = sorted(
        name
        for name in imported
        if any(name == lib or name.startswith(lib + ".") for lib in ADAPTER_LIBRARIES)
    )
    assert not libraries, f"{rule}.py imports {libraries}"
    adapters = sorted({m for m in map(layer_module, imported) if m is not None} - RULES - NEUTRAL)
    assert not adapters, f"{rule}.py imports adapter modules {adapters}"
