"""Figure 6: what deploys — ``sam build`` of template.yaml into a temporary directory, the
unzipped size of each function artifact and of the shared layer, and a check that no test or
development package (pytest, moto, hypothesis, boto3-stubs, mypy, ruff, setuptools, pip, wheel
caches, or anything else only requirements-dev.txt asks for) is in them.

The layer's goals (issue 12): at most 8 MB unzipped; no copy of what the Lambda runtime
provides (boto3, botocore, s3transfer); nothing that no handler imports. The last is measured:
each handler is imported in a fresh interpreter without site-packages (``-S``), its path what
Lambda gives it (the function's code, the layer, the runtime's boto3), and every package of the
layer and every Powertools subpackage that none of them loaded is listed as unused.

Baseline: the project's development virtual environment (its site-packages), measured now —
what shipping "the environment the code runs in here" would weigh. Lambda's limit for a
function with its layers is 250 MB unzipped.

``sam build`` installs the layer's requirements from the package registry (pip), as it always
does; it runs with a temporary working and cache directory, so nothing is left in the repository.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, Row, command, ratio, run_process

KEY = "package"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# Never in a deployment package: test, type-checking, lint and packaging tools.
ALWAYS_FORBIDDEN = {
    "pytest",
    "_pytest",
    "pluggy",
    "moto",
    "hypothesis",
    "boto3_stubs",
    "mypy",
    "mypy_extensions",
    "ruff",
    "setuptools",
    "pkg_resources",
    "_distutils_hack",
    "pip",
    "wheel",
    "responses",
    "openapi_core",
    "yaml",
    "pyyaml",
    "cfn_lint",
}
# Shipped by the Lambda Python runtime already: the layer must not carry a copy (issue 12).
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}
# ...and what they bring, which the import check links in as the runtime's /var/runtime.
RUNTIME_IMPORTS = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
LAYER_LIMIT = 8 * 1024 * 1024
# The environment a handler needs to import (settings are read at module load).
# What every handler reads from its environment at import (placeholders: nothing is called).
IMPORT_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing", "API_KEY_SECRET_ID": "videodb-api-key",
    "VIDEODB_API_BASE_URL": "http://127.0.0.1:9", "FAILURE_EVENT_SOURCE": "videodb",
    "FAILURE_EVENT_DETAIL_TYPE": "Download Failed", "STATE_TABLE_NAME": "state",
    "IDEMPOTENCY_TABLE_NAME": "ledger", "EVENT_BUS_NAME": "default",
    "RETRY_QUEUE_MAPPING_ID": "14e0db71-5d35-4eb5-b481-8945cf9d10c2",
}  # fmt: skip
# Imports the handler and the modules it loads on first use (layers/shared/layer_build.py).
_LOADED = (
    "import app, importlib, json, sys\n"
    "for name in sys.argv[1:]: importlib.import_module(name)\n"
    "print(json.dumps(sorted(sys.modules)))"
)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def dev_only_requirements() -> set[str]:
    """Names requirements-dev.txt asks for that the layer's requirements do not."""

    def names(path: Path) -> set[str]:
        found = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                found.add(_norm(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]))
        return found

    runtime = names(ROOT / "layers" / "shared" / "requirements.txt")
    return names(ROOT / "requirements-dev.txt") - runtime - RUNTIME_PROVIDED


def _size(path: Path) -> tuple[int, int]:
    total = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            full = Path(root) / name
            if not full.is_symlink():
                total += full.stat().st_size
                files += 1
    return total, files


def _top_level(artifact: Path) -> list[Path]:
    # A layer's Python packages sit under python/; a function's code at its root.
    base = artifact / "python" if (artifact / "python").is_dir() else artifact
    return sorted(base.iterdir())


def _distribution_name(entry: Path) -> str:
    name = entry.name
    for suffix in (".dist-info", ".egg-info", ".data"):
        if name.endswith(suffix):
            return _norm(name[: -len(suffix)].rsplit("-", 1)[0])
    return _norm(name.removesuffix(".py"))


