"""Running a scenario through the modelled stack, and what it shows.

:func:`run_scenario` deploys the template (with parameter overrides) on a simulated account,
sends the scenario's downloads, runs until every download has ended (an outcome that is final, or
a dead letter) and nothing is pending, or the scenario's horizon, and counts. :func:`model_counts`
is the calibration's side of it (CALIBRATION-INTERFACE: the same scripted downloads the emulated
stack runs). Runs are seeded and deterministic.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy

from videodb_retry_local.load.capacity import functions
from videodb_retry_local.load.capacity.bounds import split_bound_seconds
from videodb_retry_local.load.capacity.costs import cost_usd
from videodb_retry_local.load.capacity.counts import Counts
from videodb_retry_local.load.capacity.deployment import Deployment, deployment
from videodb_retry_local.load.capacity.gate import gated_wiring
from videodb_retry_local.load.capacity.scenarios import Scenario
from videodb_retry_local.load.capacity.series import Series
from videodb_retry_local.load.capacity.sim_lambda import Account
from videodb_retry_local.load.capacity.sim_sqs import Message
from videodb_retry_local.load.capacity.sim_videodb import SimVideoDB, VideoDBBehaviour
from videodb_retry_local.load.capacity.stack import Stack, Wiring
from videodb_retry_local.videodb_sandbox.sandbox_downloads import Script

DEFAULT_BUDGET = {"lambda_concurrency": 50, "videodb_rps": 10}  # BUDGET-INTERFACE's defaults
QUIET_CHECK_SECONDS = 30.0


@dataclass
class ScenarioResult:
    """A scenario's figures (``to_json``: the shape of ``bench/scale.json``'s scenarios)."""

    name: str
    design: str
    downloads: int
    simulated_seconds: float
    outage_seconds: float
    job_seconds: float
    lost: int
    duplicate_posts: int
    ended_by_throttling: int
    peak_lambda_concurrency: int
    peak_videodb_rps: int
    drain_seconds: float
    drain_floor_seconds: float
    cost_usd: float
    dead_letters: dict[str, int]
    unfinished: int = 0
    throttles: dict[str, int] = field(default_factory=dict)
    peak_executions: int = 0
    peak_queue_depth: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    refused_by_videodb: dict[str, int] = field(default_factory=dict)
    transitions: int = 0
    executions: int = 0
    ended_without_outcome: dict[str, int] = field(default_factory=dict)
    receives: dict[str, float] = field(default_factory=dict)
    outcome_events: dict[str, int] = field(default_factory=dict)
    budget_refusals: dict[str, int] = field(default_factory=dict)  # gate refusals by request kind
    deferred_records: int = 0  # retry records re-queued by the budget (no receive spent)
    # The least drain this design's request split allows (bounds.py); None without a budget.
    drain_split_bound_seconds: float | None = None
    series: Series | None = None

    def to_json(self) -> dict[str, Any]:
        """The scenario as ``bench/scale.json`` holds it (the series left out)."""
        data = {k: v for k, v in self.__dict__.items() if k != "series"}
        return json.loads(json.dumps(data))


def budget_of(deployed: Deployment) -> dict[str, int]:
    """The budgets the template sets (its ConcurrencyBudget / VideoDBRequestsPerSecond), or the
    interface's defaults for a template that has none (today's design)."""
    parameters = deployed.parameters
    return {
        "lambda_concurrency": int(parameters.get("ConcurrencyBudget", DEFAULT_BUDGET["lambda_concurrency"])),
        "videodb_rps": int(parameters.get("VideoDBRequestsPerSecond", DEFAULT_BUDGET["videodb_rps"])),
    }


class _Run:
    """One scenario's simulation: the environment, the stack, the downloads sent."""

    def __init__(
        self,
        scenario: Scenario,
        scripts: Sequence[tuple[str, Script]],
        deployed: Deployment,
        wiring: Wiring,
        seed: int,
    ) -> None:
        self.scenario, self.scripts, self.deployed = scenario, scripts, deployed
        self.env = simpy.Environment()
        rng = random.Random(seed)  # noqa: S311 -- a seeded simulation, not a secret
        # The layer's backoff jitters through the random module's own generator: seeded too.
        random.seed(seed)
        by_id = dict(scripts)
        self.videodb = SimVideoDB(scenario.behaviour, rng, on_unknown_id=by_id.get)
        crowd = scenario.crowd
        account = Account(self.env, scenario.account_quota, crowd.load if crowd else (lambda now: 0))
        self.stack = Stack(self.env, deployed, self.videodb, account, rng, wiring)
        if scenario.reserve_budget:
            _reserve_budget(account, deployed)
        self.posts: Counter[tuple[str, int]] = Counter()
        self.videodb.on_post = self._count_post
        self.sent_all = False
        self.series = Series(scenario.sample_every)

    def _count_post(self, download_id: str, accepted: bool) -> None:
        current = self.stack.ledger.current
        if accepted and current is not None:
            self.posts[current] += 1

    def run(self) -> None:
        """Send, simulate until quiet or the horizon."""
        self.stack.start()
        self.env.process(self._arrivals())
        self.env.process(self.series.sampler(self.env, self.stack))
        done = self.env.event()
        self.env.process(self._until_quiet(done))
        last_arrival = self.scenario.arrival(len(self.scripts) - 1)
        self.env.run(until=self.env.any_of([done, self.env.timeout(last_arrival + self.scenario.horizon)]))

    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        if self.scenario.swept:  # VideoDB lists them in error; the sweeper finds them
            for download_id, script in self.scripts:
                self.videodb.downloads.script(download_id, script)
            self.sent_all = True
            return
        for index, (download_id, _) in enumerate(self.scripts):
            wait = self.scenario.arrival(index) - self.env.now
            if wait > 0:
                yield self.env.timeout(wait)
            body = json.dumps({"download_id": download_id, "attempt": 1})
            self.stack.queue.send(body, self.env.now)
        self.sent_all = True

    def _until_quiet(self, done: simpy.Event) -> Generator[simpy.Event, Any, None]:
        stack = self.stack
        while True:
            yield self.env.timeout(QUIET_CHECK_SECONDS)
            idle = stack.queue.depth() == 0 and stack.executions.running == 0 and stack.account.in_use == 0
            if self.sent_all and idle and self.env.now >= self.scenario.quiet_after:
                done.succeed()
                return


