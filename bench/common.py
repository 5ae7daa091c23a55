"""What the figures share: result rows, the machine, the emulated stack with the sandbox,
loading a function's real handler, instant AWS answers, a virtual clock, and guards.

Handlers are loaded the way ``videodb_retry_local.stack.lambda_runtime`` loads them (a fresh import of
``functions/<name>/app.py`` with the function's environment resolved from template.yaml),
inside moto (``local_aws``); HTTP goes to :class:`~videodb_retry_local.videodb_sandbox.sandbox.SandboxServer`
on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import platform
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videodb_retry_local.stack import network_guard
from videodb_retry_local.stack.moto_env import direct_http

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "sk-bench-key"
REGION = "us-east-1"


# -- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    measured: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: informational, no target
    command: str


@dataclass
class Figure:
    """What one benchmark module returns: table rows, notes for results.md, raw numbers."""

    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def command(key: str) -> str:
    """The command that reproduces one figure."""
    return f"`python -m bench.run --only {key}`"


def ms(seconds: float) -> str:
    """Seconds as milliseconds for the table."""
    return f"{seconds * 1000:.1f} ms"


def ratio(value: float) -> str:
    """A ratio for the table."""
    return f"{value:.2f}x"


def median(values: Iterable[float]) -> float:
    """Median of the values (the figures use medians, not means)."""
    return statistics.median(list(values))


def machine() -> dict[str, str]:
    """CPU model, core count, Python and OS of this run."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": str(os.cpu_count() or "?"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(terse=True),
    }


# -- processes ------------------------------------------------------------------------------