def analyze(build_dir: Path) -> dict[str, Any]:
    """Sizes of every artifact in a ``sam build`` output and the packages that must not be there."""
    forbidden_names = {_norm(n) for n in ALWAYS_FORBIDDEN} | dev_only_requirements()
    artifacts: dict[str, Any] = {}
    for artifact in sorted(p for p in build_dir.iterdir() if p.is_dir()):
        size, files = _size(artifact)
        packages: dict[str, int] = defaultdict(int)
        forbidden, duplicates = set(), set()
        for entry in _top_level(artifact):
            dist = _distribution_name(entry)
            packages[dist] += _size(entry)[0] if entry.is_dir() else entry.stat().st_size
            if dist in forbidden_names or dist.startswith("mypy_boto3"):
                forbidden.add(dist)
            if dist in RUNTIME_PROVIDED:
                duplicates.add(dist)
        wheels = [str(p.relative_to(artifact)) for p in artifact.rglob("*.whl")]
        artifacts[artifact.name] = {
            "kind": "layer" if (artifact / "python").is_dir() else "function",
            "bytes": size,
            "files": files,
            "largest": sorted(packages.items(), key=lambda item: -item[1])[:5],
            "forbidden": sorted(forbidden),
            "wheel_files": wheels,
            "runtime_provided": sorted(duplicates),
            "runtime_provided_bytes": sum(packages[d] for d in duplicates),
        }
    return artifacts


def _runtime_dir(into: Path) -> Path:
    """A stand-in for Lambda's /var/runtime: links to this interpreter's boto3 and its kin."""
    import importlib.util

    into.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_IMPORTS:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise RuntimeError(f"{name} is not installed here (requirements-dev.txt pins the runtime's SDK)")
        source = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        link = into / source.name
        if not link.exists():
            link.symlink_to(source)
    return into


def _lazy_modules() -> tuple[str, ...]:
    sys.path.insert(0, str(ROOT / "layers" / "shared"))
    try:
        import layer_build
    finally:
        sys.path.pop(0)
    return tuple(layer_build.LAZY_MODULES)


def layer_entries(site: Path) -> list[str]:
    """Importable names in a layer's python/: its top-level packages and modules, and
    Powertools' subpackages one and two levels down (where most of its weight is)."""

    def names(base: Path, prefix: str) -> list[str]:
        found = []
        for entry in sorted(base.iterdir()):
            if entry.name == "__pycache__" or entry.name.endswith((".dist-info", ".data")):
                continue
            if (entry.is_dir() and (entry / "__init__.py").exists()) or entry.suffix == ".py":
                found.append(prefix + entry.name.removesuffix(".py"))
        return found

    entries = names(site, "")
    powertools = site / "aws_lambda_powertools"
    if powertools.is_dir():
        entries += names(powertools, "aws_lambda_powertools.")
        entries += names(powertools / "utilities", "aws_lambda_powertools.utilities.")
    inits = ("aws_lambda_powertools.__init__", "aws_lambda_powertools.utilities.__init__")
    return [e for e in entries if e not in inits]


def unused_in_layer(build_dir: Path, scratch: Path) -> list[str]:
    """Entries of the layer (see :func:`layer_entries`) that no handler loads on import."""
    site = build_dir / "SharedLayer" / "python"
    runtime = _runtime_dir(scratch / "var-runtime")
    loaded: set[str] = set()
    for function in sorted(p for p in build_dir.iterdir() if (p / "app.py").exists()):
        env = {"PATH": os.environ.get("PATH", ""), **IMPORT_ENV,
               "PYTHONPATH": os.pathsep.join([str(function), str(site), str(runtime)])}  # fmt: skip
        done = run_process(
            [sys.executable, "-S", "-c", _LOADED, *_lazy_modules()],
            env,
            failure=f"{function.name} fails to import from the layer",
        )
        loaded |= set(json.loads(done.stdout.strip().splitlines()[-1]))
    return [e for e in layer_entries(site) if not any(m == e or m.startswith(e + ".") for m in loaded)]


