"""`videodb-retry local --serve`: the emulated stack kept up for an operator to try things.

``python -m videodb_retry_local.commands.demo --serve [--port-aws 5000] [--port-api 8765] [--host ADDRESS]
[--sam-env DIR]`` starts, all on 127.0.0.1 (or on ``--host``: ``auto`` is the Docker bridge
gateway, where ``sam local invoke``'s Lambda containers reach them; see
:mod:`videodb_retry_local.commands.sam_local`):

- the SAM stack of template.yaml created in moto (as the demo makes it, with short waits),
  and a moto server (``ThreadedMotoServer``) on ``--port-aws`` that serves those very
  resources: moto's in-process mock and its server share one set of backends, so what the
  stack created in-process is what ``aws --endpoint-url`` and ``videodb-retry --endpoint-url``
  see, and what they send is what the functions receive;
- a CloudFormation stack ``videodb-retry-local`` in the emulator whose Outputs name those
  resources, so ``videodb-retry --stack-name videodb-retry-local`` finds them. It is a record,
  not the owner: its only resource is a no-op ``AWS::CloudFormation::WaitConditionHandle``,
  and the resources its Outputs name were created directly by :class:`EmulatedStack`;
- the sandbox VideoDB API on ``--port-api``, where download ids behave by prefix
  (:data:`~videodb_retry_local.videodb_sandbox.prefix_sandbox.PREFIXES`) and any other id is unknown (404);
  each request it answers is printed (``videodb: POST /download/ID -> 200``; never a header,
  so never the key);
- the retry queue's event source, emulated, in a background thread (the workflow runs in
  moto's own threads and calls the poll function).

With ``--sam-env DIR`` it writes, before ``ready``, what ``sam local invoke`` needs to run the
functions against that stack (:func:`videodb_retry_local.commands.sam_local.write_sam_env`):
``DIR/env.json`` (``--env-vars``), ``DIR/aws.env`` (exports for the shell: the emulator
endpoint and moto's fake credentials) and ``DIR/poll-running.json`` (a poll input naming a
live sandbox job that never finishes).

It prints what to pass to the CLI (never the API key, which only the stack's secret holds),
then ``ready``, and runs until SIGINT or SIGTERM (or ``--max-seconds``); then it stops the
consumer, the running workflow executions, the moto server and the sandbox, and exits 0.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from moto.server import ThreadedMotoServer
from videodb_retry.rules.breaker import PAUSED, RESUMED

from videodb_retry_local.commands import sam_local
from videodb_retry_local.commands.sam_local import POLL_EXAMPLE_FILE
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.moto_env import FAKE_CREDENTIALS, REGION, STACK_NAME, local_aws
from videodb_retry_local.stack.moto_server import (
    create_record_stack,
    endpoint_of,
    quiet_request_log,
    start_moto_server,
)
from videodb_retry_local.stack.presets import SANDBOX_PARAMETERS
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.stack.template import TemplateError
from videodb_retry_local.videodb_sandbox.prefix_sandbox import PREFIXES, prefix_sandbox
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

HOST = "127.0.0.1"
DEFAULT_PORT_AWS = 5000
DEFAULT_PORT_API = 8765
READY = "ready"
# The consumer sleeps this long when the queue was empty, and at most this long after an error.
IDLE_SECONDS = 0.2
ERROR_BACKOFF_SECONDS = 2.0
# How long shutdown waits for the consumer to finish the batch it is on.
CONSUMER_JOIN_SECONDS = 20.0


class ServeError(Exception):
    """Serve mode cannot start (a port in use, a bad template): one line, exit 2."""


class Stopper:
    """SIGINT and SIGTERM set :attr:`event` (instead of raising) while installed."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stopper]:
        """Install the handlers and restore the previous ones after (outside the main thread,
        where Python cannot install them, only :attr:`event` and ``--max-seconds`` stop it)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for number, handler in self._previous.items():
                signal.signal(number, handler)


class Consumer(threading.Thread):
    """The retry queue's event source mapping, emulated, until :meth:`stop`.

    Between polls it reports each batch and each new outcome event through ``out``, and its
    own errors (it goes on after them) through ``err``.
    """

    def __init__(self, stack: EmulatedStack, out: Callable[[str], None], err: Callable[[str], None]) -> None:
        super().__init__(name="videodb-retry-consumer", daemon=True)
        self.stack = stack
        self.consumer = QueueConsumer(stack, redelivery_seconds=1)
        self.out = out
        self.err = err
        self.errors = 0
        self._stop_event = threading.Event()
        self._events_shown = 0

    def stop(self) -> None:
        """Ask the thread to end after the batch it is on."""
        self._stop_event.set()

    def run(self) -> None:
        """Poll, invoke, report; sleep briefly when idle; back off after an error."""
        while not self._stop_event.is_set():
            try:
                seen = len(self.consumer.deliveries)
                records = self.consumer.poll_once()
                self._report(seen)
            except Exception as exc:  # keep serving: one line, then a pause
                self.errors += 1
                self.err(f"consumer: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
                self._stop_event.wait(ERROR_BACKOFF_SECONDS)
                continue
            if not records:
                self._stop_event.wait(IDLE_SECONDS)

    def _report(self, seen: int) -> None:
        batch = self.consumer.deliveries[seen:]
        if batch:
            failed = sum(d.failed for d in batch)
            note = f", {failed} failed (back on the queue in 1 s)" if failed else ""
            self.out(f"queue: {len(batch)} record(s) to {self.consumer.function}{note}")
        events = self.stack.outcome_events()
        for event in events[self._events_shown :]:
            self.out(describe_event(event))
        self._events_shown = len(events)


def describe_event(event: dict[str, Any]) -> str:
    """One line for an event the app put on its bus: a download's outcome, or the breaker's
    ``Retry Paused`` / ``Retry Resumed`` (which carry no download)."""
    detail = event["detail"]
    if event.get("detail-type") in (PAUSED, RESUMED):
        return f"breaker: {event['detail-type']} ({detail.get('reason')})"
    more = "will retry" if detail.get("will_retry") else "final"
    error = f": {detail['error']}" if detail.get("error") else ""
    return (
        f"outcome: {detail.get('download_id')} attempt {detail.get('attempt')} "
        f"{detail.get('status')} ({more}){error}"
    )


def check_port_free(port: int, what: str, host: str = HOST) -> None:
    """Fail early and in one line when ``port`` on ``host`` is taken (0: any port)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As both servers bind: a port a just-stopped server left in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServeError(
                f"{what} port {host}:{port} is not free ({exc.strerror}); pick another"
            ) from None


