"""Every module of the runtime package has a place in the layering import-linter checks.

The layering itself (rules import no adapter and no AWS/HTTP library, adapters never import
steps, no cycle, ...) is held by the import-linter contracts in pyproject.toml, a `make lint`
gate. What import-linter cannot say is that a module *must* be placed: a module added at the
package's top level, outside the contract's layers, would be constrained by nothing. So the
package's top level holds exactly the contract's layers, and each folder is a layer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = PROJECT / "layers" / "shared" / "videodb_retry"


def contract(name_start: str) -> dict:
    contracts = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (found,) = [c for c in contracts if c["name"].startswith(name_start)]
    return found


def test_every_top_level_module_and_folder_of_the_runtime_is_a_layer() -> None:
    layering = contract("The runtime is layered")
    assert layering["containers"] == ["videodb_retry"]
    layered = {name.strip() for layer in layering["layers"] for name in layer.split("|")}
    children = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    assert children == layered, f"unplaced: {sorted(children - layered)}, gone: {sorted(layered - children)}"
