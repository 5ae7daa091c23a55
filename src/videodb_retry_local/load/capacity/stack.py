"""The deployed stack in SimPy: the retry queue and its mapping, the three functions on the
account's concurrency, the workflow interpreted from its definition, the breaker's schedule.

:class:`Stack` wires the layer's real rules (``RetryService``, ``RecordDelivery``,
``OutcomeCounter``, ``Breaker``, ``poll.follow_job``) to the in-memory ports of ``sim_ports``
exactly as ``functions/*/app.py`` wire them to the AWS adapters; ``Wiring`` lets a design put
a wrapper (the request gate) around VideoDB per function, as its handlers do.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy
from videodb_retry.steps.breaker_control import Breaker, OutcomeCounter, probe_answered
from videodb_retry.steps.record_delivery import RecordDelivery
from videodb_retry.steps.retry_attempt import RetryService
from videodb_retry.steps.retry_sequences import RetrySequences

from videodb_retry_local.load.capacity import aws_quotas, functions
from videodb_retry_local.load.capacity.asl import Interpreter, Run, TaskFailure
from videodb_retry_local.load.capacity.deployment import Deployment
from videodb_retry_local.load.capacity.gate import Gated, SimDeferrals
from videodb_retry_local.load.capacity.sim_lambda import Account, Function, HotKeys, TokenBucket
from videodb_retry_local.load.capacity.sim_ports import (
    Announcer,
    BreakerStore,
    DeadLetters,
    Ledger,
    Outcomes,
    Record,
    Sequences,
    Switch,
    Visibility,
    Workflows,
)
from videodb_retry_local.load.capacity.sim_sqs import Queue, Received
from videodb_retry_local.load.capacity.sim_videodb import SimVideoDB
from videodb_retry_local.load.capacity.sweeping import sweeper_schedule

# Fail states the workflow reaches when the poll function could not run at all (throttled or
# failing longer than the workflow retries it): announced, but ended by the throttle.
ENDED_BY_THROTTLE = frozenset({"PollStepUnavailable"})
AWS_TASK_SECONDS = 0.03  # assumed latency of a Step Functions service integration call
BREAKER_TICK_SECONDS = 60  # the schedule's rate(1 minute)

# How a design wires VideoDB for a function ("retry", "poll", "breaker"): identity by default.
Wiring = Callable[[str, SimVideoDB, "Stack"], Any]


def plain_wiring(function: str, videodb: SimVideoDB, stack: Stack) -> Any:
    """Today's design: every function calls VideoDB directly."""
    return videodb


@dataclass
class Executions:
    """Step Functions executions: started, running, billed, and how they ended."""

    started: int = 0
    running: int = 0
    peak_running: int = 0
    transitions: int = 0
    without_outcome: Counter[str] = field(default_factory=Counter)  # error -> executions
    by_throttle: Counter[str] = field(default_factory=Counter)  # Fail state -> executions


