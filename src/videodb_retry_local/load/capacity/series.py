"""What ``make scale`` plots: the stack sampled over virtual time.

Every ``every`` seconds: our Lambda concurrency (all functions, and each), the retry queue's
depth, running executions; VideoDB's requests per second come from the simulated VideoDB's
per-second counts (the most in any one second of the sample's interval).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import simpy

if TYPE_CHECKING:
    from videodb_retry_local.load.capacity.stack import Stack


@dataclass
class Series:
    """Samples of one run."""

    every: float
    times: list[float] = field(default_factory=list)
    concurrency: list[int] = field(default_factory=list)
    poll_concurrency: list[int] = field(default_factory=list)
    queue_depth: list[int] = field(default_factory=list)
    executions: list[int] = field(default_factory=list)
    videodb_rps: list[int] = field(default_factory=list)

    def sampler(self, env: simpy.Environment, stack: Stack) -> Generator[simpy.Event, Any, None]:
        """The sampling process."""
        while True:
            self.times.append(env.now)
            self.concurrency.append(stack.account.in_use)
            poll = stack.account.functions.get("poll")
            self.poll_concurrency.append(poll.in_use if poll else 0)
            self.queue_depth.append(stack.queue.depth())
            self.executions.append(stack.executions.running)
            yield env.timeout(self.every)

    def fill_rps(self, per_second: dict[int, int]) -> None:
        """VideoDB's busiest second within each sample's interval."""
        self.videodb_rps = [
            max((per_second.get(second, 0) for second in range(int(t), int(t + self.every))), default=0)
            for t in self.times
        ]

    def receives(self, stack: Stack) -> dict[str, float]:
        """What the retry queue's deliveries cost in receives (the crowded scenario's question)."""
        return {"deliveries": stack.queue.receives, "most_by_one_message": stack.queue.most_receives}
