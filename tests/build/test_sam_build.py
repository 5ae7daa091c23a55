"""`sam build` of the whole app, offline, for the template's runtime: the artifacts hold the
shared package and its dependencies, and nothing from the test or dev toolchain."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.package_size import IMPORT_ENV
from tests.documentation import page
from videodb_retry_local.stack.template import PROJECT_ROOT, load_document

sys.path.insert(0, str(PROJECT_ROOT / "layers" / "shared"))
import layer_build  # the layer's own prune lists, next to its Makefile

SAM = PROJECT_ROOT / ".venv-sam" / "bin" / "sam"
RUNTIME = load_document()["Globals"]["Function"]["Runtime"]  # e.g. python3.13
# What the Lambda python3.13 runtime itself provides (boto3 and its dependencies): the layer
# does not carry these, the functions import them from the runtime.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}
LAYER_DISTRIBUTIONS = {
    "videodb_retry",
    "aws_lambda_powertools",
    "jmespath",
    "typing_extensions",
    "requests",
    "urllib3",
    "charset_normalizer",
    "idna",
    "certifi",
}
HANDLERS = {
    "RetryFunction": "retry",
    "PollFunction": "poll",
    "SweeperFunction": "sweeper",
    "BreakerFunction": "breaker",
}
DEV_PACKAGES = (
    "pytest",
    "_pytest",
    "moto",
    "hypothesis",
    "mypy",
    "ruff",
    "boto3_stubs",
    "openapi_core",
    "checkov",
    "cfnlint",
    "samcli",
    "pip",
    "setuptools",
    "videodb_retry_local",
    "videodb_retry_cli",
)


def _python_dir() -> str:
    found = shutil.which(RUNTIME)
    candidates = sorted(Path("/root/.pyenv/versions").glob(f"{RUNTIME.removeprefix('python')}.*/bin"))
    if found and "shims" not in found:
        return str(Path(found).parent)
    if candidates:
        return str(candidates[-1])
    pytest.fail(f"no {RUNTIME} interpreter for sam build", pytrace=False)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAM.exists():
        pytest.fail("the SAM CLI is missing: run `make .venv-sam/bin/sam` (make test does)", pytrace=False)
    out = tmp_path_factory.mktemp("sam-build")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{_python_dir()}:{os.environ['PATH']}"}
    done = subprocess.run(
        [
            str(SAM),
            "build",
            "--build-dir",
            str(out),
            "--cache-dir",
            str(out / ".cache"),
            "--template-file",
            str(PROJECT_ROOT / "template.yaml"),
            "--parameter-overrides",
            "SweeperEnabled=true",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def packages(root: Path) -> set[str]:
    return {p.name.split("-")[0].removesuffix(".py").lower() for p in root.iterdir()} - {"__pycache__"}


def test_layer_holds_the_shared_package_and_only_what_it_imports(build_dir):
    python = build_dir / "SharedLayer" / "python"
    assert packages(python) == LAYER_DISTRIBUTIONS
    assert (python / "videodb_retry" / "steps" / "retry_attempt.py").exists()
    # The whole package tree, every folder (rules, adapters, steps) and module, reaches the layer.
    source = PROJECT_ROOT / "layers" / "shared" / "videodb_retry"
    shipped = {p.relative_to(python / "videodb_retry") for p in (python / "videodb_retry").rglob("*.py")}
    assert {p.relative_to(source) for p in source.rglob("*.py")} <= shipped
    # No X-Ray SDK (end of support 2027-02-25) and no SDK of our own: the runtime's boto3 serves.
    assert not packages(python) & {"aws_xray_sdk", "wrapt", "boto3", "botocore", "s3transfer"}


def test_layer_keeps_only_the_powertools_parts_the_handlers_import(build_dir):
    powertools = build_dir / "SharedLayer" / "python" / "aws_lambda_powertools"
    assert packages(powertools) == {n.removesuffix(".py") for n in layer_build.POWERTOOLS_KEEP}
    assert packages(powertools / "utilities") == {n.removesuffix(".py") for n in layer_build.UTILITIES_KEEP}
    assert not (build_dir / "SharedLayer" / "python" / "bin").exists()


# Runs in a fresh interpreter without site-packages (-S), so the path is what Lambda gives a
# function: its code, the layer, the runtime's own packages. A module pruned by mistake, or a
# dependency missing from the layer, is an ImportError here.
_IMPORT_CHECK = """
import importlib, json, sys
import app
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}))
"""


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for /var/runtime: links to this venv's boto3 and the packages it brings."""
    import importlib.util

    root = tmp_path_factory.mktemp("var-runtime")
    for name in sorted(RUNTIME_PROVIDED):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"{name} missing from the dev venv"
        source = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        (root / source.name).symlink_to(source)
    return root


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_pruned_layer_imports_the_handler_and_every_lazy_module(build_dir, runtime_dir, function):
    layer = build_dir / "SharedLayer" / "python"
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join([str(build_dir / function), str(layer), str(runtime_dir)]),
        **IMPORT_ENV,
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", _IMPORT_CHECK, *layer_build.LAZY_MODULES],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    files = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("aws_lambda_powertools", "requests", "videodb_retry", *layer_build.LAZY_MODULES):
        assert files[name].startswith(str(layer)), (name, files[name])
    assert files["boto3"].startswith(str(runtime_dir))