class Stack:
    """The stack deployed on one account, on one SimPy environment."""

    def __init__(
        self,
        env: simpy.Environment,
        deployed: Deployment,
        videodb: SimVideoDB,
        account: Account,
        rng: random.Random,
        wiring: Wiring = plain_wiring,
    ) -> None:
        self.env, self.deployed, self.videodb, self.account = env, deployed, videodb, account
        self.clock = videodb.clock
        self.record = Record()
        self.hot = HotKeys()
        self.queue = Queue(env, deployed.visibility_timeout, deployed.max_receive_count, self._wake)
        self.executions = Executions()
        self.batches_running = 0
        self.gated: Gated | None = None  # set by gate.gated_wiring
        self.sweeps_failed = 0
        self._running_ids: Counter[str] = Counter()
        self._wakeup: simpy.Event = env.event()
        for name, spec in deployed.functions.items():
            account.add(Function(name, spec.memory_mb, spec.timeout_seconds, spec.reserved))
        self.starts = TokenBucket(aws_quotas.value("sfn_start_bucket"), aws_quotas.value("sfn_start_refill"))
        self.transitions = TokenBucket(
            aws_quotas.value("sfn_transition_bucket"), aws_quotas.value("sfn_transition_refill")
        )
        self._wire_retry(wiring)
        self._wire_breaker(wiring)
        self.poll_videodb = wiring("poll", videodb, self)
        self._sweeper_videodb = wiring("sweeper", videodb, self) if "sweeper" in deployed.functions else None
        integrations = {
            "arn:aws:states:::lambda:invoke": self._lambda_invoke,
            "arn:aws:states:::sqs:sendMessage": self._send_message,
            "arn:aws:states:::events:putEvents": self._put_events,
            "arn:aws:states:::dynamodb:updateItem": self._update_item,
        }
        states = deployed.definition["States"].values()
        self._fail_errors = {state.get("Error") for state in states if state["Type"] == "Fail"}
        self.interpreter = Interpreter(
            deployed.definition,
            integrations,
            rng,
            on_transition=lambda: self.transitions.wait_for_token(env.now),
        )

    def _wire_retry(self, wiring: Wiring) -> None:
        settings, clock = self.deployed.retry.settings, self.clock
        self.ledger = Ledger(clock, settings.idempotency_expiry_seconds, self.hot)
        self.workflows = Workflows(clock, self.starts, self._start_execution)
        # One store for both functions, as both read the idempotency table (sequence_aws).
        self.sequences = RetrySequences(Sequences(clock, self.hot), settings.idempotency_expiry_seconds)
        service = RetryService(
            settings=settings,
            videodb=wiring("retry", self.videodb, self),
            dead_letters=DeadLetters(clock, self.record),
            workflows=self.workflows,
            outcomes=Outcomes(clock, self.queue, self.record, settings.requeue_delay_seconds),
            ledger=self.ledger,
            sequences=self.sequences,
            clock=clock.time,
        )
        self.deferrals = SimDeferrals(clock, self.queue)
        self.delivery = RecordDelivery(settings, service, Visibility(clock, self.queue), self.deferrals)
        self.breaker_store = BreakerStore(clock, self.hot)
        self.counter = (
            OutcomeCounter(self.deployed.thresholds, self.breaker_store, clock.time)
            if self.deployed.breaker_enabled
            else None
        )

    def _wire_breaker(self, wiring: Wiring) -> None:
        self.switch = Switch(True, self.deployed.max_concurrency, on_change=self._wake)
        # Any: the wiring's VideoDB (gated or not); never probed when the breaker is disabled.
        probe_videodb: Any = wiring("breaker", self.videodb, self) if self.deployed.breaker_enabled else None
        self.breaker = Breaker(
            self.deployed.thresholds,
            self.breaker_store,
            self.switch,
            Announcer(self.record),
            probe=lambda: probe_answered(probe_videodb),
            clock=self.clock.time,
        )

    # -- processes ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the mapping's pollers and the breaker's schedule."""
        self.env.process(self._mapping())
        if self.deployed.breaker_enabled:
            self.env.process(self._breaker_schedule())
        if self._sweeper_videodb is not None:
            self.env.process(sweeper_schedule(self, self._sweeper_videodb))

    def _mapping(self) -> Generator[simpy.Event, Any, None]:
        """The event source mapping: batches while under MaximumConcurrency and the breaker
        lets it; a throttled batch waits out its visibility timeout."""
        while True:
            now = self.env.now
            limit = self.switch.concurrency if self.switch.enabled else 0
            throttled = False
            while self.batches_running < limit:
                batch = self.queue.receive(self.deployed.batch_size, now)
                if not batch:
                    break
                if not self._invoke_retry(batch, now):
                    throttled = True  # the mapping backs off (1 s) before its next receive
                    break
            # Sleep until something can change: a send, a batch ending, the breaker switching
            # (each wakes it), the next message becoming visible, or 1 s after a throttle.
            self._wakeup = self.env.event()
            upcoming = self.queue.next_visible()
            if throttled:
                yield self.env.any_of([self._wakeup, self.env.timeout(1.0)])
            elif self.batches_running >= limit or upcoming is None:
                yield self._wakeup
            else:
                yield self.env.any_of([self._wakeup, self.env.timeout(max(0.01, upcoming - now))])

    def running_downloads(self) -> set[str]:
        """Downloads whose workflow execution is running."""
        return {download_id for download_id, running in self._running_ids.items() if running > 0}

    def _wake(self) -> None:
        if not self._wakeup.triggered:
            self._wakeup.succeed()

    def _invoke_retry(self, batch: list[Received], now: float) -> bool:
        if not self.account.acquire("retry", now):
            return False
        spec = self.deployed.retry
        if self.gated is not None:  # TimeLeft reads the invocation's context
            self.gated.retry_context.deadline = now + spec.timeout_seconds
        run = functions.retry_batch(
            self.clock,
            self.delivery,
            self.counter,
            self.queue,
            batch,
            now,
            spec.settings,
            spec.timeout_seconds,
        )
        self.batches_running += 1
        self.account.release_at("retry", run.duration)
        done = self.env.timeout(run.duration)
        done.callbacks.append(self._batch_done)
        return True

    def _batch_done(self, _: simpy.Event) -> None:
        self.batches_running -= 1
        self._wake()

    def _breaker_schedule(self) -> Generator[simpy.Event, Any, None]:
        """EventBridge Scheduler's rate(1 minute), no retries: a throttled tick is dropped."""
        spec = self.deployed.functions["breaker"]
        while True:
            yield self.env.timeout(BREAKER_TICK_SECONDS)
            now = self.env.now
            if self.account.acquire("breaker", now):
                run = functions.breaker_tick(self.clock, self.breaker, now)
                self.account.release_at("breaker", min(run.duration, spec.timeout_seconds))

    def _start_execution(self, name: str, state: dict[str, Any], at: float) -> None:
        self.env.process(self._execution(name, state, at - self.env.now))

    def _execution(self, name: str, state: dict[str, Any], delay: float) -> Generator[simpy.Event, Any, None]:
        if delay > 0:
            yield self.env.timeout(delay)
        executions = self.executions
        executions.started += 1
        executions.running += 1
        self._running_ids[str(state.get("download_id"))] += 1
        executions.peak_running = max(executions.peak_running, executions.running)
        run = yield from self.interpreter.run(self.env, Run(name, state))
        executions.running -= 1
        self._running_ids[str(state.get("download_id"))] -= 1
        executions.transitions += run.transitions
        if run.status == "SUCCEEDED":
            return
        if run.error in ENDED_BY_THROTTLE:
            executions.by_throttle[str(run.error)] += 1
        elif run.error not in self._fail_errors:
            executions.without_outcome[str(run.error)] += 1

    # -- service integrations of the workflow -------------------------------------------

    def _lambda_invoke(self, parameters: dict[str, Any], run: Run) -> Generator[simpy.Event, Any, Any]:
        name = _function_of(str(parameters["FunctionName"]), self.deployed)
        start = self.env.now
        if not self.account.acquire(name, start):
            raise TaskFailure("Lambda.TooManyRequestsException", "Rate Exceeded.")
        spec = self.deployed.functions[name]
        outcome = functions.poll_invocation(
            self.clock,
            self.poll_videodb,
            self.sequences,
            spec.settings,
            parameters["Payload"],
            start,
            spec.timeout_seconds,
        )
        self.account.release_at(name, outcome.duration)
        yield self.env.timeout(outcome.duration)
        if outcome.error is not None:
            raise TaskFailure(outcome.error, outcome.cause)
        return {"Payload": outcome.result, "StatusCode": 200}

    def _send_message(self, parameters: dict[str, Any], run: Run) -> Generator[simpy.Event, Any, Any]:
        yield self.env.timeout(AWS_TASK_SECONDS)
        if "DeadLetterQueue" in str(parameters["QueueUrl"]):
            attributes = parameters.get("MessageAttributes", {})
            code = attributes.get("error_code", {}).get("StringValue", "unknown")
            download_id = attributes.get("download_id", {}).get("StringValue")
            self.record.dead_letter(str(code), download_id, self.env.now)
        else:
            self.queue.send(
                str(parameters["MessageBody"]), self.env.now, int(parameters.get("DelaySeconds", 0))
            )
        return {"MessageId": "sim"}

    def _put_events(self, parameters: dict[str, Any], run: Run) -> Generator[simpy.Event, Any, Any]:
        yield self.env.timeout(AWS_TASK_SECONDS)
        for entry in parameters["Entries"]:
            self.record.outcome(str(entry["DetailType"]), dict(entry["Detail"]), self.env.now)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "sim"}]}

    def _update_item(self, parameters: dict[str, Any], run: Run) -> Generator[simpy.Event, Any, Any]:
        yield self.env.timeout(AWS_TASK_SECONDS)
        key = str(sorted(parameters.get("Key", {}).items()))
        if not self.hot.write(key, self.env.now):
            raise TaskFailure("DynamoDB.ProvisionedThroughputExceededException", "hot key")
        return {}


def _function_of(arn: str, deployed: Deployment) -> str:
    """Which of the stack's functions an ARN (or name) in the definition names."""
    from videodb_retry_local.load.capacity.deployment import FUNCTIONS

    for name, logical_id in FUNCTIONS.items():
        if logical_id in arn and name in deployed.functions:
            return name
    raise TaskFailure("Lambda.ResourceNotFoundException", f"no function {arn}")
