"""The emulated stack on a :class:`~.stepped_clock.SteppedClock`: every wait it would sleep
becomes a virtual one, and a queue consumer drives the time on.

Waits made virtual (each read or slept on the same clock):
- moto's Step Functions: a Wait state, and the pause between a Task's retries (``Retry``);
- the poll function: its ``time.time()`` and its inline ``time.sleep`` (which lets other
  invocations run meanwhile, as separate Lambda environments would);
- the retry function's clock (``started_at``, ``deadline_at`` of a workflow);
- moto's SQS: message delays, visibility timeouts and ``SentTimestamp``;
- the sandbox's clock (when jobs end), given to :class:`SandboxServer` by the caller.

Each moto execution thread is registered with the clock from its start to its end, so the
clock moves only when every execution waits and the consumer has nothing to receive.
"""

from __future__ import annotations

import contextlib
import time
import types
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from videodb_retry_local.capacity.stepped_clock import SteppedClock
from videodb_retry_local.emulated_stack import EmulatedStack
from videodb_retry_local.sqs_event_source import QueueConsumer

# moto shows a message once the time is strictly past its visibility: step just beyond it.
_PAST = 0.001


class ClockStopped(RuntimeError):
    """The run is over (drained, or gave up): a thread still waiting must end, not hang."""


@contextlib.contextmanager
def stepped_time(clock: SteppedClock, stack: EmulatedStack) -> Iterator[None]:
    """Inside, the stack's waits are virtual (see the module's docstring); on leaving, any
    thread still sleeping is woken with :class:`ClockStopped` so that none outlives the run."""
    from moto.sqs import models as sqs_models
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    stopped = False

    def sleep(seconds: float) -> None:
        if stopped:
            raise ClockStopped("the calibration run is over")
        clock.sleep(seconds)
        if stopped:
            raise ClockStopped("the calibration run is over")

    start, logic = ExecutionWorker.start, ExecutionWorker._execution_logic
    parse = ExecutionWorker._get_evaluation_entrypoint
    programs: dict[str, Any] = {}

    def parsed_once(worker: Any) -> Any:
        # moto parses the definition (ANTLR, ~35 ms) for every execution; the parsed program
        # keeps no execution's state (that lives in its Environment), so one parse serves all.
        definition = worker._evaluation_details.state_machine_details.definition
        if definition not in programs:
            programs[definition] = parse(worker)
        return programs[definition]

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

    real_unix_time = sqs_models.unix_time

    def unix_time(dt: Any = None) -> float:  # moto's SQS reads "now" through these two
        return clock() if dt is None else real_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return 1000 * unix_time(dt)

    retry_service = stack.functions["RetryFunction"].module.delivery._service
    with contextlib.ExitStack() as patches:
        for target, name, value in (
            (ExecutionWorker, "start", counted_start),
            (ExecutionWorker, "_execution_logic", counted_logic),
            (ExecutionWorker, "_get_evaluation_entrypoint", parsed_once),
            (WaitFunction, "_wait_interval", lambda _self, _env, seconds: sleep(seconds)),
            (retrier_decl, "time", types.SimpleNamespace(sleep=sleep, time=clock, monotonic=time.monotonic)),
            (stack.functions["PollFunction"].module, "time", _poll_time(clock, sleep)),
            (retry_service, "_clock", clock),
            (sqs_models, "unix_time", unix_time),
            (sqs_models, "unix_time_millis", unix_time_millis),
        ):
            patches.enter_context(mock.patch.object(target, name, value))
        try:
            yield
        finally:
            stopped = True
            clock.release_all()


def _poll_time(clock: SteppedClock, sleep: Callable[[float], None]) -> types.SimpleNamespace:
    """The poll function's ``time``: virtual, and its inline sleep leaves the local runtime's
    one-invocation-at-a-time lock to the others meanwhile (in AWS each sleeping invocation
    holds its own environment, not the whole account)."""
    from videodb_retry_local import lambda_runtime

    # The runtime's lock is an RLock held (maybe re-entered) by this thread: release it whole
    # and take it back whole, as threading.Condition does with the same two methods.
    lock = lambda_runtime._INVOKE_LOCK
    release_save: Callable[[], Any] = getattr(lock, "_release_save")  # noqa: B009
    acquire_restore: Callable[[Any], None] = getattr(lock, "_acquire_restore")  # noqa: B009

    def sleep_outside_the_lock(seconds: float) -> None:
        saved = release_save()
        try:
            sleep(seconds)
        finally:
            acquire_restore(saved)

    return types.SimpleNamespace(time=clock, sleep=sleep_outside_the_lock)


def next_visible(queue_url: str, region: str, now: float) -> float | None:
    """The virtual time the next message of ``queue_url`` not yet visible becomes visible."""
    from moto.sqs.models import sqs_backends

    account, name = queue_url.rstrip("/").split("/")[-2:]
    queue = sqs_backends[account][region].queues[name]
    due = [max(m.visible_at, m.delayed_until) / 1000 for m in list(queue._messages)]
    later = [when for when in due if when > now]
    return min(later) + _PAST if later else None


def drain(clock: SteppedClock, consumer: QueueConsumer, real_timeout: float) -> None:
    """Consume the queue and move the clock on until nothing waits and nothing is queued.

    Raises TimeoutError when ``real_timeout`` seconds of real time pass first (the run's
    bound: a hang in an emulated part must fail the run, not the machine).
    """
    deadline = time.monotonic() + real_timeout
    region = consumer.stack.ids.region
    while time.monotonic() < deadline:
        if consumer.poll_once():
            continue
        if not clock.wait_idle(max(0.0, deadline - time.monotonic())):
            break
        if consumer.poll_once():  # an execution may have re-queued before it slept
            continue
        wakes = [w for w in (clock.next_wake(), next_visible(consumer.queue_url, region, clock())) if w]
        if not wakes:
            return
        clock.advance_to(min(wakes))
    raise TimeoutError(
        f"the emulated run had not drained after {real_timeout:.0f} s of real time "
        f"({clock.sleeping} waits pending at virtual {clock():.1f})"
    )
