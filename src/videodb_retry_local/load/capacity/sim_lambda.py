"""Lambda as the account runs it: one concurrency pool, reserved concurrency, the scaling rate.

An invocation asks :meth:`Account.acquire` for a unit at the virtual time it starts; it gets
one, or is throttled (``False``) when the function's reserved concurrency is used up, when the
unreserved pool (the account's quota less every reservation, less what the account's *other*
functions hold at that moment) is, or when the function would need a new execution
environment faster than 1,000 per 10 s (refilled continuously). Sources: ``aws_quotas``
(``lambda_account_concurrency``, ``lambda_scaling_per_10s``, ``lambda_unreserved_minimum``).

The unit is held for the invocation's whole duration (its sleeps included) and released by
:meth:`release_at`. Billing: requests and GB-seconds per function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from videodb_retry_local.load.capacity import aws_quotas

ENVIRONMENT_REFILL_PER_SECOND = aws_quotas.value("lambda_scaling_per_10s") / 10


@dataclass
class Function:
    """One function's configuration and what it used."""

    name: str
    memory_mb: int
    timeout_seconds: float
    reserved: int | None = None  # ReservedConcurrentExecutions, if the design sets one
    in_use: int = 0
    peak: int = 0
    environments: int = 0  # execution environments created (never reclaimed in the model)
    invocations: int = 0
    throttles: int = 0
    gb_seconds: float = 0.0


@dataclass
class Account:
    """The account's concurrency pool, shared by our functions and everyone else's."""

    env: simpy.Environment
    quota: int
    other_load: Callable[[float], int] = lambda now: 0  # units the account's other functions hold
    functions: dict[str, Function] = field(default_factory=dict)
    in_use: int = 0
    peak: int = 0
    _scale_tokens: dict[str, float] = field(default_factory=dict)
    _scale_at: dict[str, float] = field(default_factory=dict)

    def add(self, function: Function) -> None:
        """Deploy ``function``; refused, as Lambda refuses it, if its reservation would leave
        the account less unreserved concurrency than the minimum."""
        reserved = sum(f.reserved or 0 for f in self.functions.values()) + (function.reserved or 0)
        if function.reserved and self.quota - reserved < aws_quotas.value("lambda_unreserved_minimum"):
            raise ValueError(f"{function.name}: reserving {function.reserved} leaves the account too little")
        self.functions[function.name] = function

    def acquire(self, name: str, now: float) -> bool:
        """A unit for an invocation of ``name`` starting at ``now``; False: throttled."""
        function = self.functions[name]
        if not self._has_room(function, now) or not self._may_scale(function, now):
            function.throttles += 1
            return False
        function.in_use += 1
        function.invocations += 1
        function.peak = max(function.peak, function.in_use)
        function.environments = max(function.environments, function.in_use)
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        return True

    def release_at(self, name: str, seconds: float) -> None:
        """Bill ``seconds`` of ``name`` and give its unit back ``seconds`` from now."""
        function = self.functions[name]
        function.gb_seconds += seconds * function.memory_mb / 1024
        event = self.env.timeout(max(0.0, seconds))
        event.callbacks.append(lambda _: self._release(function))

    def _release(self, function: Function) -> None:
        function.in_use -= 1
        self.in_use -= 1

    def _has_room(self, function: Function, now: float) -> bool:
        if function.reserved is not None:
            return function.in_use < function.reserved
        reserved = sum(f.reserved or 0 for f in self.functions.values())
        unreserved_used = sum(f.in_use for f in self.functions.values() if f.reserved is None)
        return unreserved_used + self.other_load(now) < self.quota - reserved

    def _may_scale(self, function: Function, now: float) -> bool:
        if function.in_use < function.environments:
            return True  # a warm environment is free
        cap = aws_quotas.value("lambda_scaling_per_10s")
        tokens = self._scale_tokens.get(function.name, cap)
        elapsed = now - self._scale_at.get(function.name, now)
        tokens = min(cap, tokens + elapsed * ENVIRONMENT_REFILL_PER_SECOND)
        self._scale_at[function.name] = now
        if tokens < 1:
            self._scale_tokens[function.name] = tokens
            return False
        self._scale_tokens[function.name] = tokens - 1
        return True


@dataclass
class TokenBucket:
    """A token bucket (Step Functions StartExecution and transitions, PutEvents...)."""

    size: float
    refill_per_second: float
    tokens: float = -1.0
    at: float = 0.0
    refused: int = 0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.size

    def take(self, now: float) -> bool:
        """One token at ``now``; False (counted) when the bucket is empty."""
        self._refill(now)
        if self.tokens < 1:
            self.refused += 1
            return False
        self.tokens -= 1
        return True

    def wait_for_token(self, now: float) -> float:
        """Seconds until a token is there (taking it): the delay of a throttled transition."""
        self._refill(now)
        self.tokens -= 1
        if self.tokens >= 0:
            return 0.0
        self.refused += 1
        return -self.tokens / self.refill_per_second

    def _refill(self, now: float) -> None:
        # Invocations run on their own clocks, so calls come slightly out of order: never drain.
        self.tokens = min(self.size, self.tokens + max(0.0, now - self.at) * self.refill_per_second)
        self.at = max(self.at, now)


@dataclass
class HotKeys:
    """DynamoDB writes per key per second: one key is one partition (1,000 writes/s)."""

    limit: float = aws_quotas.value("ddb_partition_wcu")
    writes: dict[tuple[str, int], int] = field(default_factory=dict)
    throttled: int = 0
    total_writes: int = 0

    def write(self, key: str, now: float) -> bool:
        """Count one write of ``key`` at ``now``; False (counted) beyond the partition's rate."""
        slot = (key, int(now))
        used = self.writes.get(slot, 0)
        if used >= self.limit:
            self.throttled += 1
            return False
        self.writes[slot] = used + 1
        self.total_writes += 1
        return True
