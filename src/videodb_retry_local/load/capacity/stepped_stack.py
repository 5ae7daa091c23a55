"""The emulated stack on a :class:`~.stepped_clock.SteppedClock`: every wait it would sleep
becomes a virtual one, and a driver moves the time on when everything waits.

Waits made virtual (each read or slept on the same clock):
- moto's Step Functions: a Wait state, and the pause between a Task's retries (``Retry``);
- the poll function's ``time`` (its request budget's windows, the attempt's deadline);
- the retry function's clock (``started_at``, ``deadline_at`` of a workflow) and its wait for
  the request budget's next window (other invocations run meanwhile, as they would in their
  own Lambda environments);
- every invocation's time left (the Lambda context's ``get_remaining_time_in_millis``);
- moto's SQS: message delays, visibility timeouts and ``SentTimestamp``;
- the sandbox's clock (when jobs end), given to :class:`SandboxServer` by the caller.

The workers the clock waits for: each moto execution thread (from its start to its end), the
queue consumer (a thread of its own, idle while no message is due) and the retry function's
record threads (while its batch runs on them).
"""

from __future__ import annotations

import contextlib
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from videodb_retry_local.load.capacity.stepped_clock import SteppedClock
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.sqs_event_source import QueueConsumer

# moto shows a message once the time is strictly past its visibility: step just beyond it.
_PAST = 0.001
Patch = tuple[Any, str, Any]  # (object, attribute, value) for mock.patch.object


class ClockStopped(RuntimeError):
    """The run is over (drained, or gave up): a thread still waiting must end, not hang."""


@contextlib.contextmanager
def stepped_time(clock: SteppedClock, stack: EmulatedStack) -> Iterator[None]:
    """Inside, the stack's waits are virtual (see the module's docstring); on leaving, any
    thread still waiting is woken with :class:`ClockStopped` so that none outlives the run."""
    stopped = threading.Event()

    def sleep(seconds: float) -> None:
        if not stopped.is_set():
            clock.sleep(seconds)
        if stopped.is_set():
            raise ClockStopped("the calibration run is over")

    with contextlib.ExitStack() as patches:
        for target, name, value in _moto_patches(clock, sleep) + _function_patches(clock, sleep, stack):
            patches.enter_context(mock.patch.object(target, name, value))
        try:
            yield
        finally:
            stopped.set()
            clock.release_all()


def _moto_patches(clock: SteppedClock, sleep: Callable[[float], None]) -> list[Patch]:
    """moto's waits and timers on the clock, and its execution threads counted as workers."""
    from moto.sqs import models as sqs_models
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    start, logic = ExecutionWorker.start, ExecutionWorker._execution_logic
    parse = ExecutionWorker._get_evaluation_entrypoint
    programs: dict[str, Any] = {}
    real_unix_time = sqs_models.unix_time

    def counted_start(worker: Any) -> None:
        clock.started()  # before the thread exists: the driver never sees a gap
        try:
            start(worker)
        except BaseException:
            clock.finished()
            raise

    def counted_logic(worker: Any) -> None:
        try:
            logic(worker)
        finally:
            clock.finished()

    def parsed_once(worker: Any) -> Any:
        # moto parses the definition (ANTLR, ~35 ms) for every execution; the parsed program
        # keeps no execution's state (that lives in its Environment), so one parse serves all.
        definition = worker._evaluation_details.state_machine_details.definition
        if definition not in programs:
            programs[definition] = parse(worker)
        return programs[definition]

    def wait_state(_function: Any, env: Any, wait_seconds: float) -> None:  # moto's own names
        sleep(wait_seconds)

    def unix_time(dt: Any = None) -> float:  # moto's SQS reads "now" through these two
        return clock() if dt is None else real_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return 1000 * unix_time(dt)

    return [
        (ExecutionWorker, "start", counted_start),
        (ExecutionWorker, "_execution_logic", counted_logic),
        (ExecutionWorker, "_get_evaluation_entrypoint", parsed_once),
        (WaitFunction, "_wait_interval", wait_state),
        (retrier_decl, "time", types.SimpleNamespace(sleep=sleep, time=clock, monotonic=time.monotonic)),
        (sqs_models, "unix_time", unix_time),
        (sqs_models, "unix_time_millis", unix_time_millis),
    ]


def _function_patches(
    clock: SteppedClock, sleep: Callable[[float], None], stack: EmulatedStack
) -> list[Patch]:
    """The functions' clocks, their invocations' time left, and the retry function's record
    threads counted as workers."""
    from videodb_retry import observability

    from videodb_retry_local.stack import lambda_runtime

    retry = stack.functions["RetryFunction"].module
    return [
        *_metrics_flushed_under_the_count_lock(observability),
        (stack.functions["PollFunction"].module, "time", types.SimpleNamespace(time=clock, sleep=sleep)),
        (retry.delivery._service, "_clock", clock),
        # The retry function's POST waits for the request budget's next window on this clock.
        (retry.videodb, "_now", clock),
        (retry.videodb, "_sleep", sleep),
        (lambda_runtime, "LocalLambdaContext", _virtual_context(clock)),
        # The local runtime runs one invocation at a time; here invocations wait on the clock
        # (a record waiting for its request budget) while others run,
        # as each would in its own Lambda environment: no lock may be held across a wait.
        (lambda_runtime, "_INVOKE_LOCK", contextlib.nullcontext()),
        *_counted_records(clock, retry.processor),
    ]