def banner(
    stack: EmulatedStack,
    endpoint: str,
    sandbox_url: str,
    parameters: dict[str, str],
    sam_files: dict[str, Path] | None = None,
) -> list[str]:
    """What an operator needs: where things are and commands to paste (no API key)."""
    cli = f"videodb-retry --endpoint-url {endpoint} --stack-name {stack.ids.stack_name}"
    shown = ", ".join(f"{k}={v}" for k, v in sorted(parameters.items()) if k != "VideoDBApiBaseUrl")
    width = max(len(p.prefix) for p in PREFIXES) + 1
    lines = [
        f"videodb-retry local stack is up on {urlsplit(endpoint).hostname} (Ctrl-C or SIGTERM stops it)",
        f"  AWS emulator (moto)    {endpoint}",
        f"  VideoDB sandbox API    {sandbox_url}  (its key is in the stack's secret; not shown)",
        f"  stack                  {stack.ids.stack_name}  (CloudFormation record in the emulator; "
        "its Outputs name the resources below)",
        f"  retry queue            {stack.retry_queue_url}",
        f"  dead-letter queue      {stack.dead_letter_queue_url}",
        f"  state machine          {stack.state_machine_arn}",
        f"  region                 {stack.ids.region}",
        f"  parameters             {shown}",
        "",
        "in another shell (the credentials are moto's fakes):",
        "  export "
        + " ".join(
            f"{k}={FAKE_CREDENTIALS[k]}"
            for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
        ),
        f"  {cli} enqueue dl-ok-1 dl-fail-1 dl-gone-1",
        f"  {cli} status",
        f"  {cli} redrive --dry-run",
        "  without the stack, name the resources instead:",
        f"  videodb-retry --endpoint-url {endpoint} enqueue --queue-url {stack.retry_queue_url} dl-ok-2",
        f"  videodb-retry --endpoint-url {endpoint} status --state-machine-arn {stack.state_machine_arn}",
        f"  videodb-retry --endpoint-url {endpoint} redrive --dry-run --queue-url {stack.retry_queue_url} "
        f"--dlq-url {stack.dead_letter_queue_url}",
        f"  aws --endpoint-url {endpoint} sqs send-message --queue-url {stack.retry_queue_url} "
        "--message-body dl-ok-3",
        "",
        "download ids behave by prefix (any other id is unknown to the sandbox: 404):",
        *(f"  {(p.prefix + '*').ljust(width)}  {p.behaviour}; expect: {p.expected}" for p in PREFIXES),
    ]
    if sam_files:
        env_vars, shell = sam_files[sam_local.ENV_FILE], sam_files[sam_local.SHELL_FILE]
        lines += [
            "",
            f"for sam local invoke (wrote {', '.join(str(p) for p in sam_files.values())}):",
            f"  source {shell}",
            "  sam build",
            f"  sam local invoke RetryFunction -e events/retry-mixed-batch.json --env-vars {env_vars}",
            f"  sam local invoke PollFunction -e {sam_files[POLL_EXAMPLE_FILE]} --env-vars {env_vars}",
        ]
    return lines


