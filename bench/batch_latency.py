"""Figure 1: a batch of 10 records through the retry function's real ``lambda_handler`` while
the VideoDB sandbox answers each call in 100 ms, against one call's latency.

- one call: a single ``requests`` POST ``/download/{id}`` to the same sandbox;
- measured: the handler as configured (records run concurrently, ``RetryBatchConcurrency``);
- baseline: the same handler with ``RETRY_BATCH_CONCURRENCY=1`` (one record at a time).

AWS: the handler's DynamoDB (idempotency), Step Functions, SQS and EventBridge calls get
instant canned answers (:class:`bench.common.FakeAws`); the secret is read from moto. One
informational run with moto answering everything shows why: moto's StartExecution parses the
state machine in-process on every call, and that, not the function, would be measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.common import (
    API_KEY,
    FakeAws,
    Figure,
    Row,
    batch_concurrency_supported,
    bench_stack,
    call,
    command,
    load_function,
    median,
    ms,
    new_downloads,
    quiet,
    ratio,
    sqs_event,
)
from videodb_retry_local.stack.presets import BUDGETS_NEVER_BINDING

KEY = "batch"
TARGET = 1.5  # batch latency at most this many times one call's


def one_call(session: requests.Session, sandbox: Any) -> float:
    """Seconds for one POST /download/{id} to the sandbox."""
    (download_id,) = new_downloads(sandbox, "one", 1)
    started = time.perf_counter()
    answer = session.post(
        f"{sandbox.base_url}/download/{download_id}", headers={"x-access-token": API_KEY}, timeout=10
    )
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed


def one_batch(function: Any, sandbox: Any, size: int) -> float:
    """Seconds for one invocation with ``size`` new records; every record must succeed."""
    event = sqs_event(new_downloads(sandbox, "batch", size))
    started = time.perf_counter()
    result = call(function, event)
    elapsed = time.perf_counter() - started
    if result.get("batchItemFailures"):
        raise RuntimeError(f"benchmark batch had failures: {result}")
    return elapsed


@dataclass(frozen=True)
class Setup:
    """How much is measured, and how slow the sandbox answers."""

    batches: int
    calls: int
    latency_seconds: float
    batch_size: int
    moto_batches: int


@dataclass
class Samples:
    """Seconds per single call and per batch, each way, and the AWS calls the fakes answered."""

    singles: list[float] = field(default_factory=list)
    one_by_one: list[float] = field(default_factory=list)
    together: list[float] = field(default_factory=list)
    in_moto: list[float] = field(default_factory=list)
    aws_calls: dict[str, int] = field(default_factory=dict)


def measure(
    batches: int = 7,
    calls: int = 15,
    latency_seconds: float = 0.1,
    batch_size: int = 10,
    moto_batches: int = 2,
) -> Figure:
    """Median batch latency, concurrent vs one by one, against one call's median latency."""
    setup = Setup(batches, calls, latency_seconds, batch_size, moto_batches)
    figure = Figure(KEY, "Batch latency")
    supported = batch_concurrency_supported()
    samples = take_samples(setup)
    add_rows(figure, setup, samples, supported)
    add_notes(figure, setup, samples, supported)
    return figure


