"""`sam build` of the whole app, offline, for the template's runtime: the artifacts hold the
shared package and its dependencies, and nothing from the test or dev toolchain."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from videodb_retry_local.template import PROJECT_ROOT, load_document

SAM = PROJECT_ROOT / ".venv-sam" / "bin" / "sam"
RUNTIME = load_document()["Globals"]["Function"]["Runtime"]  # e.g. python3.13
DEV_PACKAGES = ("pytest", "_pytest", "moto", "hypothesis", "mypy", "ruff", "boto3_stubs", "openapi_core",
                "checkov", "cfnlint", "samcli", "pip", "setuptools", "videodb_retry_local", "videodb_retry_cli")


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
        [str(SAM), "build", "--build-dir", str(out), "--cache-dir", str(out / ".cache"),
         "--template-file", str(PROJECT_ROOT / "template.yaml"), "--parameter-overrides", "SweeperEnabled=true"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def packages(root: Path) -> set[str]:
    return {p.name.split("-")[0].lower() for p in root.iterdir()}


def test_layer_holds_the_shared_package_and_its_runtime_dependencies(build_dir):
    python = build_dir / "SharedLayer" / "python"
    names = packages(python)
    assert {"videodb_retry", "aws_lambda_powertools", "requests", "aws_xray_sdk", "boto3", "botocore"} <= names
    assert (python / "videodb_retry" / "retry.py").exists()


@pytest.mark.parametrize("function", ["RetryFunction", "PollFunction", "SweeperFunction"])
def test_functions_hold_only_their_handler(build_dir, function):
    files = {p.name for p in (build_dir / function).iterdir()}
    assert "app.py" in files
    assert not files & {"videodb_retry", "aws_lambda_powertools", "requests"}, "shared code belongs in the layer"


def test_no_test_or_dev_package_is_shipped(build_dir):
    shipped = set()
    for artifact in build_dir.iterdir():
        if artifact.is_dir() and not artifact.name.startswith("."):
            for path in artifact.rglob("*"):
                shipped.add(path.name.split("-")[0].lower())
    leaked = shipped & set(DEV_PACKAGES)
    assert not leaked, f"dev packages in the build: {sorted(leaked)}"
    ours = [build_dir / "SharedLayer" / "python" / "videodb_retry", *(build_dir / f for f in ("RetryFunction", "PollFunction"))]
    assert not [p for root in ours for p in root.rglob("test_*.py")], "project tests shipped"


def test_built_template_targets_the_runtime(build_dir):
    text = (build_dir / "template.yaml").read_text()
    assert f"Runtime: {RUNTIME}" in text
