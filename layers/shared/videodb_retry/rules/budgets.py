"""The stack's two budgets and how they are split (pure: no clock, no AWS, no environment).

The user sets two numbers (template parameters ``ConcurrencyBudget`` and
``VideoDBRequestsPerSecond``): the most concurrent Lambda executions the four functions may
use together, and the most requests per second they may send VideoDB together. Every VideoDB
request takes a token from a shared per-second window first (``ports.RequestGate``); this
module says how many tokens each class of request gets per window.

The split:

- The retry, breaker and sweeper functions have fixed concurrency: the retry queue's event
  source ``MaximumConcurrency`` (``RetryMaxConcurrency``), one breaker tick, one sweep.
- The poll function's concurrency is what is left. Each poll invocation makes one request and
  lasts at most its hard time limit (the function's ``Timeout``), so admitting ``P`` polls a
  second keeps at most ``P x limit`` of them running (Little's law with the worst duration):
  ``P = min((concurrency - fixed) // limit, rps // 2)``.
- Intake (a retry's POST, a breaker probe, a sweeper page) gets what polls leave, but never
  more than ``P``: ``I = min(rps - P, P)``. Every attempt is one POST and at least one poll,
  so intake faster than polls could never be followed; at ``I = P`` it can, because in a
  backlog polls per attempt fall toward one: a poll the budget refused waits (``poll.py``)
  and the job it follows goes on running meanwhile, so the poll that is admitted mostly
  finds it ended.

With the defaults (50 executions, 10 requests/s, 2 retry instances, polls of at most 8 s):
polls 5/s (5 x 8 s + 4 = 44 <= 50), intake 5/s: all 10 requests/s can be used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class RequestKind(StrEnum):
    """What a VideoDB request is for (which function sends it)."""

    RETRY = "retry"  # POST /download/{id}           (retry function)
    POLL = "poll"  # GET output_url                  (poll function)
    PROBE = "probe"  # the breaker's probe           (breaker function)
    SWEEP = "sweep"  # one page of GET /download     (sweeper function)


class RequestClass(StrEnum):
    """The budget classes: each has its own count per window."""

    POLL = "poll"
    INTAKE = "intake"


def request_class(kind: RequestKind) -> RequestClass:
    """The class whose per-second budget a request of ``kind`` takes from."""
    return RequestClass.POLL if kind is RequestKind.POLL else RequestClass.INTAKE


def window_of(now: float) -> int:
    """The one-second window ``now`` (epoch seconds) falls in."""
    return math.floor(now)


class BudgetTooSmall(ValueError):
    """The budgets cannot hold even one poll a second beside the fixed functions."""


@dataclass(frozen=True)
class Budgets:
    """The two budgets and what the split needs to know (defaults mirror the template)."""

    lambda_concurrency: int = 50
    videodb_rps: int = 10
    # The retry queue's event source MaximumConcurrency (template RetryMaxConcurrency).
    retry_concurrency: int = 2
    # One scheduled tick a minute that ends within it; one sweep per rate (runs shorter than it).
    breaker_concurrency: int = 1
    sweeper_concurrency: int = 1
    # The poll function's Timeout: its request's connect + read timeouts plus a margin.
    poll_time_limit_seconds: int = 8

    def __post_init__(self) -> None:
        if self.videodb_rps < 2:
            raise BudgetTooSmall("VideoDBRequestsPerSecond must be at least 2 (one poll, one intake)")
        if self.poll_time_limit_seconds < 1:
            raise BudgetTooSmall("the poll time limit must be at least 1")
        if self.poll_concurrency < self.poll_time_limit_seconds:
            raise BudgetTooSmall(
                f"ConcurrencyBudget {self.lambda_concurrency} leaves {self.poll_concurrency} executions "
                f"for polls, less than one poll a second needs ({self.poll_time_limit_seconds}): "
                f"at least {self.minimum_concurrency} is needed"
            )

    @property
    def fixed_concurrency(self) -> int:
        """Executions the retry, breaker and sweeper functions may hold at once."""
        return self.retry_concurrency + self.breaker_concurrency + self.sweeper_concurrency

    @property
    def poll_concurrency(self) -> int:
        """Executions left for the poll function."""
        return self.lambda_concurrency - self.fixed_concurrency

    @property
    def minimum_concurrency(self) -> int:
        """The least ConcurrencyBudget that admits one poll a second beside the fixed functions."""
        return self.fixed_concurrency + self.poll_time_limit_seconds

    @property
    def poll_per_second(self) -> int:
        """Polls admitted per window: their worst-case concurrency fits what is left, and they
        take at most half the request budget (intake needs as much: every attempt is one POST
        and, at best, one poll)."""
        by_concurrency = self.poll_concurrency // self.poll_time_limit_seconds
        return max(1, min(by_concurrency, self.videodb_rps // 2))

    @property
    def intake_per_second(self) -> int:
        """POSTs, probes and sweeper pages admitted per window: what polls leave, but no more
        than the polls (an attempt started faster than one poll each could never end)."""
        return max(1, min(self.videodb_rps - self.poll_per_second, self.poll_per_second))

    def per_second(self, kind: RequestKind) -> int:
        """Admissions of ``kind``'s class per one-second window."""
        if request_class(kind) is RequestClass.POLL:
            return self.poll_per_second
        return self.intake_per_second

    def admits(self, kind: RequestKind, used: int) -> bool:
        """True when a request of ``kind`` may go, ``used`` of its class having gone this window."""
        return used < self.per_second(kind)