def take_samples(setup: Setup) -> Samples:
    """Single calls and batches, interleaved, on one emulated stack (after a warm-up)."""
    samples = Samples()
    # Budgets that never bind: the figure measures the handler, not the request budget's pace.
    budgets = BUDGETS_NEVER_BINDING
    with bench_stack(latency_seconds=setup.latency_seconds, overrides=budgets) as (sandbox, stack), quiet():
        fakes = FakeAws()
        sequential = load_function(stack, "RetryFunction", {"RETRY_BATCH_CONCURRENCY": "1"})
        fakes.install()
        concurrent = load_function(stack, "RetryFunction")
        fakes.install()
        session = requests.Session()
        # Warm: the secret, the thread pool, the clients' first requests.
        one_call(session, sandbox)
        for function in (sequential, concurrent):
            one_batch(function, sandbox, setup.batch_size)
        for i in range(max(setup.calls, setup.batches)):  # interleaved, so drift hits all three alike
            if i < setup.calls:
                samples.singles.append(one_call(session, sandbox))
            if i < setup.batches:
                samples.one_by_one.append(one_batch(sequential, sandbox, setup.batch_size))
                samples.together.append(one_batch(concurrent, sandbox, setup.batch_size))
        if setup.moto_batches:
            # Informational: the same handler with moto answering every AWS call.
            all_moto = load_function(stack, "RetryFunction")
            one_batch(all_moto, sandbox, setup.batch_size)
            samples.in_moto = [
                one_batch(all_moto, sandbox, setup.batch_size) for _ in range(setup.moto_batches)
            ]
        samples.aws_calls = {name: count for name, count in sorted(fakes.calls.items())}
    return samples


def add_rows(figure: Figure, setup: Setup, samples: Samples, supported: bool) -> None:
    """The figure's raw numbers and its table rows (1, and 1b when moto was measured)."""
    single, measured = median(samples.singles), median(samples.together)
    baseline = median(samples.one_by_one)
    in_moto = samples.in_moto
    versus_call = measured / single
    figure.data = {
        "one_call_s": single,
        "batch_s": measured,
        "batch_one_by_one_s": baseline,
        "batch_in_moto_s": median(in_moto) if in_moto else None,
        "versus_one_call": versus_call,
        "concurrency_setting_present": supported,
        "batch_size": setup.batch_size,
    }
    figure.rows.append(
        Row(
            figure=f"1. Batch latency: {setup.batch_size} records, API {setup.latency_seconds * 1000:.0f} ms "
            "(AWS calls: in-memory fakes)",
            measured=f"{ms(measured)} = {versus_call:.2f}x one call ({ms(single)})",
            baseline=f"{ms(baseline)} one by one (RETRY_BATCH_CONCURRENCY=1)",
            ratio=ratio(measured / baseline),
            target=f"≤ {TARGET}x one call",
            met=versus_call <= TARGET,
            command=command(KEY),
        )
    )
    if in_moto:
        figure.rows.append(
            Row(
                figure="1b. Same batch with moto answering the AWS calls (informational)",
                measured=f"{ms(median(in_moto))} = {median(in_moto) / single:.2f}x one call",
                baseline=ms(measured) + " with fakes",
                ratio=ratio(median(in_moto) / measured),
                target="—",
                met=None,
                command=command(KEY),
            )
        )


def add_notes(figure: Figure, setup: Setup, samples: Samples, supported: bool) -> None:
    """How the figure was taken, for results.md."""
    in_moto = samples.in_moto
    figure.notes += [
        f"Medians of {setup.batches} batches each (interleaved) and {setup.calls} single POSTs; the "
        f"sandbox holds every answer {setup.latency_seconds * 1000:.0f} ms "
        "(`SandboxServer(latency_seconds=...)`).",
        "The handler is functions/retry/app.py loaded as the emulated stack loads it (fresh import, "
        "the template's environment), inside moto. Its DynamoDB, Step Functions, SQS and "
        "EventBridge calls are answered by in-memory fakes installed as a botocore `before-send` "
        "hook on its own clients: botocore still serialises, signs and parses every call. "
        "Secrets Manager stays moto (read once, cached).",
        "AWS calls answered by the fakes over the whole figure: "
        + ", ".join(f"{name} {count}" for name, count in samples.aws_calls.items()),
    ]
    if in_moto:
        figure.notes.append(
            f"With moto answering everything the batch takes {ms(median(in_moto))}: moto's "
            "StartExecution parses the state machine definition with ANTLR in this process on every "
            "call, so moto's own overhead dominates; that is why the figure uses the fakes."
        )
    if not supported:
        figure.notes.append(
            "RETRY_BATCH_CONCURRENCY is not read by the retry function at this commit: measured and "
            "baseline are the same sequential handler."
        )