def test_layer_bytecode_needs_no_source_check(build_dir):
    """/opt is read-only in Lambda: shipped .pyc must stay valid whatever the zip does to mtimes."""
    compiled = list((build_dir / "SharedLayer" / "python").rglob("*.pyc"))
    sources = list((build_dir / "SharedLayer" / "python").rglob("*.py"))
    assert len(compiled) >= len(sources) > 0
    flags = {int.from_bytes(p.read_bytes()[4:8], "little") for p in compiled}
    assert flags == {0b01}, "expected unchecked-hash .pyc files (PEP 552)"


def _sdk_pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(boto3|botocore)==([0-9.]+)\s*$", text, flags=re.MULTILINE))


def test_dev_venv_runs_the_runtime_sdk_pins():
    import boto3
    import botocore

    pins = _sdk_pins((PROJECT_ROOT / "requirements-dev.txt").read_text())
    assert set(pins) == {"boto3", "botocore"}
    assert {"boto3": boto3.__version__, "botocore": botocore.__version__} == pins
    assert not _sdk_pins((PROJECT_ROOT / "layers" / "shared" / "requirements.txt").read_text())


def test_container_image_installs_the_same_sdk_pins():
    script = PROJECT_ROOT / "scripts" / "container" / "lambda-image.sh"
    done = subprocess.run(
        ["bash", str(script)],
        env={**os.environ, "LAMBDA_IMAGE_PRINT_SDK": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pins = _sdk_pins((PROJECT_ROOT / "requirements-dev.txt").read_text())
    assert done.stdout.split() == [f"boto3=={pins['boto3']}", f"botocore=={pins['botocore']}"]


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_functions_hold_only_their_handler(build_dir, function):
    files = {p.name for p in (build_dir / function).iterdir()}
    assert "app.py" in files
    assert not files & {"videodb_retry", "aws_lambda_powertools", "requests"}, (
        "shared code belongs in the layer"
    )


def test_no_test_or_dev_package_is_shipped(build_dir):
    shipped = set()
    for artifact in build_dir.iterdir():
        if artifact.is_dir() and not artifact.name.startswith("."):
            for path in artifact.rglob("*"):
                shipped.add(path.name.split("-")[0].lower())
    leaked = shipped & set(DEV_PACKAGES)
    assert not leaked, f"dev packages in the build: {sorted(leaked)}"
    ours = [
        build_dir / "SharedLayer" / "python" / "videodb_retry",
        *(build_dir / f for f in ("RetryFunction", "PollFunction")),
    ]
    assert not [p for root in ours for p in root.rglob("test_*.py")], "project tests shipped"


def test_built_template_targets_the_runtime(build_dir):
    text = (build_dir / "template.yaml").read_text()
    assert f"Runtime: {RUNTIME}" in text


def test_readme_dependency_table_names_every_pin():
    """docs/developing.md's "Dependencies" table shows the versions the layer and the tests install."""
    section = page("developing").split("## Dependencies", 1)[1].split("\n## ", 1)[0]
    pins = re.findall(
        r"^([A-Za-z0-9_.-]+)==([0-9.]+)",
        (PROJECT_ROOT / "layers" / "shared" / "requirements.txt").read_text(),
        flags=re.MULTILINE,
    )
    pins += sorted(_sdk_pins((PROJECT_ROOT / "requirements-dev.txt").read_text()).items())
    assert len(pins) >= 4
    for name, version in pins:
        assert f"`{name}` `{version}`" in section, f"developing.md Dependencies lacks `{name}` `{version}`"
