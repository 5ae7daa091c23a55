"""Fault injection for the reliability tests: AWS calls that fail, HTTP endpoints that do not
answer, and spies on what the real handlers did with each record.

Every fault is injected at the edge of the code under test (botocore's API call, the socket,
the sandbox's answer), never inside the handlers, so the code paths exercised are the ones
that run in Lambda.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import botocore.client
import requests
from botocore.exceptions import ClientError

from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.lambda_runtime import LocalLambdaContext
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

# -- AWS API faults --------------------------------------------------------------------------


@dataclass
class AwsFault:
    """Makes matching botocore API calls fail; records every matching call.

    ``times`` calls fail (None: all of them). ``after_real_call`` lets the call reach the
    service first and then raises, as when the service acted but the answer was lost.
    """

    operation: str
    times: int | None
    error: Callable[[Any, str], BaseException]
    when: Callable[[dict[str, Any]], bool] = lambda params: True
    after_real_call: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)
    raised: list[BaseException] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.raised)


def client_error(
    code: str, message: str = "injected fault", status: int = 400
) -> Callable[[Any, str], ClientError]:
    """A factory of the ClientError AWS answers with ``code``."""

    def make(client: Any, operation: str) -> ClientError:
        response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        modeled = getattr(client.exceptions, code, None) if hasattr(client, "exceptions") else None
        if isinstance(modeled, type) and issubclass(modeled, ClientError):
            return modeled(response, operation)  # what botocore raises for a modeled error
        return ClientError(response, operation)

    return make


@contextlib.contextmanager
def aws_faults(*faults: AwsFault) -> Iterator[tuple[AwsFault, ...]]:
    """Inject ``faults`` into every boto3 client of this process (the functions' included).

    The fault is raised from ``_make_api_call``, i.e. after botocore's own retries would have
    given up: what the caller sees when the service stays throttled or unavailable.
    """
    original = botocore.client.BaseClient._make_api_call
    lock = threading.Lock()

    def make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        for fault in faults:
            if fault.operation != operation_name or not fault.when(api_params):
                continue
            with lock:
                fault.calls.append(dict(api_params))
                fire = fault.times is None or len(fault.raised) < fault.times
                if fire:
                    error = fault.error(client, operation_name)
                    fault.raised.append(error)
            if fire:
                if fault.after_real_call:
                    original(client, operation_name, api_params)
                raise error
        return original(client, operation_name, api_params)

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", make_api_call):
        yield faults


@contextlib.contextmanager
def racing_start_execution() -> Iterator[list[Any]]:
    """Before the first StartExecution goes through, start the same execution name with
    another input, as a concurrent invocation would; yields the racer's answers."""
    original = botocore.client.BaseClient._make_api_call
    raced: list[Any] = []

    def make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if operation_name == "StartExecution" and not raced:
            state = json.loads(api_params["input"])
            other = {**api_params, "input": json.dumps({**state, "polls": 0.0})}  # same, spelled apart
            raced.append(original(client, operation_name, other))
        return original(client, operation_name, api_params)

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", make_api_call):
        yield raced


# -- network faults --------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def unresponsive_listener() -> Iterator[int]:
    """A loopback port whose accept queue is full: a connect there hangs until it times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()


# -- spies -----------------------------------------------------------------------------------


@dataclass
class HttpCall:
    method: str
    url: str
    headers: dict[str, str]
    status: int | None
    error: str | None


@dataclass
class HttpSpy:
    """Every HTTP request the functions made through ``requests`` and how it ended."""

    calls: list[HttpCall] = field(default_factory=list)

    def posts(self, download_id: str) -> list[HttpCall]:
        return [c for c in self.calls if c.method == "POST" and c.url.endswith(f"/download/{download_id}")]


@contextlib.contextmanager
def http_spy() -> Iterator[HttpSpy]:
    spy = HttpSpy()
    original = requests.Session.request

    def request(session: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        headers = {k.lower(): v for k, v in (kwargs.get("headers") or {}).items()}
        try:
            response = original(session, method, url, *args, **kwargs)
        except Exception as exc:
            spy.calls.append(HttpCall(method, url, headers, None, type(exc).__name__))
            raise
        spy.calls.append(HttpCall(method, url, headers, response.status_code, None))
        return response

    with mock.patch.object(requests.Session, "request", request):
        yield spy


@dataclass
class Handled:
    """One record as the retry function's RecordDelivery handled it."""

    message_id: str
    body: str
    receive_count: int
    result: str | None
    error: BaseException | None
    traceback: str = ""


@dataclass
class RecordSpy:
    """What the retry function made of each record it was handed (result or raised error)."""

    handled: list[Handled] = field(default_factory=list)

    def of(self, body: str) -> list[Handled]:
        return [h for h in self.handled if h.body == body]


@contextlib.contextmanager
def record_spy(stack: EmulatedStack, after: Callable[[Handled], None] | None = None) -> Iterator[RecordSpy]:
    """Wrap the loaded retry function's ``delivery.handle`` (the per-record entry point);
    ``after`` is called with each record once it is handled."""
    delivery = stack.functions["RetryFunction"].module.delivery
    original = delivery.handle
    spy = RecordSpy()

    def handle(record: Any, remaining_ms: int | None) -> Any:
        count = int(record.attributes.approximate_receive_count or 1)
        try:
            result = original(record, remaining_ms)
        except BaseException as exc:
            handled = Handled(
                record.message_id, record.body, count, None, exc, "".join(traceback.format_exception(exc))
            )
            raise
        else:
            handled = Handled(record.message_id, record.body, count, str(result), None)
            return result
        finally:
            spy.handled.append(handled)
            if after is not None:
                after(handled)

    with mock.patch.object(delivery, "handle", handle):
        yield spy


@contextlib.contextmanager
def postpone_spy() -> Iterator[list[int]]:
    """The visibility (seconds) the retry function gave each record it postponed."""
    from videodb_retry.adapters.queue_aws import VisibilityBackoff

    seen: list[int] = []
    original = VisibilityBackoff.postpone

    def postpone(self: Any, receipt_handle: str, seconds: int) -> None:
        seen.append(seconds)
        original(self, receipt_handle, seconds)

    with mock.patch.object(VisibilityBackoff, "postpone", postpone):
        yield seen


@contextlib.contextmanager
def metric_spy() -> Iterator[list[str]]:
    """Names of the metrics the functions added (metrics are disabled in the tests)."""
    from videodb_retry.observability import metrics

    names: list[str] = []
    original = metrics.add_metric

    def add_metric(*args: Any, **kwargs: Any) -> Any:
        names.append(kwargs.get("name") or args[0])
        return original(*args, **kwargs)

    with mock.patch.object(metrics, "add_metric", add_metric):
        yield names


@contextlib.contextmanager
def app_log() -> Iterator[io.StringIO]:
    """Everything the functions' Powertools logger writes, as the JSON lines Lambda would get."""
    from videodb_retry.observability import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


# -- sandbox tweaks ------------------------------------------------------------------------


@contextlib.contextmanager
def other_host_sandbox(api_key: str) -> Iterator[tuple[SandboxServer, str]]:
    """A second sandbox on another host name than the configured one (127.0.0.2, or
    ``localhost`` where only 127.0.0.1 is configured); yields it and its base URL."""
    try:
        server = SandboxServer(api_key=api_key, host="127.0.0.2").start()
        url = server.base_url
    except OSError:
        server = SandboxServer(api_key=api_key).start()
        url = server.base_url.replace("127.0.0.1", "localhost")
    try:
        yield server, url
    finally:
        server.stop()


@contextlib.contextmanager
def retry_answer_without_output_url(sandbox: SandboxServer, download_id: str, times: int) -> Iterator[None]:
    """The first ``times`` "processing" answers to the retry of ``download_id`` lack
    ``data.output_url`` (the job cannot be followed)."""
    original = sandbox.downloads.retry
    left = [times]

    def retry(requested: str) -> Any:
        answer = original(requested)
        if requested == download_id and left[0] > 0 and isinstance(answer.body, dict):
            data = answer.body.get("data")
            if answer.body.get("status") == "processing" and isinstance(data, dict):
                left[0] -= 1
                answer.body["data"] = {k: v for k, v in data.items() if k != "output_url"}
        return answer

    with mock.patch.object(sandbox.downloads, "retry", retry):
        yield


# -- Lambda context ------------------------------------------------------------------------


@dataclass
class ScriptedTimeContext(LocalLambdaContext):
    """A Lambda context whose remaining time is whatever ``remaining`` says."""

    remaining: Callable[[], int] = lambda: 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining()


def context_for(stack: EmulatedStack, function: str, remaining: Callable[[], int]) -> ScriptedTimeContext:
    loaded = stack.functions[function]
    return ScriptedTimeContext(
        function_name=loaded.name,
        invoked_function_arn=loaded.arn,
        memory_limit_in_mb=loaded.memory_mb,
        timeout_seconds=loaded.timeout_seconds,
        remaining=remaining,
    )


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS record as Lambda's event source mapping delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def receive_exactly(stack: EmulatedStack, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Receive ``count`` messages from the retry queue (as one batch would)."""
    sqs = stack.client("sqs")
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        messages += sqs.receive_message(
            QueueUrl=stack.retry_queue_url,
            MaxNumberOfMessages=min(10, count - len(messages)),
            AttributeNames=["All"],
        ).get("Messages", [])
    assert len(messages) == count, f"received {len(messages)} of {count} messages"
    return messages