def run_process(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    failure: str | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    tail: int = 2000,
) -> subprocess.CompletedProcess[str]:
    """Run one of the figures' own commands (this interpreter, the project's SAM CLI) with only
    ``env``, its output captured as text.

    With ``failure``, a non-zero exit raises RuntimeError: ``failure`` and the last ``tail``
    characters of the output. Without it, the caller reads the exit status itself.
    """
    done = subprocess.run(  # noqa: S603 - our own interpreter, snippets and SAM CLI
        list(args),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if failure is not None and done.returncode != 0:
        raise RuntimeError(f"{failure}:\n{(done.stdout + done.stderr)[-tail:]}")
    return done


# -- guards ----------------------------------------------------------------------------------


def loopback_only() -> contextlib.AbstractContextManager[None]:
    """Refuse every connection that is not to loopback (a mistake must fail, not leak)."""
    return network_guard.loopback_only("bench")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send the functions' JSON logs and metrics to /dev/null (they are still formatted)."""
    with open(os.devnull, "w") as devnull:
        handler = None
        old_stream = None
        with contextlib.suppress(Exception):
            from videodb_retry.observability import logger

            candidate = logger.registered_handler
            if isinstance(candidate, logging.StreamHandler):
                handler = candidate
                old_stream = handler.setStream(devnull)
        try:
            with contextlib.redirect_stdout(devnull):
                yield
        finally:
            if handler is not None and old_stream is not None:
                handler.setStream(old_stream)


# -- time ------------------------------------------------------------------------------------


class VirtualClock:
    """Real time plus every wait skipped so far: ``clock()`` reads it, ``advance`` skips.

    A Wait state that would sleep N seconds calls ``advance(N)`` instead, so the poll function
    and the sandbox (which both read this clock) see N seconds pass in an instant.
    """

    def __init__(self) -> None:
        self._skipped = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return time.time() + self._skipped

    def advance(self, seconds: float) -> None:
        """Skip ``seconds`` of waiting."""
        with self._lock:
            self._skipped += max(0.0, float(seconds))

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._skipped = 0.0


# -- the stack -------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_stack(
    latency_seconds: float = 0.0,
    clock: Any = None,
    overrides: dict[str, Any] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """The sandbox on loopback and template.yaml's stack emulated in moto: (sandbox, stack).

    Inside, boto3 reaches moto and ``requests`` reaches the sandbox directly (:func:`direct_http`).
    """
    from videodb_retry_local.stack.emulated_stack import EmulatedStack
    from videodb_retry_local.stack.moto_env import local_aws
    from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

    sandbox_kwargs: dict[str, Any] = {"latency_seconds": latency_seconds}
    if clock is not None:
        sandbox_kwargs["clock"] = clock
    with loopback_only(), SandboxServer(api_key=API_KEY, **sandbox_kwargs) as sandbox, local_aws():
        stack = EmulatedStack(API_KEY, {"VideoDBApiBaseUrl": sandbox.base_url, **(overrides or {})})
        stack.create()
        try:
            with direct_http():
                yield sandbox, stack
        finally:
            stack.close()


def load_function(stack: Any, logical_id: str, extra_env: dict[str, str] | None = None) -> Any:
    """A fresh import of a function's handler, as the stack loads it, with ``extra_env`` on top
    of the environment the template gives it (a new warm container). Returns the LocalFunction
    and makes it the one ``stack.invoke`` and moto's Lambda Invoke reach."""
    properties = stack.template.properties(logical_id, stack.ids)
    environment = {**stack.template.function_environment(logical_id, stack.ids), **(extra_env or {})}
    code_dir = stack.template.base_dir / properties["CodeUri"]
    module, handler = stack._load_handler(logical_id, code_dir, properties["Handler"], environment)
    function = dataclasses.replace(stack.functions[logical_id], module=module, handler=handler)
    stack.functions[logical_id] = function
    return function


def call(function: Any, event: Any) -> Any:
    """Invoke a loaded handler once with a fresh Lambda context (what one invocation is)."""
    from videodb_retry_local.stack.lambda_runtime import LocalLambdaContext

    context = LocalLambdaContext(
        function_name=function.name,
        invoked_function_arn=function.arn,
        memory_limit_in_mb=function.memory_mb,
        timeout_seconds=function.timeout_seconds,
    )
    return function.handler(event, context)


def sqs_event(bodies: Iterable[str], queue_arn: str = f"arn:aws:sqs:{REGION}:123456789012:bench") -> dict:
    """An SQS event as Lambda's event source mapping delivers it (first receive)."""
    records = []
    now = str(int(time.time() * 1000))
    for body in bodies:
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"bench-{uuid.uuid4().hex}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "AIDABENCH",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def new_downloads(sandbox: Any, prefix: str, count: int) -> list[str]:
    """``count`` new download ids known to the sandbox (status error, retry succeeds)."""
    ids = [f"{prefix}-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    for download_id in ids:
        sandbox.add_download(download_id)
    return ids


# -- instant AWS answers ---------------------------------------------------------------------


class FakeAws:
    """Instant answers to the functions' DynamoDB, SQS, Step Functions and EventBridge calls.

    Installed on the functions' own boto3 clients as a ``before-send`` handler: botocore still
    validates, serialises and signs each request and parses the answer, only the service's work
    (moto's, here) is skipped. Used where moto's in-process cost — StartExecution parses the
    state machine with ANTLR on every call — would dominate what is measured. Every id in a
    benchmark is new, so the idempotency table's conditional writes always succeed and an empty
    answer is the right one. Secrets Manager is not faked (it stays moto).
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def install(self, services: Iterable[str] = ("dynamodb", "sqs", "stepfunctions", "events")) -> None:
        """Answer the calls of the cached clients (``videodb_retry.adapters.aws_clients``) of ``services``."""
        from moto.core.models import botocore_stubber
        from videodb_retry.adapters import aws_clients, request_gate_aws

        clients = [aws_clients.client(service) for service in services]
        if "dynamodb" in services:  # the request budget's counts (request_gate_aws.py)
            clients.append(request_gate_aws.gate_client())
        for client in clients:
            # moto's stubber would still match every request against its URL patterns.
            client.meta.events.unregister("before-send", botocore_stubber)
            client.meta.events.register_first("before-send", self._answer, unique_id=f"bench-fake-{id(self)}")

    def _answer(self, request: Any, event_name: str = "", **kwargs: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from moto.core.botocore_stubber import MockRawResponse

        _, service, operation = event_name.split(".", 2)
        body = self._body(service, operation, request)
        if body is None:
            # Never sent on: fail the call loudly rather than measure something else.
            raise RuntimeError(f"bench FakeAws has no answer for {service}.{operation}")
        with self._lock:
            self.calls[f"{service}.{operation}"] += 1
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": str(uuid.uuid4())}
        return AWSResponse(request.url, 200, headers, MockRawResponse(json.dumps(body)))

    @staticmethod
    def _body(service: str, operation: str, request: Any) -> dict[str, Any] | None:
        if service == "dynamodb" and operation == "UpdateItem" and b"gate#" in (request.body or b""):
            return {"Attributes": {"used": {"N": "1"}}}  # the window's first take: admitted
        if service == "dynamodb" and operation in ("PutItem", "UpdateItem", "DeleteItem", "GetItem"):
            return {}
        if service == "sqs" and operation == "SendMessage":
            sent = json.loads(request.body or b"{}")
            digest = hashlib.md5(str(sent.get("MessageBody", "")).encode()).hexdigest()  # noqa: S324
            return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": digest}
        if service == "sqs" and operation == "ChangeMessageVisibility":
            return {}
        if service == "sfn" and operation == "StartExecution":
            arn = f"arn:aws:states:{REGION}:123456789012:execution:bench:{uuid.uuid4()}"
            return {"executionArn": arn, "startDate": time.time()}
        if service == "eventbridge" and operation == "PutEvents":
            entries = json.loads(request.body or b"{}").get("Entries", [])
            return {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in entries]}
        return None


def batch_concurrency_supported() -> bool:
    """Whether the retry function reads RETRY_BATCH_CONCURRENCY (the setting of issue 5)."""
    sources = [ROOT / "functions" / "retry" / "app.py", *sorted((ROOT / "layers" / "shared").rglob("*.py"))]
    return any("RETRY_BATCH_CONCURRENCY" in path.read_text(encoding="utf-8") for path in sources)