def sam_build(into: Path) -> Path:
    """``sam build`` template.yaml into ``into/build`` (working and cache dirs in ``into``)."""
    sam = ROOT / ".venv-sam" / "bin" / "sam"
    if not sam.exists():
        found = shutil.which("sam")
        if not found:
            raise FileNotFoundError("no SAM CLI: `make bench` installs it in .venv-sam")
        sam = Path(found)
    python_dirs = [
        str(Path(p).parent) for p in sorted(glob.glob("/root/.pyenv/versions/3.13.*/bin/python3.13"))
    ]
    env = {
        **os.environ,
        "PATH": os.pathsep.join([*python_dirs[-1:], os.environ.get("PATH", "")]),
        "SAM_CLI_TELEMETRY": "0",
    }
    run_process(
        [
            str(sam),
            "build",
            "--template-file",
            str(ROOT / "template.yaml"),
            "--build-dir",
            str(into / "build"),
            "--cache-dir",
            str(into / "cache"),
        ],
        env,
        failure="sam build failed",
        timeout=900,
        cwd=into,  # sam keeps .aws-sam/deps under the working directory
        tail=3000,
    )
    return into / "build"


def dev_environment_bytes() -> int:
    """Size of this interpreter's site-packages (the development venv)."""
    return _size(Path(sysconfig.get_paths()["purelib"]))[0]


def mb(size: float) -> str:
    """Bytes as MB (or KB when small) for the table."""
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def measure(build_dir: Path | None = None) -> Figure:
    """Build (unless ``build_dir`` is given), then sizes and forbidden packages."""
    figure = Figure(KEY, "Package size")
    with tempfile.TemporaryDirectory(prefix="videodb-retry-bench-") as scratch:
        built = build_dir or sam_build(Path(scratch))
        artifacts = analyze(built)
        has_layer = (built / "SharedLayer" / "python").is_dir()
        unused = unused_in_layer(built, Path(scratch)) if has_layer else []
        checked = len(layer_entries(built / "SharedLayer" / "python")) if has_layer else 0
    baseline = dev_environment_bytes()
    layers = {name: a for name, a in artifacts.items() if a["kind"] == "layer"}
    layer_bytes = sum(a["bytes"] for a in layers.values())
    forbidden = {
        name: a["forbidden"] + a["wheel_files"]
        for name, a in artifacts.items()
        if a["forbidden"] or a["wheel_files"]
    }
    figure.data = {
        "artifacts": artifacts,
        "dev_environment_bytes": baseline,
        "forbidden": forbidden,
        "unused_in_layer": unused,
    }
    for name, artifact in artifacts.items():
        deployed = artifact["bytes"] + (0 if name in layers else layer_bytes)
        found = artifact["forbidden"] + artifact["wheel_files"]
        if name in layers:
            found += artifact["runtime_provided"] + unused
        if name not in layers:  # a function deploys with the layers
            found += [item for layer in layers.values() for item in layer["forbidden"] + layer["wheel_files"]]
        figure.rows.append(
            Row(
                figure=f"6. Package: {name} ({artifact['kind']}), unzipped",
                measured=f"{mb(artifact['bytes'])} ({artifact['files']} files)"
                + ("" if name in layers else f"; {mb(deployed)} with the layer"),
                baseline=f"{mb(baseline)} (dev venv site-packages)",
                ratio=ratio(deployed / baseline),
                target=(
                    "≤ 8 MB; no boto3/botocore; nothing no handler imports"
                    if name in layers
                    else "no test/dev packages; ≤ 250 MB with layers"
                ),
                met=not found
                and deployed <= LAMBDA_UNZIPPED_LIMIT
                and (name not in layers or artifact["bytes"] <= LAYER_LIMIT),
                command=command(KEY),
            )
        )
    figure.notes.append(
        "Checked for: "
        + ", ".join(sorted({_norm(n) for n in ALWAYS_FORBIDDEN} | dev_only_requirements()))
        + ", mypy_boto3_*, *.whl. "
        + (
            "Found: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in forbidden.items())
            if forbidden
            else "None found."
        )
    )
    for name, layer in layers.items():
        largest = ", ".join(f"{dist} {mb(size)}" for dist, size in layer["largest"])
        note = f"{name}: largest entries {largest}."
        if layer["runtime_provided"]:
            note += (
                f" Of it, {', '.join(layer['runtime_provided'])} take "
                f"{mb(layer['runtime_provided_bytes'])}, a copy of what the Lambda Python runtime provides."
            )
        note += (
            f" Loaded by no handler: {', '.join(unused) if unused else 'nothing'} (of {checked} "
            "top-level packages and Powertools subpackages, each handler imported with `python -S` "
            "from the function, the layer and the runtime's boto3 only)."
        )
        figure.notes.append(note)
    return figure