def _metrics_flushed_under_the_count_lock(observability: types.ModuleType) -> list[Patch]:
    """Powertools' metric set is one dict for every function in this process; ``count`` adds
    to it under ``_metrics_lock``, and a handler's ``log_metrics`` flushes it (iterates, then
    clears) when the handler returns. In AWS no two invocations share an environment, so the
    flush never meets a count; here invocations overlap (no invoke lock), and a flush that met
    another invocation's count raised ``RuntimeError`` (dictionary changed size) in the
    handler, which the workflow settled as a failed poll. The flush takes the same lock (made
    re-entrant: a count that fills the set flushes inside it)."""
    lock = threading.RLock()
    provider = observability.metrics.provider
    flush = provider.flush_metrics

    def locked_flush(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return flush(*args, **kwargs)

    return [(observability, "_metrics_lock", lock), (provider, "flush_metrics", locked_flush)]


def _virtual_context(clock: SteppedClock) -> type:
    """The local runtime's Lambda context, its time left counted on the clock."""
    from videodb_retry_local.stack.lambda_runtime import LocalLambdaContext

    @dataclass
    class VirtualLambdaContext(LocalLambdaContext):
        virtual_start: float = field(default_factory=clock)

        def get_remaining_time_in_millis(self) -> int:
            return max(0, int((self.timeout_seconds - (clock() - self.virtual_start)) * 1000))

    return VirtualLambdaContext


def _counted_records(clock: SteppedClock, processor: Any) -> list[Patch]:
    """The retry function's batch processor with its record threads counted as workers.

    While a batch runs on the pool, the invoking thread only waits: it hands its count to the
    records (one each, counted before they start) and the last record to end hands it back,
    so no moment passes with the batch counted as idle.
    """
    process, process_record = processor.process, processor._process_record
    running = [0]
    lock = threading.Lock()

    def counted_process() -> Any:
        if processor.max_workers == 1 or len(processor.records) <= 1:
            return process()  # in the invoking thread
        with lock:
            running[0] = len(processor.records)
        for _ in range(running[0] - 1):
            clock.started()
        return process()

    def counted_record(record: Any) -> Any:
        try:
            return process_record(record)
        finally:
            with lock:
                running[0] -= 1
                last = running[0] <= 0
            if not last:
                clock.finished()

    return [(processor, "process", counted_process), (processor, "_process_record", counted_record)]


def next_due(queue_url: str, region: str) -> float | None:
    """The virtual time the queue's next message is (or was) due to be visible, or None."""
    from moto.sqs.models import sqs_backends

    account, name = queue_url.rstrip("/").split("/")[-2:]
    queue = sqs_backends[account][region].queues[name]
    due = [max(m.visible_at, m.delayed_until) / 1000 + _PAST for m in list(queue._messages)]
    return min(due, default=None)


def drain(clock: SteppedClock, consumer: QueueConsumer, real_timeout: float) -> None:
    """Consume the queue (in a worker thread) and move the clock on until nothing waits and
    nothing is queued.

    Raises TimeoutError when ``real_timeout`` seconds of real time pass first (the run's
    bound: a hang in an emulated part must fail the run, not the machine), and what the
    consumer raised, if it did.
    """
    deadline = time.monotonic() + real_timeout
    started_at = clock()
    region = consumer.stack.ids.region
    feeder = _Feeder(clock, consumer)
    feeder.start()
    try:
        while time.monotonic() < deadline:
            if not clock.wait_idle(max(0.0, deadline - time.monotonic())) or feeder.error:
                break
            due = next_due(consumer.queue_url, region)
            if due is not None and due <= clock():
                if clock.poke():  # a message is visible now: the idle consumer takes it now
                    continue
                due = None  # the consumer's batch waits on the clock; it receives after it
            wakes = [w for w in (clock.next_wake(), due) if w is not None]
            if not wakes:
                return
            clock.advance_to(min(wakes))
    finally:
        feeder.stop()
    if feeder.error:
        raise feeder.error
    raise TimeoutError(
        f"the emulated run had not drained after {real_timeout:.0f} s of real time "
        f"({clock.sleeping} waits pending {clock() - started_at:.1f} s into the run, virtual)"
    )


class _Feeder:
    """The queue consumer as a worker thread: it receives while messages are visible, then
    waits for the driver's poke (Lambda's event source mapping polls all the time)."""

    def __init__(self, clock: SteppedClock, consumer: QueueConsumer) -> None:
        self._clock = clock
        self._consumer = consumer
        self._stopping = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="calibration-consumer", daemon=True)

    def start(self) -> None:
        """Count the consumer as working, then start it."""
        self._clock.started()
        self._thread.start()

    def stop(self) -> None:
        """End the consumer's loop and wait for it (bounded)."""
        self._stopping = True
        self._clock.poke()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while not self._stopping:
                if not self._consumer.poll_once():
                    self._clock.wait_for_poke()
        except BaseException as exc:  # handed to the driver, which raises it
            self.error = exc
        finally:
            self._clock.finished()