def run_scenario(
    scenario: Scenario,
    overrides: dict[str, Any] | None = None,
    wiring: Wiring = gated_wiring,
    design: str = "budgets",
    seed: int = 20,
) -> ScenarioResult:
    """Run ``scenario`` on the template deployed with ``overrides``; its figures."""
    scripts = [(f"dl-{index:06d}", scenario.script(index)) for index in range(scenario.downloads)]
    deployed = deployment({**dict(scenario.parameters), **(overrides or {})})
    restore = functions.quiet_rules()
    try:
        run = _Run(scenario, scripts, deployed, wiring, seed)
        run.run()
    finally:
        restore()
    run.series.fill_rps(run.videodb.per_second)
    return _result(run, design, budget_of(deployed))


def _result(run: _Run, design: str, budget: dict[str, int]) -> ScenarioResult:
    stack, scenario, record = run.stack, run.scenario, run.stack.record
    pending = _pending(stack)
    unsettled = {d for d, _ in run.scripts} - set(record.settled) - _ids(stack.queue.redriven)
    functions_ = stack.account.functions
    return ScenarioResult(
        name=scenario.name,
        design=design,
        downloads=len(run.scripts),
        simulated_seconds=round(run.env.now, 1),
        outage_seconds=scenario.outage_seconds,
        job_seconds=scenario.longest_job,
        lost=len(unsettled - pending),
        duplicate_posts=sum(count - 1 for count in run.posts.values() if count > 1),
        ended_by_throttling=sum(stack.executions.without_outcome.values())
        + sum(stack.executions.by_throttle.values()),
        peak_lambda_concurrency=stack.account.peak,
        peak_videodb_rps=max(run.videodb.per_second.values(), default=0),
        drain_seconds=round(record.last_end, 1),
        drain_floor_seconds=round(
            scenario.floor_seconds(budget["lambda_concurrency"], budget["videodb_rps"]), 1
        ),
        cost_usd=round(cost_usd(stack, run.env.now), 2),
        dead_letters=dict(record.dead_letters) | _redriven(stack),
        unfinished=len(unsettled & pending),
        throttles={name: f.throttles for name, f in functions_.items() if f.throttles}
        | {"StartExecution": stack.workflows.throttled, "DynamoDB hot key": stack.hot.throttled},
        peak_executions=stack.executions.peak_running,
        peak_queue_depth=stack.queue.peak_depth,
        requests=dict(run.videodb.by_kind),
        refused_by_videodb=dict(run.videodb.refused),
        transitions=stack.executions.transitions,
        executions=stack.executions.started,
        ended_without_outcome=dict(stack.executions.without_outcome) | dict(stack.executions.by_throttle),
        receives=run.series.receives(stack),
        outcome_events=dict(record.events),
        budget_refusals=dict(stack.gated.gate.refused) if stack.gated else {},
        deferred_records=stack.deferrals.deferred,
        drain_split_bound_seconds=_split_bound(run) if stack.gated else None,
        series=run.series,
    )


