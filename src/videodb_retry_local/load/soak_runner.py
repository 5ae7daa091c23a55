"""Running the soak's shards: one process each (quiet, with quick thread switches), their
observations handed back to the parent, every wait bounded."""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, cast

from videodb_retry_local.load.soak_plan import API_KEY, Case
from videodb_retry_local.load.soak_shard import OVERTIME_FACTOR, SHARD_GRACE_SECONDS, ShardRun
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.moto_env import local_aws
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer


@contextlib.contextmanager
def quick_thread_switches(seconds: float = 0.001) -> Iterator[None]:
    """A shorter GIL switch interval for the run.

    Every loopback HTTP call hands the GIL between the retry function's record threads, the
    sandbox's handler threads and moto's execution threads; at the default 5 ms interval each
    hand-over waits and the shard idles (measured: 1,000 ids in 63 s, 54 s with 1 ms).
    """
    saved = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(saved)


class _Discard(io.TextIOBase):
    """A text stream that keeps nothing."""

    def write(self, text: str) -> int:
        """Drop ``text``."""
        return len(text)


@contextlib.contextmanager
def quiet(verbose: bool = False) -> Iterator[None]:
    """Keep the run's output to its progress lines and table.

    With metrics disabled Powertools still prints its buffer every 100 values, and thousands
    of invocations would print hundreds of EMF lines: stdout is swallowed while the functions
    run (progress is written to the stdout saved before).
    """
    if verbose:
        yield
        return
    saved = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    levels = {name: logging.getLogger(name).level for name in ("moto", "botocore", "urllib3")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    parser_logger = logging.getLogger("moto.stepfunctions.parser")
    parser_level = parser_logger.level
    # moto logs every Fail state at ERROR; here a Fail is a designed ending.
    parser_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(_Discard()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        parser_logger.setLevel(parser_level)
        if saved is None:
            os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
        else:
            os.environ["POWERTOOLS_METRICS_DISABLED"] = saved


def run_shard(
    cases: Sequence[Case],
    parameters: dict[str, str],
    shard: int,
    seed: int,
    deadline: float,
    verbose: bool = False,
    out: Any = None,
) -> dict[str, Any]:
    """Run one shard in this process: its own sandbox and emulated stack."""
    stream = out or sys.stdout

    def log(line: str) -> None:
        print(f"[shard {shard}] {line}", file=stream, flush=True)

    started = time.time()
    with (
        quick_thread_switches(),
        quiet(verbose),
        SandboxServer(api_key=API_KEY, host="127.0.0.1") as sandbox,
        local_aws(),
    ):
        for case in cases:
            if case.script is not None:
                sandbox.script(case.key, **case.script)
        stack = EmulatedStack(API_KEY, {**parameters, "VideoDBApiBaseUrl": sandbox.base_url}).create()
        try:
            from videodb_retry.observability import logger

            level = logger.log_level
            if not verbose:
                # The functions log failures at ERROR; thousands are designed here.
                logger.setLevel(logging.CRITICAL)
            try:
                log(f"{len(cases)} ids, sandbox on {sandbox.base_url}, stack created")
                run = ShardRun(stack, sandbox, cases, seed + shard, log)
                run.run(deadline, overtime_ceiling(started, deadline))
                result = run.collect()
            finally:
                logger.setLevel(level)
        finally:
            stack.close()
    result["totals"]["seconds"] = time.time() - started
    log(
        f"finished in {result['totals']['seconds']:.0f} s"
        + (" (TIMED OUT)" if result["totals"]["timed_out"] else "")
    )
    return result


def overtime_ceiling(started: float, deadline: float) -> float:
    """The latest a shard may run while it still makes progress (see STALL_SECONDS)."""
    return started + OVERTIME_FACTOR * max(0.0, deadline - started)


def _shard_main(
    conn: Any,
    cases: list[Case],
    parameters: dict[str, str],
    shard: int,
    seed: int,
    deadline: float,
    verbose: bool,
) -> None:
    """Entry point of a shard process: run, hand the result back through ``conn``."""
    try:
        conn.send(run_shard(cases, parameters, shard, seed, deadline, verbose))
    except BaseException:
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


def run_shards(
    shards: list[list[Case]],
    parameters: dict[str, str],
    seed: int,
    deadline: float,
    verbose: bool = False,
) -> list[dict[str, Any] | None]:
    """Run every shard (one in this process, several in spawned processes); a shard that
    crashed or did not answer by the deadline plus a grace period gives None."""
    if len(shards) == 1:
        return [run_shard(shards[0], parameters, 0, seed, deadline, verbose)]
    # spawn, not fork: each shard starts without this process's threads or moto state.
    context = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    waiting: dict[Any, int] = {}
    for index, cases in enumerate(shards):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_shard_main,
            args=(sender, cases, parameters, index, seed, deadline, verbose),
            name=f"soak-shard-{index}",
            daemon=True,
        )
        process.start()
        sender.close()
        processes.append(process)
        waiting[receiver] = index
    results: list[dict[str, Any] | None] = [None] * len(shards)
    give_up = overtime_ceiling(time.time(), deadline) + SHARD_GRACE_SECONDS
    while waiting and time.time() < give_up:
        ready = multiprocessing.connection.wait(list(waiting), timeout=max(0.1, give_up - time.time()))
        for end in ready:
            index = waiting.pop(end)
            try:
                # Only the Pipe ends made above are waited on.
                answer: dict[str, Any] = cast(multiprocessing.connection.Connection, end).recv()
            except EOFError:
                answer = {"error": "the shard process ended without an answer"}
            if "error" in answer:
                print(f"[shard {index}] FAILED:\n{answer['error']}", file=sys.stderr, flush=True)
            else:
                results[index] = answer
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():  # only the processes started here, each by its handle
            process.terminate()
            process.join(timeout=5)
    return results
