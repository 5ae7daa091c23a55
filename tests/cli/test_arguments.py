"""The command line itself: usage errors are one line and exit 2, --help works everywhere,
and `local` hands its arguments to the demo untouched."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from videodb_retry_cli.main import split_local


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["enqueue"],
        ["status", "--limit", "0"],
        ["status", "--limit", "many"],
        ["redrive", "--max-per-second", "0"],
        ["redrive", "--max-per-second", "501"],
        ["enqueue", "--no-such-option", "a"],
        ["--reg", "us-east-1", "status"],  # no abbreviations: they would make `local` ambiguous
        ["status", "bad/id"],
        ["enqueue", "-", "--file", "-"],
        ["enqueue", "--reason", "", "a"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(cli: Any, argv: list[str]) -> None:
    result = cli(*argv)
    assert result.code == 2
    assert len(result.err_lines) == 1, result.err
    assert result.err.startswith("videodb-retry: ")
    assert "Traceback" not in result.err
    assert result.out == ""


@pytest.mark.parametrize("command", [[], ["enqueue"], ["redrive"], ["status"]])
def test_help_on_every_command(cli: Any, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.code == 0
    assert result.out.startswith("usage: videodb-retry")
    assert "--endpoint-url" in result.out


def test_version(cli: Any) -> None:
    result = cli("--version")
    assert result.code == 0
    assert result.out.startswith("videodb-retry ")


def test_unreadable_file_is_a_usage_error(cli: Any, tmp_path: Any) -> None:
    result = cli("enqueue", "--file", str(tmp_path / "missing.txt"))
    assert result.code == 2
    assert result.err_lines == [
        f"videodb-retry: cannot read {tmp_path / 'missing.txt'}: No such file or directory"
    ]


def test_undecodable_file_is_a_usage_error(cli: Any, tmp_path: Any) -> None:
    path = tmp_path / "ids.bin"
    path.write_bytes(b"\xff\xfe\x00bad")
    result = cli("enqueue", "--file", str(path))
    assert result.code == 2
    assert len(result.err_lines) == 1 and "cannot read" in result.err


def test_named_config_file_must_exist(cli: Any) -> None:
    result = cli("--config-file", "nope.toml", "enqueue", "a")
    assert result.code == 2
    assert result.err_lines == ["videodb-retry: config file not found: nope.toml"]


@pytest.fixture
def fake_demo(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Stands in for videodb_retry_local.commands.demo; records what main() is given."""
    seen: list[list[str]] = []
    module = types.ModuleType("videodb_retry_local.commands.demo")

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 3

    module.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "videodb_retry_local.commands.demo", module)
    return seen


def test_local_passes_every_argument_through(cli: Any, fake_demo: list[list[str]]) -> None:
    result = cli("--region", "eu-west-1", "local", "--serve", "--port", "8765", "extra", "--help")
    assert fake_demo == [["--serve", "--port", "8765", "extra", "--help"]]
    assert result.code == 3  # the demo's exit status is the command's


def test_local_without_arguments(cli: Any, fake_demo: list[list[str]]) -> None:
    cli("local")
    assert fake_demo == [[]]


def test_local_reports_a_missing_demo_in_one_line(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules, "videodb_retry_local.commands.demo", None
    )  # import raises ModuleNotFoundError
    result = cli("local", "--serve")
    assert result.code == 1
    assert len(result.err_lines) == 1 and "local demo" in result.err


def test_split_local_only_cuts_at_the_command() -> None:
    assert split_local(["--stack-name", "local", "status"]) is None  # "local" is a stack name here
    assert split_local(["--endpoint-url", "http://x", "local", "-v"]) == (
        ["--endpoint-url", "http://x", "local"],
        ["-v"],
    )
    assert split_local(["status", "local"]) is None
