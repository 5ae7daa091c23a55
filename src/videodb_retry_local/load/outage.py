"""`make outage`: a long VideoDB outage replayed, time compressed, with and without the breaker.

Many downloads fail at once, VideoDB answers 503 to everything for hours, then comes back.
The real handlers run in the emulated stack (moto, the workflow executing) against the
sandbox on loopback; the queue consumer honours the event source mapping's State as Lambda
does, and the breaker function is invoked once a (virtual) minute as its schedule would.

Time is compressed by ``--scale`` (virtual seconds per real second): every timing parameter
is divided by it (rounded, at least 1 s where AWS takes whole seconds), so the run keeps the
ratios of the defaults. For each run it prints one line:
``with the breaker: lost N, transient_exhausted N, ...`` / ``without the breaker: ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from videodb_retry.rules.messages import PoisonMessage, parse_body

from videodb_retry_local.load.soak_runner import quick_thread_switches, quiet
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.moto_env import local_aws
from videodb_retry_local.stack.presets import BUDGETS_NEVER_BINDING
from videodb_retry_local.stack.presets import OUTAGE_VIRTUAL_TIMING as VIRTUAL_TIMING
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

API_KEY = "sk-outage-sandbox"
SUCCEEDED = "Download Retry Succeeded"
MAX_TIMEOUT_SECONDS = 3600.0
LOCAL_MIN_WINDOW_SECONDS = 10
TICK_VIRTUAL_SECONDS = 60  # the breaker's schedule: rate(1 minute)
PROBE_VIRTUAL_SECONDS = 60  # BreakerProbeIntervalSeconds' default


@dataclass(frozen=True)
class OutageConfig:
    """One scenario: how many downloads fail at once, how long VideoDB is down, how fast."""

    downloads: int = 300  # what a local consumer drains in minutes; --downloads 2000 for a bigger burst
    outage_hours: float = 3.0
    scale: float = 120.0
    in_flight: int = 10  # workflows already polling when VideoDB goes down
    # Share of the burst whose retry VideoDB answers "processing" (a workflow follows it); the
    # rest answer "done" at once, which keeps a 2,000-download run to minutes in moto.
    workflow_share: float = 0.1
    timeout_seconds: float = 900.0  # real seconds per run, whatever happens
    # None: down for the whole outage. (down, up) virtual seconds: a flapping API.
    flapping: tuple[float, float] | None = None

    def real(self, virtual_seconds: float) -> float:
        """Real seconds of a virtual span."""
        return virtual_seconds / self.scale


@dataclass
class RunResult:
    """What one run showed."""

    label: str
    downloads: int
    succeeded: int = 0
    transient_exhausted: int = 0
    other_dead_letters: int = 0
    lost: int = 0
    unfinished: int = 0
    drain_virtual_seconds: float | None = None
    calls_while_down: dict[str, int] = field(default_factory=dict)
    paused: int = 0
    resumed: int = 0
    max_receive_count: int = 0
    real_seconds: float = 0.0

    def line(self) -> str:
        """The summary line ``make outage`` prints."""
        drain = (
            "not drained"
            if self.drain_virtual_seconds is None
            else f"{self.drain_virtual_seconds / 60:.0f} min"
        )
        calls = self.calls_while_down
        return (
            f"{self.label}: lost {self.lost}, transient_exhausted {self.transient_exhausted}, "
            f"other dead letters {self.other_dead_letters}, unfinished {self.unfinished}, "
            f"succeeded {self.succeeded} of {self.downloads}; drained {drain} after recovery; "
            f"calls to VideoDB while down {sum(calls.values())} (retries {calls.get('retries', 0)}, "
            f"polls {calls.get('polls', 0)}, probes {calls.get('probes', 0)}); "
            f"paused {self.paused}x, resumed {self.resumed}x; most receives of one message "
            f"{self.max_receive_count}; {self.real_seconds:.0f} s real"
        )


def scaled_parameters(config: OutageConfig, breaker: bool, sandbox_url: str) -> dict[str, Any]:
    """Template overrides: the defaults' timing divided by the scale (whole seconds)."""
    parameters: dict[str, Any] = {
        name: max(1, round(value / config.scale)) for name, value in VIRTUAL_TIMING.items()
    }
    parameters.update(
        {
            "VideoDBApiBaseUrl": sandbox_url,
            "BreakerEnabled": "true" if breaker else "false",
            # The local consumer runs one batch at a time, far below Lambda's pollers: a window
            # scaled to 2-3 s would rarely hold BreakerMinAttempts records, so it holds 10 s.
            "BreakerWindowSeconds": max(
                LOCAL_MIN_WINDOW_SECONDS, round(VIRTUAL_TIMING["BreakerWindowSeconds"] / config.scale)
            ),
            # 0 = a probe on every tick: the tick itself is the once-a-minute bound.
            "BreakerProbeIntervalSeconds": round(PROBE_VIRTUAL_SECONDS / config.scale),
            "LogLevel": "ERROR",
            # Budgets are per real second: compressed time would make them bind x scale harder
            # (the capacity model, `make scale`, is where the budgets are played out).
            **BUDGETS_NEVER_BINDING,
        }
    )
    return parameters


