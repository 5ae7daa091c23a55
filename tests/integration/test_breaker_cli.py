"""`videodb-retry breaker` against the emulated stack: the operator's view and hand switch."""

from __future__ import annotations

import json

import pytest

from videodb_retry_cli.main import main


def breaker_cli(capsys, function_name: str, *argv: str) -> tuple[int, str, str]:
    code = main(["breaker", *argv, "--function-name", function_name])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def breaker_name(make_stack) -> str:
    stack = make_stack(RetryMaxConcurrency=5)  # above the ramp's first step (2), the default
    return stack.functions["BreakerFunction"].name


def test_status_open_and_close_by_hand(capsys, breaker_name):
    # Never stored: the mapping as the template deployed it (RetryMaxConcurrency 5).
    code, out, _ = breaker_cli(capsys, breaker_name)
    assert code == 0 and out.startswith("breaker closed (retries running, concurrency up to 5) never opened")
    code, out, _ = breaker_cli(capsys, breaker_name, "open", "--reason", "VideoDB incident 123")
    assert code == 0 and "open (retries paused, by hand: probes off)" in out
    assert "opened by hand: VideoDB incident 123" in out
    code, out, _ = breaker_cli(capsys, breaker_name, "status", "--json")
    report = json.loads(out)
    assert report["mode"] == "open" and report["manual"] is True and report["since"] > 0
    code, out, _ = breaker_cli(capsys, breaker_name, "close", "--reason", "incident over")
    assert code == 0 and out.startswith("breaker closed (retries running, concurrency up to 2) since 20")


@pytest.mark.parametrize("action", ["open", "close"])
def test_a_switch_by_hand_needs_a_reason(capsys, breaker_name, action):
    code, _, err = breaker_cli(capsys, breaker_name, action)
    assert code == 2 and "needs --reason" in err and len(err.strip().splitlines()) == 1


def test_an_unknown_function_is_one_line_and_exit_1(capsys, make_stack):
    make_stack()
    code, _, err = breaker_cli(capsys, "no-such-function")
    assert code == 1 and err.startswith("videodb-retry:") and len(err.strip().splitlines()) == 1
