"""The CLI installs from a built wheel: build it offline (no build isolation, setuptools from
the test environment), install it into a fresh virtual environment, and run `videodb-retry`
from there. The wheel holds the runtime package, the CLI and the local wing (whose extra,
``local``, names moto and PyYAML), the licence, and nothing from tests or the Lambda folders.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from videodb_retry import __version__

from videodb_retry_local.stack.template import PROJECT_ROOT

# What the build reads; copied so the build leaves nothing (build/, *.egg-info) in the checkout.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "layers/shared/videodb_retry", "src")


def _run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=300, check=False, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = PROJECT_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("dist")
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--wheel-dir",
        out,
        source,
    )
    (built,) = out.glob("videodb_retry-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with only the wheel installed; the dependencies are the test environment's,
    seen through a .pth file (offline: no index), after the venv's own site-packages."""
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    _run(python, "-m", "pip", "install", "--no-index", "--no-deps", wheel)
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    )
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return root


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_is_named_for_the_version(wheel):
    assert wheel.name == f"videodb_retry-{__version__}-py3-none-any.whl"


def test_the_wheel_holds_the_runtime_package_the_cli_and_the_local_wing(wheel):
    packages = {name.split("/")[0] for name in wheel_names(wheel) if not name.startswith("videodb_retry-")}
    assert packages == {"videodb_retry", "videodb_retry_cli", "videodb_retry_local"}
    names = set(wheel_names(wheel))
    for module in (
        "videodb_retry/__init__.py",
        "videodb_retry/adapters/videodb_client.py",
        "videodb_retry_cli/main.py",
        "videodb_retry_local/commands/demo.py",
        "videodb_retry_local/videodb_sandbox/sandbox.py",
    ):
        assert module in names, module
    assert not [n for n in names if n.startswith(("tests/", "functions/", "bench/")) or "__pycache__" in n]


def test_the_wheel_metadata_declares_the_dependencies_extra_licence_and_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        dist = f"videodb_retry-{__version__}.dist-info"
        metadata = email.message_from_string(archive.read(f"{dist}/METADATA").decode())
        entry_points = archive.read(f"{dist}/entry_points.txt").decode()
        names = archive.namelist()
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "MIT"
    assert f"{dist}/licenses/LICENSE" in names
    requires = metadata.get_all("Requires-Dist")
    for runtime in ("aws-lambda-powertools", "boto3", "requests"):
        assert any(r.startswith(runtime) and "extra" not in r for r in requires), runtime
    assert metadata.get_all("Provides-Extra") == ["local"]
    assert {r.split(">")[0].split("[")[0] for r in requires if 'extra == "local"' in r} == {"moto", "PyYAML"}
    assert "videodb-retry = videodb_retry_cli.main:main" in entry_points


def test_the_installed_command_runs_from_the_wheel(fresh_venv):
    command = fresh_venv / "bin" / "videodb-retry"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    version = _run(command, "--version", env=env)
    assert version.stdout.strip() == f"videodb-retry {__version__}"
    helped = _run(command, "--help", env=env)
    for subcommand in ("enqueue", "redrive", "status", "local"):
        assert subcommand in helped.stdout
    where = _run(
        fresh_venv / "bin" / "python",
        "-c",
        "import videodb_retry, videodb_retry_cli; print(videodb_retry.__file__, videodb_retry_cli.__file__)",
        env=env,
    ).stdout
    assert str(PROJECT_ROOT) not in where and str(fresh_venv) in where, (
        "imported from the checkout, not the wheel"
    )