def outage_hook(config: OutageConfig, down_at: float, up_at: float) -> Callable[[str, str], int | None]:
    """The sandbox's outage switch: 503 between ``down_at`` and ``up_at`` (real, monotonic),
    during the down parts of the flapping cycle if there is one."""

    def status(method: str, path: str) -> int | None:
        now = time.monotonic()
        if not down_at <= now < up_at:
            return None
        if config.flapping is None:
            return 503
        down, up = (config.real(s) for s in config.flapping)
        return 503 if (now - down_at) % (down + up) < down else None

    return status


class OutageRun:
    """One run: the stack, the sandbox, the consumer and the breaker's schedule."""

    def __init__(
        self, config: OutageConfig, stack: EmulatedStack, sandbox: SandboxServer, breaker: bool
    ) -> None:
        self.config = config
        self.stack = stack
        self.sandbox = sandbox
        self.breaker = breaker
        self.consumer = QueueConsumer(stack, redelivery_seconds=None)  # the function's own backoff
        self.ids = [f"download-outage-{i:05d}" for i in range(config.downloads)]
        self.early = [f"download-inflight-{i:04d}" for i in range(config.in_flight)]
        self.result = RunResult(
            "with the breaker" if breaker else "without the breaker", len(self.ids) + len(self.early)
        )

    def run(self) -> RunResult:
        """Start workflows, take VideoDB down with the burst on the queue, bring it back, drain."""
        started = time.monotonic()
        deadline = started + min(self.config.timeout_seconds, MAX_TIMEOUT_SECONDS)
        self._start_in_flight(deadline)
        followed = round(len(self.ids) * self.config.workflow_share)
        for n, download_id in enumerate(self.ids):
            # In error; once VideoDB is up its retry succeeds (after a workflow for some).
            self.sandbox.script(download_id, answer_done_at_once=n >= followed)
        for first in range(0, len(self.ids), 10):
            self._send([json.dumps({"download_id": i}) for i in self.ids[first : first + 10]])
        # The burst is on the queue: VideoDB goes down now, for the outage's whole length.
        down_at = time.monotonic()
        up_at = down_at + self.config.real(self.config.outage_hours * 3600)
        self.sandbox.set_outage(outage_hook(self.config, down_at, up_at))
        finished_at = self._drive(up_at, deadline)
        self.sandbox.set_outage(None)
        self._account(down_at, up_at, finished_at)
        self.result.real_seconds = time.monotonic() - started
        return self.result

    def _start_in_flight(self, deadline: float) -> None:
        for download_id in self.early:
            self.sandbox.script(download_id, processing_seconds=self.config.real(1800))
        for first in range(0, len(self.early), 10):
            self._send(self.early[first : first + 10])
        while self.stack.running_executions() < len(self.early) and time.monotonic() < deadline:
            if not self.consumer.poll_once():
                time.sleep(0.05)

    def _send(self, bodies: list[str]) -> None:
        if not bodies:
            return
        answer = self.stack.client("sqs").send_message_batch(
            QueueUrl=self.stack.retry_queue_url,
            Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)],
        )
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused messages: {answer['Failed']}")

    def _drive(self, up_at: float, deadline: float) -> float | None:
        """Consume, tick the breaker once a virtual minute, until everything is accounted."""
        tick = self.config.real(TICK_VIRTUAL_SECONDS)
        next_tick = next_check = time.monotonic()
        while time.monotonic() < deadline:
            now = time.monotonic()
            if self.breaker and now >= next_tick:
                self.stack.invoke("BreakerFunction", {"action": "tick"})
                next_tick = now + tick
            if now >= next_check:
                next_check = now + 1.0
                if now >= up_at and self._settled():
                    return now
            if not self.consumer.poll_once():
                time.sleep(0.02)
        return None

    def _settled(self) -> bool:
        done = self._succeeded() | self._dead_lettered().keys()
        return done >= set(self.ids) | set(self.early) and self.stack.running_executions() == 0

    def _succeeded(self) -> set[str]:
        return {
            e["detail"]["download_id"]
            for e in self.stack.outcome_events()
            if e.get("detail-type") == SUCCEEDED and "download_id" in e.get("detail", {})
        }

    def _dead_lettered(self) -> dict[str, str]:
        found = {}
        for message in self.stack.dead_letters():
            try:
                download_id = parse_body(message["body"]).download_id
            except PoisonMessage:
                continue
            found[download_id] = message["attributes"].get("error_code") or "sqs_redrive"
        return found

    def _account(self, down_at: float, up_at: float, finished_at: float | None) -> None:
        result, everyone = self.result, set(self.ids) | set(self.early)
        succeeded, dead = self._succeeded() & everyone, self._dead_lettered()
        result.succeeded = len(succeeded)
        result.transient_exhausted = sum(
            1 for i, c in dead.items() if i in everyone and c in ("transient_exhausted", "sqs_redrive")
        )
        result.other_dead_letters = sum(1 for i in dead if i in everyone) - result.transient_exhausted
        missing = everyone - succeeded - dead.keys()
        if self._queue_is_empty() and self.stack.running_executions() == 0:
            result.lost = len(missing)  # nowhere: not done, not dead-lettered, not waiting
        else:
            result.unfinished = len(missing)
        if finished_at is not None:
            result.drain_virtual_seconds = (finished_at - up_at) * self.config.scale
        result.calls_while_down = _calls_between(self.sandbox, down_at, up_at)
        kinds = [e.get("detail-type") for e in self.stack.outcome_events()]
        result.paused, result.resumed = kinds.count("Retry Paused"), kinds.count("Retry Resumed")
        result.max_receive_count = max((d.receive_count for d in self.consumer.deliveries), default=0)

    def _queue_is_empty(self) -> bool:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.retry_queue_url, AttributeNames=names
        )["Attributes"]
        return all(int(attributes.get(n, "0")) == 0 for n in names)


