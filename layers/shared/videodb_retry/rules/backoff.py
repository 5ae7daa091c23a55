"""Exponential backoff with jitter, used for poll waits and redelivery delays."""

from __future__ import annotations

import random


def exponential_wait(
    step: int,
    first: float,
    factor: float,
    cap: float,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> int:
    """Seconds to wait before try ``step`` (0-based): ``first * factor**step``, capped.

    ``jitter`` spreads waits by up to that fraction either way so that many jobs started
    together do not poll in lock-step; the result is a whole number of seconds (what a
    Step Functions Wait state and an SQS delay take), never below 1 nor above ``cap``.
    """
    if step < 0:
        raise ValueError("step must be >= 0")
    base = first * (factor ** min(step, 64))
    base = min(base, cap)
    if jitter:
        base *= 1 + (rng or random).uniform(-jitter, jitter)
    return max(1, min(round(base), int(cap)))
