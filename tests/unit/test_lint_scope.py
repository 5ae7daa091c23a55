"""`make lint` covers every Python file in the repository, with ruff and with mypy."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = (ROOT / "scripts" / "lint.sh").read_text(encoding="utf-8")


def _tracked_python_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    # Files not yet added are Python files too: list what is on disk outside ignored dirs.
    on_disk = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(set(listed + on_disk))


def _ruff_roots() -> list[str]:
    match = re.search(r'^CODE="([^"]+)"', LINT, re.MULTILINE)
    assert match, "scripts/lint.sh no longer names the paths ruff checks in CODE"
    return match.group(1).split()


def _mypy_roots() -> list[str]:
    roots: list[str] = []
    for line in LINT.splitlines():
        found = re.search(r'"\$VENV/bin/mypy" ([^|]+)', line)
        if found:
            roots += [r.strip('"') for r in found.group(1).split()]
    return ["functions/" if r == "$handler" else r for r in roots]


def _covered(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def test_ruff_covers_every_python_file() -> None:
    missed = [p for p in _tracked_python_files() if not _covered(p, _ruff_roots())]
    assert missed == [], f"ruff in make lint skips {missed}"


def test_mypy_covers_every_python_file() -> None:
    missed = [p for p in _tracked_python_files() if not _covered(p, _mypy_roots())]
    assert missed == [], f"mypy in make lint skips {missed}"


def test_every_function_handler_is_type_checked() -> None:
    assert 'for handler in functions/*/app.py; do "$VENV/bin/mypy" "$handler"' in LINT
    assert all(p.name == "app.py" for p in (ROOT / "functions").glob("*/*.py"))
