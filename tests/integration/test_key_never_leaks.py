"""The API key never leaves the x-access-token header of requests to the configured origin.

A whole local pipeline runs a mix of downloads — success, 5xx, 404, poison, an output_url on
another host, a read timeout, a job past its deadline, a poll that fails, a record that never
succeeds, and a key rotated in the middle (401, re-read) — while everything it produces is
captured: every log line (the functions' logger at DEBUG and every other logger through the
logging module, plus stdout/stderr), every outcome event, every dead letter with its
attributes, every message the retry function was handed, every execution's input, output
and history, the idempotency records, every exception raised, every HTTP request the
functions made and every request any server received. Neither the old key nor the new one
may appear in any of it, except in the x-access-token header of requests to the API origin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import botocore.client
import pytest

from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.lambda_runtime import FunctionError
from videodb_retry_local.stack.moto_env import local_aws
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

from .conftest import FAST, final_outcome, wait_until
from .faults_helpers import app_log, http_spy, other_host_sandbox, record_spy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

OLD_KEY = "sk-old-LEAKCHECK-4f1d9a7c2e"
NEW_KEY = "sk-new-LEAKCHECK-b83e05d6aa"
KEYS = (OLD_KEY, NEW_KEY)
# Calls whose payload *is* the secret: the SDK's own wire log of them (botocore at DEBUG,
# which the functions never turn on) shows it. Nothing else may.
SECRET_OPERATIONS = frozenset({"GetSecretValue", "PutSecretValue", "CreateSecret"})


@dataclass
class Capture:
    """Everything seen, by channel, as text."""

    channels: dict[str, list[str]] = field(default_factory=dict)
    secret_wire_log_lines: int = 0
    # Kept whole for the checks that allow the key in one place.
    http: Any = None
    api_requests: list[Any] = field(default_factory=list)
    foreign_requests: list[Any] = field(default_factory=list)
    api_origin: str = ""
    letters: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, channel: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        self.channels.setdefault(channel, []).append(text)

    def leaks(self) -> list[str]:
        found = []
        for channel, texts in self.channels.items():
            for text in texts:
                for name, key in (("old key", OLD_KEY), ("new key", NEW_KEY)):
                    if key in text:
                        at = text.index(key)
                        context = text[max(0, at - 150) : at + len(key) + 60].replace(key, f"<{name}>")
                        found.append(f"{channel}: ...{context}...")
        return found


class _Operations(threading.local):
    def __init__(self) -> None:
        self.stack: list[str] = []


_OPERATIONS = _Operations()


@contextlib.contextmanager
def aws_operation_tracking() -> Iterator[None]:
    """Know, on each thread, which AWS API call is in progress (for attributing SDK logs)."""
    original = botocore.client.BaseClient._make_api_call

    def make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        _OPERATIONS.stack.append(operation_name)
        try:
            return original(client, operation_name, api_params)
        finally:
            _OPERATIONS.stack.pop()

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", make_api_call):
        yield


class _EverythingHandler(logging.Handler):
    """Every record of every stdlib logger: message, arguments, extras, exception."""

    def __init__(self, capture: Capture) -> None:
        super().__init__(level=logging.DEBUG)
        self.capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name} {record.levelname} {record.getMessage()} {record.__dict__!r}"
        except Exception:  # a record that cannot format still has its raw parts
            text = f"{record.name} {record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(record.exc_info[1]))
        in_secret_call = bool(set(_OPERATIONS.stack) & SECRET_OPERATIONS)
        if in_secret_call and record.name.startswith(("botocore.", "urllib3.")):
            if any(key in text for key in KEYS):
                self.capture.secret_wire_log_lines += 1
            return
        self.capture.add(f"log record ({record.name})", text)


@contextlib.contextmanager
def every_log_record(capture: Capture) -> Iterator[None]:
    root = logging.getLogger()
    handler = _EverythingHandler(capture)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@contextlib.contextmanager
def thread_exceptions(capture: Capture) -> Iterator[None]:
    original = threading.excepthook

    def hook(args: Any) -> None:
        capture.add("thread exception", "".join(traceback.format_exception(args.exc_value)))
        original(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = original


@contextlib.contextmanager
def function_errors(stack: EmulatedStack, capture: Capture) -> Iterator[None]:
    """Every error a handler raised, as Lambda would report it (message and stack trace)."""
    original = stack.invoke

    def invoke(logical_id: str, event: Any) -> Any:
        try:
            return original(logical_id, event)
        except FunctionError as exc:
            capture.add("function error", exc.payload)
            capture.add("function error traceback", "".join(traceback.format_exception(exc)))
            raise

    with mock.patch.object(stack, "invoke", invoke):
        yield


def collect_stack(stack: EmulatedStack, consumer: QueueConsumer, capture: Capture) -> None:
    for event in stack.outcome_events():
        capture.add("outcome event", event)
    for letter in stack.dead_letters():
        capture.add("dead letter", letter)
    for delivery in consumer.deliveries:
        capture.add("retry queue message", delivery.body)
    sfn = stack.client("stepfunctions")
    for execution in stack.executions():
        capture.add("execution", execution)
        token = None
        while True:
            page = sfn.get_execution_history(
                executionArn=execution["executionArn"],
                maxResults=1000,
                **({"nextToken": token} if token else {}),
            )
            for event in page["events"]:
                capture.add("execution history", event)
            token = page.get("nextToken")
            if not token:
                break
    table = stack.ref("IdempotencyTable")
    for item in stack.client("dynamodb").scan(TableName=table)["Items"]:
        capture.add("idempotency record", item)
    for invocation in stack.invocations:
        capture.add("invocation", vars(invocation))


@pytest.fixture
def pipeline_capture(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Iterator[Capture]:
    """Run the mixed pipeline with the key rotated half way; yield what was captured."""
    monkeypatch.setenv("HTTP_READ_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # metrics are printed too
    capture = Capture()
    with contextlib.ExitStack() as on_exit:
        on_exit.enter_context(thread_exceptions(capture))
        on_exit.enter_context(aws_operation_tracking())
        on_exit.enter_context(every_log_record(capture))
        on_exit.enter_context(local_aws())
        api = on_exit.enter_context(SandboxServer(api_key=OLD_KEY))
        foreign, foreign_url = on_exit.enter_context(other_host_sandbox(OLD_KEY))
        overrides = {
            **FAST,
            "VideoDBApiBaseUrl": api.base_url,
            "LogLevel": "DEBUG",
            "MaxRetryAttempts": 2,
            "PollDeadlineSeconds": 2,
            "MaxReceiveCount": 5,
            "RedeliveryFirstDelaySeconds": 0,
        }
        stack = on_exit.enter_context(EmulatedStack(OLD_KEY, overrides))
        consumer = QueueConsumer(stack, redelivery_seconds=1)
        log = on_exit.enter_context(app_log())
        on_exit.enter_context(function_errors(stack, capture))
        records = on_exit.enter_context(record_spy(stack))
        http = on_exit.enter_context(http_spy())

        api.script("dl-ok", processing_seconds=1)
        api.script("dl-5xx", retry_status=503, retry_status_times=1)
        api.script("dl-foreign", output_origin=foreign_url)
        api.script("dl-read-timeout", delay_seconds=2)
        api.script("dl-deadline", never_finishes=True, not_failed_retry_status=None)
        api.script("dl-poll-error", poll_status=500, poll_status_times=1)
        api.script("dl-always-503", retry_status=503)
        api.script("dl-failed-job", fail_times=1)
        api.script("dl-rotated")  # sent after the rotation
        stack.send_failure_event("dl-ok", error="stream timed out")
        for body in (
            "dl-5xx",
            "dl-404",
            "dl-foreign",
            "dl-read-timeout",
            "dl-deadline",
            "dl-poll-error",
            "dl-always-503",
            "dl-failed-job",
        ):
            stack.send_to_queue(body)
        stack.send_to_queue("not an id at all")  # poison

        assert consumer.poll_once() == 10  # the first batch, with the old key
        api.script("dl-read-timeout")  # answers in time from now on
        assert wait_until(lambda: stack.running_executions() >= 3, timeout=10)

        # The key is rotated while workflows are polling and records wait for redelivery.
        api.rotate_key(NEW_KEY)
        foreign.rotate_key(NEW_KEY)
        stack.put_api_key(NEW_KEY)
        stack.send_to_queue("dl-rotated")

        finished = (
            "dl-ok",
            "dl-5xx",
            "dl-read-timeout",
            "dl-deadline",
            "dl-poll-error",
            "dl-failed-job",
            "dl-rotated",
        )

        def letters() -> set[str | None]:
            return {letter["attributes"].get("error_code") for letter in stack.dead_letters()}

        assert consumer.run(
            until=lambda: (
                all(final_outcome(stack, i)() for i in finished)
                and {"poison", "http_404", "foreign_origin", "transient_exhausted"} <= letters()
                and stack.running_executions() == 0
            ),
            timeout=90,
        )
        collect_stack(stack, consumer, capture)
        capture.add("functions' log", log.getvalue())
        for handled in records.handled:
            if handled.error is not None:
                capture.add("record exception", repr(handled.error))
                capture.add("record exception traceback", handled.traceback)
            capture.add("record result", str(handled.result))
        capture.http = http
        capture.api_requests = api.requests
        capture.foreign_requests = foreign.requests
        capture.api_origin = api.base_url
        capture.letters = stack.dead_letters()
        capture.outcomes = stack.outcome_events()
    out, err = capfd.readouterr()
    capture.add("stdout", out)
    capture.add("stderr", err)
    yield capture


def test_the_key_appears_nowhere_but_the_header_to_the_api_origin(pipeline_capture):
    capture = pipeline_capture
    http = capture.http
    origin = capture.api_origin

    # The run did what it should, so the captures are not empty by accident.
    details = {(e["detail"]["download_id"], e["detail-type"]) for e in capture.outcomes}
    assert ("dl-rotated", "Download Retry Succeeded") in details
    assert ("dl-deadline", "Download Retry Timed Out") in details
    assert {letter["attributes"]["error_code"] for letter in capture.letters} == {
        "poison",
        "http_404",
        "foreign_origin",
        "transient_exhausted",
    }
    assert {r.headers.get("x-access-token") for r in capture.api_requests} == {OLD_KEY, NEW_KEY}
    assert 401 in [c.status for c in http.calls], "the rotation was never noticed"
    app_lines = capture.channels["functions' log"][0]
    for message in (
        "record failed; it will be delivered again",
        "message sent to the dead-letter queue",
        "giving up on the record",
        "polled",
    ):
        assert f'"message":"{message}"' in app_lines, message
    assert len(capture.channels["execution history"]) > 50

    # Requests the servers received: the key only in x-access-token, only on the API origin.
    for request in capture.api_requests:
        rest = {k: v for k, v in request.headers.items() if k != "x-access-token"}
        text = json.dumps([request.method, request.path, request.query, rest]) + request.body.decode(
            "latin-1"
        )
        assert not any(key in text for key in KEYS), f"{request.method} {request.path}"
    assert capture.foreign_requests == []  # the other host heard nothing, key or not
    # Requests the functions made: same rule, from the sending side.
    for call in http.calls:
        for name, value in call.headers.items():
            if any(key in value for key in KEYS):
                assert name == "x-access-token" and call.url.startswith(origin + "/"), (name, call.url)
        assert not any(key in call.url for key in KEYS)

    # Everything else: nowhere.
    leaks = capture.leaks()
    assert leaks == [], "\n".join(leaks)
    # For the record: the SDK's DEBUG wire log of Secrets Manager calls is the only other
    # place a key showed up (excluded above: it is the secret store's own transcript).
    print(f"\nchannels checked: { {k: len(v) for k, v in capture.channels.items()} }")
    print(f"SDK wire-log lines of Secrets Manager calls holding a key: {capture.secret_wire_log_lines}")


def test_an_api_error_message_echoing_the_key_does_not_carry_it_further(make_stack, sandbox):
    # Some APIs quote the credential they refused ("invalid token sk-..."). The functions put
    # VideoDB's error message into errors, logs and dead-letter reasons, so an echoed key
    # must be cut out of it before it goes anywhere.
    from .conftest import API_KEY, dead_letters_of

    stack = make_stack(LogLevel="DEBUG")
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    original = sandbox._answer

    def echoing(method, path, query, headers, body):
        answer = original(method, path, query, headers, body)
        if answer.status >= 400 and isinstance(answer.body, dict):
            token = headers.get("x-access-token", "")
            answer.body = {**answer.body, "message": f"{answer.body['message']} (x-access-token {token})"}
        return answer

    with mock.patch.object(sandbox, "_answer", echoing), app_log() as log, record_spy(stack) as records:
        stack.send_to_queue("dl-echo-404")  # unknown download: 404, quoting the key
        assert consumer.run(until=lambda: bool(dead_letters_of(stack, download_id="dl-echo-404")), timeout=20)

    (letter,) = dead_letters_of(stack, download_id="dl-echo-404")
    assert letter["attributes"]["error_code"] == "http_404"
    places = {
        "dead-letter reason": letter["attributes"]["reason"],
        "functions' log": log.getvalue(),
        "issue step result": json.dumps(
            stack.client("dynamodb").scan(TableName=stack.ref("IdempotencyTable"))["Items"]
        ),
        "record results": json.dumps([h.result for h in records.handled]),
    }
    leaked = sorted(place for place, text in places.items() if API_KEY in text)
    assert leaked == [], f"the key echoed by the API was carried into: {', '.join(leaked)}"