@dataclass(frozen=True)
class Where:
    """Where serve mode listens and what it writes for `sam local invoke`."""

    port_aws: int = DEFAULT_PORT_AWS
    port_api: int = DEFAULT_PORT_API
    host: str = HOST  # an address of this machine (resolved: never "auto")
    sam_env: Path | None = None  # directory for env.json, aws.env, poll-running.json


def serve(
    overrides: dict[str, str],
    port_aws: int = DEFAULT_PORT_AWS,
    port_api: int = DEFAULT_PORT_API,
    max_seconds: float | None = None,
    host: str = HOST,
    sam_env: Path | None = None,
) -> int:
    """Run serve mode until SIGINT/SIGTERM (or ``max_seconds``); 0 after a clean stop.

    ``host`` is 127.0.0.1, ``auto`` (the Docker bridge gateway) or an IPv4 address of this
    machine; ``sam_env`` a directory to write the `sam local invoke` files into.
    """
    stopper = Stopper()
    lock = threading.Lock()

    def out(line: str) -> None:
        with lock:
            print(line, flush=True)

    def err(line: str) -> None:
        with lock:
            print(line, file=sys.stderr, flush=True)

    quiet_request_log()
    try:
        with stopper.installed():
            try:
                address = host if host == HOST else sam_local.listen_address(host)
            except sam_local.AddressError as exc:
                raise ServeError(str(exc)) from None
            where = Where(port_aws, port_api, address, sam_env)
            check_port_free(port_aws, "AWS emulator", address)
            check_port_free(port_api, "sandbox API", address)
            return _serve(overrides, where, max_seconds, stopper, (out, err), SANDBOX_PARAMETERS)
    except ServeError as exc:
        print(f"cannot serve: {exc}", file=sys.stderr, flush=True)
        return 2


def _serve(
    overrides: dict[str, str],
    where: Where,
    max_seconds: float | None,
    stopper: Stopper,
    printers: tuple[Callable[[str], None], Callable[[str], None]],
    defaults: dict[str, str],
) -> int:
    out, err = printers

    def answered(method: str, path: str, status: int) -> None:
        out(f"videodb: {method} {path} -> {status}")  # method, path and status: never a header

    key = "sk-local-" + secrets.token_urlsafe(24)  # lives in the sandbox and the secret only
    try:
        sandbox = prefix_sandbox(key, where.host, where.port_api, on_answer=answered).start()
    except OSError as exc:
        where_api = f"{where.host}:{where.port_api}"
        raise ServeError(f"sandbox API cannot listen on {where_api}: {exc.strerror}") from None
    server: ThreadedMotoServer | None = None
    consumer: Consumer | None = None
    try:
        with local_aws():
            parameters = {**defaults, "LogLevel": "ERROR", **overrides, "VideoDBApiBaseUrl": sandbox.base_url}
            try:
                stack = EmulatedStack(key, parameters, stack_name=STACK_NAME, region=REGION).create()
            except TemplateError as exc:
                raise ServeError(f"cannot build the stack: {exc}") from None
            try:
                try:
                    server = start_moto_server(where.port_aws, where.host)
                except TimeoutError as exc:
                    raise ServeError(str(exc)) from None
                endpoint = endpoint_of(server)
                create_record_stack(stack)
                written = _write_sam_env(stack, endpoint, sandbox, key, where.sam_env)
                consumer = Consumer(stack, out, err)
                consumer.start()
                if not stopper.event.is_set():  # interrupted while starting: no banner
                    for line in banner(stack, endpoint, sandbox.base_url, parameters, written):
                        out(line)
                    out(READY)
                started = time.monotonic()
                while not stopper.event.wait(0.5):
                    if max_seconds is not None and time.monotonic() - started >= max_seconds:
                        out(f"--max-seconds {max_seconds:g} reached")
                        break
                out(f"stopping ({stopper.signal_name or 'time is up'})")
            finally:
                if consumer is not None:
                    consumer.stop()
                    consumer.join(CONSUMER_JOIN_SECONDS)
                if server is not None:
                    server.stop()  # no more requests from outside
                stack.close()  # stops running workflow executions
    finally:
        sandbox.stop()
    out("stopped")
    return 0


def _write_sam_env(
    stack: EmulatedStack, endpoint: str, sandbox: SandboxServer, key: str, directory: Path | None
) -> dict[str, Path]:
    if directory is None:
        return {}
    try:
        return sam_local.write_sam_env(stack, endpoint, sandbox, key, directory)
    except OSError as exc:
        why = exc.strerror or exc
        raise ServeError(f"cannot write the sam local invoke files in {directory}: {why}") from None
