"""Integration fixtures: the sandbox VideoDB API and the SAM stack emulated in moto.

Every AWS call goes to moto in this process and every HTTP call to the sandbox on
127.0.0.1. Short waits come from template parameter overrides, never from edits to the
workflow definition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.moto_env import FAKE_CREDENTIALS, local_aws
from videodb_retry_local.stack.presets import BUDGETS_NEVER_BINDING
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

API_KEY = "sk-integration-key"
# Waits of one or two seconds and a short deadline keep each scenario to a few seconds.
FAST = {
    **BUDGETS_NEVER_BINDING,
    "PollFirstWaitSeconds": 1,
    "PollDeadlineSeconds": 3,
    "RequeueDelaySeconds": 1,
    "MaxRetryAttempts": 3,
    "LogLevel": "ERROR",
}


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never reach AWS: fake credentials and a fixed region for every test."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """The local VideoDB-compatible API on loopback."""
    with SandboxServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def make_stack(sandbox: SandboxServer) -> Iterator[Callable[..., EmulatedStack]]:
    """Create the emulated stack (once per test) with FAST waits plus ``overrides``."""
    created: list[EmulatedStack] = []
    with local_aws():

        def make(api_key_format: str = "json", **overrides: Any) -> EmulatedStack:
            parameters = {**FAST, "VideoDBApiBaseUrl": sandbox.base_url, **overrides}
            stack = EmulatedStack(API_KEY, parameters, api_key_format=api_key_format).create()
            created.append(stack)
            return stack

        yield make
        for stack in created:
            stack.close()


@pytest.fixture
def stack(make_stack: Callable[..., EmulatedStack]) -> EmulatedStack:
    """The emulated stack with the FAST overrides."""
    return make_stack()


@pytest.fixture
def consumer(stack: EmulatedStack) -> QueueConsumer:
    """The retry queue's event source mapping, emulated."""
    return QueueConsumer(stack, redelivery_seconds=1)


def outcomes_of(stack: EmulatedStack, download_id: str) -> list[dict[str, Any]]:
    """The outcome events of one download, oldest attempt first."""
    events = [e for e in stack.outcome_events() if e["detail"].get("download_id") == download_id]
    return sorted(events, key=lambda e: e["detail"]["attempt"])


def final_outcome(stack: EmulatedStack, download_id: str) -> Callable[[], bool]:
    """A condition: the download has an outcome event that says no retry follows."""
    return lambda: any(e["detail"]["will_retry"] is False for e in outcomes_of(stack, download_id))


def dead_letters_of(stack: EmulatedStack, **attributes: str) -> list[dict[str, Any]]:
    """Dead-letter messages whose attributes include ``attributes``."""
    return [
        m for m in stack.dead_letters() if all(m["attributes"].get(k) == v for k, v in attributes.items())
    ]


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()
