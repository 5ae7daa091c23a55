"""Figure 4: Secrets Manager GetSecretValue calls of one warm retry function container.

1,000 records in 100 invocations of one loaded handler (one warm container), with the
template's ``SecretCacheTtlSeconds``; every GetSecretValue that reaches moto is counted (a
wrapper around moto's ``SecretsManagerBackend.get_secret_value``), with the time it happened.

- run A: the 100 invocations back to back (all inside one TTL);
- run B: the same, 36 s of virtual time apart (one hour, twelve TTLs): Powertools' parameter
  cache reads a virtual ``datetime.now()``, so its expiry is exercised without waiting;
- baseline: run A with ``SECRET_CACHE_TTL_SECONDS=0`` (no cache: one read per API call).

The target "≤ 1 per TTL" is checked as: no TTL-long window holds more than one call.
Other AWS calls get the in-memory fakes (figure 1), the sandbox answers at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from bench.common import (
    FakeAws,
    Figure,
    Row,
    VirtualClock,
    bench_stack,
    call,
    command,
    load_function,
    new_downloads,
    quiet,
    sqs_event,
)

KEY = "secrets"


@contextlib.contextmanager
def counting_reads(clock: Callable[[], float]) -> Iterator[list[float]]:
    """Times (by ``clock``) of every GetSecretValue that reaches moto."""
    from moto.secretsmanager.models import SecretsManagerBackend

    reads: list[float] = []
    original = SecretsManagerBackend.get_secret_value

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(clock())
        return original(self, *args, **kwargs)

    with mock.patch.object(SecretsManagerBackend, "get_secret_value", counted):
        yield reads


@contextlib.contextmanager
def virtual_cache_time(clock: VirtualClock) -> Iterator[None]:
    """Powertools' parameter cache sees ``clock`` as ``datetime.now()``."""
    from aws_lambda_powertools.utilities.parameters import base

    class VirtualDatetime(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            return dt.datetime.fromtimestamp(clock(), tz)

    with mock.patch.object(base, "datetime", VirtualDatetime):
        yield


def max_in_window(times: list[float], window: float) -> int:
    """Most calls inside any window ``window`` seconds long (≥ 1 if there were calls)."""
    ordered, most = sorted(times), 0
    for i, start in enumerate(ordered):
        inside = sum(1 for t in ordered[i:] if t - start < window)
        most = max(most, inside)
    return most


def _run(
    function: Any, sandbox: Any, invocations: int, batch_size: int, between: Callable[[], None] | None = None
) -> None:
    for i in range(invocations):
        if i and between is not None:
            between()
        result = call(function, sqs_event(new_downloads(sandbox, "secret", batch_size)))
        if result.get("batchItemFailures"):
            raise RuntimeError(f"benchmark batch had failures: {result}")


def measure(invocations: int = 100, batch_size: int = 10, spread_seconds: float = 3600.0) -> Figure:
    """GetSecretValue calls: template TTL (real and virtual time) vs no cache."""
    figure = Figure(KEY, "Secrets Manager calls")
    records = invocations * batch_size
    clock = VirtualClock()
    step = spread_seconds / max(1, invocations - 1)
    with bench_stack(latency_seconds=0.0) as (sandbox, stack), quiet(), counting_reads(clock) as reads:
        ttl = int(stack.template.parameters["SecretCacheTtlSeconds"])
        fakes = FakeAws()

        function = load_function(stack, "RetryFunction")  # a new warm container: empty cache
        fakes.install()
        reads.clear()
        _run(function, sandbox, invocations, batch_size)
        run_a = list(reads)

        function = load_function(stack, "RetryFunction")
        fakes.install()
        reads.clear()
        with virtual_cache_time(clock):
            _run(function, sandbox, invocations, batch_size, between=lambda: clock.advance(step))
        run_b = list(reads)
        span_b = clock() - (run_b[0] if run_b else clock())
        clock.reset()

        function = load_function(stack, "RetryFunction", {"SECRET_CACHE_TTL_SECONDS": "0"})
        fakes.install()
        reads.clear()
        started = time.perf_counter()
        _run(function, sandbox, invocations, batch_size)
        baseline = list(reads)
        baseline_seconds = time.perf_counter() - started

    window = max(ttl, 1)
    most_a, most_b = max_in_window(run_a, window), max_in_window(run_b, window)
    figure.data = {
        "ttl_s": ttl,
        "records": records,
        "invocations": invocations,
        "calls_real_time": len(run_a),
        "calls_virtual_hour": len(run_b),
        "virtual_span_s": span_b,
        "max_per_ttl_real_time": most_a,
        "max_per_ttl_virtual_hour": most_b,
        "calls_no_cache": len(baseline),
    }
    figure.rows.append(
        Row(
            figure=f"4. Secrets Manager GetSecretValue: {records:,} records in {invocations} invocations "
            "of one warm container",
            measured=f"{len(run_a)} call(s) back to back; {len(run_b)} calls over {span_b / 3600:.1f} h "
            f"virtual (max {most_b} per {ttl} s)",
            baseline=f"{len(baseline):,} calls (SecretCacheTtlSeconds=0)",
            ratio=f"{len(run_a) / max(1, len(baseline)):.4f}x",
            target=f"≤ 1 per TTL ({ttl} s)",
            met=most_a <= 1 and most_b <= 1,
            command=command(KEY),
        )
    )
    figure.notes += [
        f"TTL from the template's SecretCacheTtlSeconds default: {ttl} s. Calls counted where they "
        "reach moto (a wrapper on `SecretsManagerBackend.get_secret_value`).",
        f"Virtual hour: invocations {step:.0f} s apart on a virtual clock that Powertools' parameter "
        f"cache reads as `datetime.now()`; {len(run_b)} calls for {span_b / ttl:.1f} TTLs of time, at most "
        f"{most_b} in any {ttl} s window.",
        f"Without the cache every API call reads the secret: {len(baseline):,} reads for {records:,} "
        f"records ({baseline_seconds:.1f} s for the run).",
    ]
    return figure