def _split_bound(run: _Run) -> float:
    """The scenario's least drain under this deployment's split (bounds.py)."""
    settings = run.deployed.poll.settings
    return round(
        split_bound_seconds(
            run.scenario,
            settings.budgets.intake_per_second,
            settings.poll_first_wait_seconds,
            settings.requeue_delay_seconds,
        ),
        1,
    )


def _reserve_budget(account: Account, deployed: Deployment) -> None:
    """Reserved concurrency that holds the budget's split: the retry mapping's maximum, one
    breaker tick, the rest for polls (the what-if of the ``crowded-reserved`` scenario)."""
    budget = budget_of(deployed)["lambda_concurrency"]
    shares = {"retry": deployed.max_concurrency, "breaker": 1}
    shares["poll"] = budget - sum(shares.values())
    for name, units in shares.items():
        if name in account.functions:
            account.functions[name].reserved = units


def _redriven(stack: Stack) -> dict[str, int]:
    # The calibration's key for a dead letter SQS moved itself (it carries no error_code).
    return {"redrive": len(stack.queue.redriven)} if stack.queue.redriven else {}


def _pending(stack: Stack) -> set[str]:
    """Downloads with work still pending: a message in the queue, or an execution running."""
    return _ids(stack.queue.messages.values()) | stack.running_downloads()


def _ids(messages: Iterable[Message]) -> set[str]:
    """The download ids ``messages`` are about."""
    ids = set()
    for message in messages:
        try:
            ids.add(str(json.loads(message.body)["download_id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def model_counts(scenario: Sequence[tuple[str, Script]], parameters: dict[str, Any]) -> Counts:
    """The calibration scenario (scripted downloads all sent at t = 0) through the model, with
    the template's parameters overridden by ``parameters``; counted as the emulated stack is."""
    # The emulated stack's virtual clock stands still while VideoDB (the sandbox) answers.
    instant = VideoDBBehaviour(post_latency=0.0, get_latency=0.0)
    plan = Scenario("calibration", downloads=len(scenario), rate=None, behaviour=instant, horizon=48 * 3600.0)
    deployed = deployment(parameters)
    restore = functions.quiet_rules()
    try:
        run = _Run(plan, list(scenario), deployed, gated_wiring, seed=2)
        run.run()
    finally:
        restore()
    stack = run.stack
    return Counts(
        posts=run.videodb.by_kind["retry"],
        polls=run.videodb.by_kind["poll"],
        executions=stack.executions.started,
        transitions=stack.executions.transitions,
        outcome_events=dict(stack.record.events),
        dead_letters=dict(stack.record.dead_letters) | _redriven(stack),
        drain_seconds=round(stack.record.last_end, 3),
    )
