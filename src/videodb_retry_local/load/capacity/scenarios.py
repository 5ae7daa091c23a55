"""The scenarios ``make scale`` runs, and the least time each could drain in (its floor).

Each scenario is a stream of failed downloads (all at once, or at a rate for a while), what
their retry jobs do (``job_seconds``, cycled by download index; every ``fail_every``-th first
job fails, so that download needs a second attempt) and how VideoDB and the account behave.
Every number below is an assumption of the model (``spec/NOTES.md``, "Capacity model
assumptions"); ``scale=`` shrinks the download counts for the quick run inside ``make test``.

**The floor** (``drain_floor_seconds``): the least time the binding budget allows, the largest of
- requests: the VideoDB requests the scenario needs at minimum (one POST and one poll per
  attempt: a job whose end the first poll sees) / ``videodb_rps`` (or VideoDB's own rate
  limit, when the scenario sets a lower one);
- concurrency: the Lambda seconds it needs at minimum (one POST and one poll per attempt at the
  scenario's mean latencies) / ``lambda_concurrency``;
- time itself: the latest of each download's arrival plus its job (twice for a download whose
  first job fails), and for the outage, the outage's end plus the job of a download retried then.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from videodb_retry_local.load.capacity.sim_videodb import VideoDBBehaviour
from videodb_retry_local.videodb_sandbox.sandbox_downloads import Script

# Figure 5's mix of job durations (bench/results.md): 50 % 10 s, 30 % 1 min, 15 % 10 min, 5 % 1 h.
MIXED_JOBS = (10.0,) * 10 + (60.0,) * 6 + (600.0,) * 3 + (3600.0,)
HOUR = 3600.0


@dataclass(frozen=True)
class Crowd:
    """The account's other functions holding ``units`` of its concurrency in [start, end)."""

    start: float
    end: float
    units: int

    def load(self, now: float) -> int:
        """Units held by others at ``now``."""
        return self.units if self.start <= now < self.end else 0


@dataclass(frozen=True)
class Scenario:
    """One load on the stack."""

    name: str
    downloads: int
    rate: float | None  # downloads arriving per second; None: all at t = 0
    job_seconds: tuple[float, ...] = MIXED_JOBS
    fail_every: int = 10
    behaviour: VideoDBBehaviour = field(default_factory=VideoDBBehaviour)
    crowd: Crowd | None = None
    account_quota: int = 1000
    reserve_budget: bool = False  # reserve the concurrency budget's split for our functions
    swept: bool = False  # the failures are found by the sweeper (records in error), not sent
    parameters: tuple[tuple[str, str], ...] = ()  # template parameter overrides
    quiet_after: float = 0.0  # the run may end (nothing pending) only after this time
    first_arrival: float = 0.0  # when the first download can reach the queue
    horizon: float = 24 * HOUR  # simulated seconds after the last arrival before the run stops
    sample_every: float = 10.0

    def script(self, index: int) -> Script:
        """What download ``index``'s retry jobs do."""
        fails = 1 if self.fail_every and index % self.fail_every == self.fail_every - 1 else 0
        return Script(processing_seconds=self.job_seconds[index % len(self.job_seconds)], fail_times=fails)

    def arrival(self, index: int) -> float:
        """When download ``index`` is sent."""
        return self.first_arrival + (0.0 if self.rate is None else index / self.rate)

    @property
    def outage_seconds(self) -> float:
        """How long VideoDB is down in the scenario."""
        return sum(end - start for start, end in self.behaviour.outages)

    @property
    def longest_job(self) -> float:
        """The longest job of the scenario."""
        return max(self.job_seconds)

    def attempts(self) -> int:
        """Attempts the scenario needs at least (one per download, two for a failing first job)."""
        extra = sum(1 for i in range(self.downloads) if self.script(i).fail_times)
        return self.downloads + extra

    def floor_seconds(self, lambda_concurrency: int, videodb_rps: int) -> float:
        """The least drain time the budgets allow (see the module docstring)."""
        attempts = self.attempts()
        # VideoDB's own limit binds when it is below our budget (the ratelimited scenario).
        rate = min(videodb_rps, self.behaviour.rate_limit or videodb_rps)
        requests = 2 * attempts / rate
        lambda_seconds = attempts * (self.behaviour.post_latency + self.behaviour.get_latency)
        concurrency = lambda_seconds / lambda_concurrency
        last = max(
            self.arrival(i) + self.job_seconds[i % len(self.job_seconds)] * (1 + self.script(i).fail_times)
            for i in range(self.downloads)
        )
        after_outage = max((end for _, end in self.behaviour.outages), default=0.0) + self.longest_job
        return max(requests, concurrency, last, after_outage)

    def scaled(self, factor: float) -> Scenario:
        """The same scenario with ``factor`` times the downloads (the arrival span shrinks too)."""
        return replace(self, downloads=max(1, int(self.downloads * factor)))


def scenarios() -> list[Scenario]:
    """Every scenario of issue 20, as ``make scale`` runs them."""
    return [
        Scenario("steady", downloads=int(24 * HOUR), rate=1.0, sample_every=60.0, horizon=6 * HOUR),
        Scenario("mass", downloads=100_000, rate=None, horizon=36 * HOUR, sample_every=30.0),
        Scenario(
            "outage",
            downloads=int(4 * HOUR * 5),
            rate=5.0,
            behaviour=VideoDBBehaviour(outages=((600.0, 600.0 + 3 * HOUR),)),
            horizon=12 * HOUR,
            sample_every=30.0,
        ),
        # Jobs of 1 h arriving at 2/s for 1 h: 7,200 jobs running at once at the peak.
        Scenario("slow", downloads=int(HOUR * 2), rate=2.0, job_seconds=(HOUR,), horizon=8 * HOUR),
        # VideoDB accepts 5 requests/s (half the default budget) and answers 429, Retry-After 1.
        Scenario(
            "ratelimited",
            downloads=20_000,
            rate=None,
            behaviour=VideoDBBehaviour(rate_limit=5, retry_after=1),
            horizon=24 * HOUR,
            sample_every=30.0,
        ),
        # The account's other functions hold 990 of its 1,000 units for the first hour while
        # failures arrive at 1/s for 2 h.
        Scenario("crowded", downloads=int(2 * HOUR), rate=1.0, crowd=Crowd(0.0, HOUR, 990), horizon=8 * HOUR),
        # The first sweep of an account with 5,000 downloads in error (SweeperEnabled).
        Scenario(
            "swept",
            downloads=5000,
            rate=None,
            swept=True,
            parameters=(("SweeperEnabled", "true"),),
            quiet_after=16 * 60.0,
            first_arrival=15 * 60.0,  # the first sweep: rate(15 minutes)
            horizon=12 * HOUR,
        ),
        # The same, with the budget's split reserved for our functions (issue 20 item 5's what-if).
        Scenario(
            "crowded-reserved",
            downloads=int(2 * HOUR),
            rate=1.0,
            crowd=Crowd(0.0, HOUR, 990),
            horizon=8 * HOUR,
            reserve_budget=True,
        ),
    ]