def _calls_between(sandbox: SandboxServer, start: float, end: float) -> dict[str, int]:
    """VideoDB calls the sandbox received while it was down, by kind."""
    calls = {"retries": 0, "polls": 0, "probes": 0}
    for request in sandbox.requests:
        if not start <= request.time < end:
            continue
        if request.method == "POST" and request.path.startswith("/download/"):
            calls["retries"] += 1
        elif request.path.startswith("/async-response/"):
            calls["polls"] += 1
        elif request.method == "GET" and request.path == "/download":
            calls["probes"] += 1
    return calls


def run_outage(config: OutageConfig, breaker: bool, verbose: bool = False) -> RunResult:
    """One run in its own sandbox and emulated stack."""
    with (
        SandboxServer(api_key=API_KEY) as sandbox,
        local_aws(retry_wait_scale=1 / config.scale),  # the workflow's Retry waits, virtual too
        quiet(verbose),
        quick_thread_switches(),
    ):
        stack = EmulatedStack(API_KEY, scaled_parameters(config, breaker, sandbox.base_url))
        with stack:
            return OutageRun(config, stack, sandbox, breaker).run()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line of ``python -m videodb_retry_local.load.outage``."""
    parser = argparse.ArgumentParser(prog="make outage", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--downloads", type=int, default=OutageConfig.downloads, help="downloads failing at once"
    )
    parser.add_argument(
        "--hours", type=float, default=OutageConfig.outage_hours, help="virtual hours VideoDB is down"
    )
    parser.add_argument(
        "--scale", type=float, default=OutageConfig.scale, help="virtual seconds per real second"
    )
    parser.add_argument(
        "--in-flight", type=int, default=OutageConfig.in_flight, help="workflows polling at the start"
    )
    parser.add_argument(
        "--workflow-share",
        type=float,
        default=OutageConfig.workflow_share,
        help="share of the burst followed by a workflow",
    )
    parser.add_argument(
        "--timeout", type=float, default=OutageConfig.timeout_seconds, help="real seconds per run"
    )
    parser.add_argument("--only", choices=("with", "without"), help="run one of the two")
    parser.add_argument("--verbose", action="store_true", help="let the functions log")
    args = parser.parse_args(argv)
    if not 1 <= args.downloads <= 20_000 or not 0 < args.hours <= 24 or not 1 <= args.scale <= 3600:
        parser.error("--downloads 1..20000, --hours (0, 24], --scale 1..3600")
    if not 0 <= args.in_flight <= 1000 or not 1 <= args.timeout <= MAX_TIMEOUT_SECONDS:
        parser.error(f"--in-flight 0..1000, --timeout 1..{MAX_TIMEOUT_SECONDS:.0f}")
    if not 0 <= args.workflow_share <= 1:
        parser.error("--workflow-share 0..1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenario with and without the breaker; exit 1 unless the breaker met the goal."""
    args = parse_args(argv)
    config = OutageConfig(
        args.downloads, args.hours, args.scale, args.in_flight, args.workflow_share, args.timeout
    )
    print(
        f"{config.downloads} downloads failing at once ({config.workflow_share:.0%} followed by a workflow), "
        f"{config.in_flight} workflows polling, VideoDB down "
        f"{config.outage_hours:g} h; time x{config.scale:g} "
        f"({config.real(config.outage_hours * 3600):.0f} s real)",
        flush=True,
    )
    goal_met = True
    for breaker in (True, False):
        if args.only and args.only != ("with" if breaker else "without"):
            continue
        result = run_outage(config, breaker, args.verbose)
        print(result.line(), flush=True)
        if breaker:
            goal_met = result.lost == 0 and result.transient_exhausted == 0 and result.unfinished == 0
    return 0 if goal_met else 1


if __name__ == "__main__":
    sys.exit(main())
