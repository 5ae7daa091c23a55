"""Retry sequences over generated interleavings of failure reports, attempts and endings.

A small world around the real :class:`RetryService` and :class:`RetrySequences` (the in-memory
fakes stand for SQS, Step Functions, EventBridge and DynamoDB): reports arrive at any time,
queued attempts are delivered in any order, VideoDB answers anything, workflows end any way,
the clock moves on. After every step:

- a download has at most one running sequence, and nothing of an ended one is in flight;
- no attempt of a sequence is POSTed twice, and none beyond MaxRetryAttempts;
- every ended sequence ended once: one final outcome or one dead letter, never both, never none;
- no download begins more than SEQUENCE_LIMIT sequences in SEQUENCE_PERIOD_SECONDS;
- a report sent after its download's last sequence ended begins a new one (within the bound),
  and one for a running sequence, or sent before it ended, does nothing.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from videodb_retry.errors import PermanentError, TransientError
from videodb_retry.rules.messages import parse_body
from videodb_retry.rules.outcomes import Ending, Outcome
from videodb_retry.rules.sequence import SEQUENCE_LIMIT, SEQUENCE_PERIOD_SECONDS
from videodb_retry.rules.status import JobState, JobStatus
from videodb_retry.settings import Settings
from videodb_retry.steps.retry_attempt import InboundMessage, RecordResult, RetryService
from videodb_retry.steps.retry_sequences import RetrySequences, end_after_poll

from tests.fakes import FakeDeadLetters, FakeWorkflows, InMemoryLedger, InMemorySequenceStore

IDS = ("dl-a", "dl-b")
MAX_ATTEMPTS = 2
STALE_AFTER = 3 * 3600.0
ANSWERS = ("done", "failed", "processing", "refused", "transient")


class ScriptedVideoDB:
    """Answers each retry POST as the test says; counts POSTs per download."""

    def __init__(self) -> None:
        self.next_answer = "done"
        self.posts: list[str] = []
        self.jobs = itertools.count(1)

    def retry_download(self, download_id: str) -> JobStatus:
        answer = self.next_answer
        if answer == "transient":
            raise TransientError("503")
        self.posts.append(download_id)
        if answer == "refused":
            raise PermanentError("POST answered 409: not in error", 409)
        job = f"job-{next(self.jobs)}"
        if answer == "processing":
            return JobStatus(JobState.RUNNING, job_id=job, output_url=f"https://api.test/async/{job}")
        state = JobState.DONE if answer == "done" else JobState.FAILED
        return JobStatus(state, job_id=job, error=None if answer == "done" else "codec")

    def get_job(self, output_url: str, download_id: str | None = None) -> JobStatus:
        raise AssertionError("the world ends workflows itself")

    def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, Any]]:
        return []

    def followable_url(self, url: str) -> str:
        return url

    def is_on_api_origin(self, url: str) -> bool:
        return True


@dataclass
class World:
    """Queue, workflows, events and dead letters around one RetryService."""

    now: float = 1_000_000.0
    queue: list[InboundMessage] = field(default_factory=list)
    finals: Counter[tuple[str, int]] = field(default_factory=Counter)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.videodb = ScriptedVideoDB()
        self.dead = FakeDeadLetters()
        self.workflows = FakeWorkflows()
        self.store = InMemorySequenceStore()
        self.sequences = RetrySequences(self.store, STALE_AFTER)
        self.service = RetryService(
            settings=Settings(max_retry_attempts=MAX_ATTEMPTS),
            videodb=self.videodb,
            dead_letters=self.dead,
            workflows=self.workflows,
            outcomes=self,
            ledger=InMemoryLedger(),
            sequences=self.sequences,
            clock=lambda: self.now,
        )
        self.issued: Counter[tuple[str, int | None, int]] = Counter()
        self.begun: list[tuple[str, float]] = []

    # OutcomeSink: re-queue if attempts remain, remember the final outcome.
    def settle(self, outcome: Outcome) -> None:
        if outcome.will_retry:
            self.send(outcome.next_request().to_body())
        else:
            self.finals[(outcome.download_id, outcome.sequence or 0)] += 1

    def send(self, body: str, sent_at: float | None = None, redriven: bool = False) -> None:
        self.queue.append(
            InboundMessage(
                body,
                f"m-{next(self.ids)}",
                sent_at=self.now if sent_at is None else sent_at,
                redriven=redriven,
            )
        )

    def deliver(self, index: int, answer: str) -> RecordResult | None:
        message = self.queue.pop(index % len(self.queue))
        record = self.store.load(_id(message) or "")
        number = record.number if record else 0
        try:
            return self._deliver(message, answer)
        finally:
            after = self.store.load(_id(message) or "")
            if after is not None and after.number > number:
                self.begun.append((after.download_id, self.now))

    def _deliver(self, message: InboundMessage, answer: str) -> RecordResult | None:
        self.videodb.next_answer = answer
        before = len(self.videodb.posts)
        try:
            result = self.service.process(message)
        except TransientError:
            if message.receive_count >= 3:  # the last delivery: RecordDelivery dead-letters it
                return self.service.dead_letter(message, "still failing", "transient_exhausted", _id(message))
            self.queue.append(
                InboundMessage(
                    message.body,
                    message.message_id,
                    message.receive_count + 1,
                    message.redriven,
                    message.sent_at,
                )
            )
            return None
        if len(self.videodb.posts) > before:
            request = parse_body(message.body)
            record = self.store.load(request.download_id)
            sequence = (
                request.sequence if request.sequence is not None else (record.number if record else None)
            )
            attempt = 1 if request.is_report or message.redriven else request.attempt
            self.issued[(request.download_id, sequence, attempt)] += 1
        return result

    def end_workflow(self, index: int, ending: Ending) -> None:
        state = self.workflows.started.pop(index % len(self.workflows.started))
        outcome = Outcome(
            ending=ending,
            download_id=state["download_id"],
            attempt=state["attempt"],
            max_attempts=MAX_ATTEMPTS,
            job_id=state["job_id"],
            sequence=state.get("sequence"),
        )
        end_after_poll(self.sequences, outcome, self.now)  # the poll function
        self.settle(outcome)  # the workflow re-queues and announces

    def in_flight(self, download_id: str) -> list[int | None]:
        queued = [parse_body(m.body) for m in self.queue if _id(m) == download_id]
        running = [s.get("sequence") for s in self.workflows.started if s["download_id"] == download_id]
        return [r.sequence for r in queued if not r.is_report] + running


def _id(message: InboundMessage) -> str | None:
    try:
        return parse_body(message.body).download_id
    except ValueError:
        return None


report = st.tuples(st.just("report"), st.sampled_from(IDS), st.sampled_from(("now", "before", "redriven")))
deliver = st.tuples(st.just("deliver"), st.integers(0, 20), st.sampled_from(ANSWERS))
workflow = st.tuples(st.just("workflow"), st.integers(0, 20), st.sampled_from(list(Ending)))
# Minutes pass; hours only when nothing is in flight (an attempt never outlives its bound).
wait = st.tuples(st.just("wait"), st.sampled_from((1.0, 600.0, 8 * 3600.0)), st.none())
steps = st.lists(st.one_of(report, deliver, deliver, workflow, wait), min_size=1, max_size=60)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_sequences_hold_over_any_interleaving(actions):
    world = World()
    for kind, a, b in actions:
        if kind == "report":
            check_report(world, a, b)
        elif kind == "deliver" and world.queue:
            world.deliver(a, b)
        elif kind == "workflow" and world.workflows.started:
            world.end_workflow(a, b)
        elif kind == "wait" and (a < 3600 or not (world.queue or world.workflows.started)):
            world.now += a
        check(world)


def check_report(world: World, download_id: str, how: str) -> None:
    """Send a report, deliver it at once, and check its verdict against the record it met."""
    record = world.store.load(download_id)
    sent = world.now - 5 if how == "before" else world.now
    world.send(download_id, sent_at=sent, redriven=how == "redriven")
    result = world.deliver(len(world.queue) - 1, "processing")
    after = world.store.load(download_id)
    began = after is not None and after.number > (record.number if record else 0)
    recent = [t for d, t in world.begun[:-1] if d == download_id and t > world.now - SEQUENCE_PERIOD_SECONDS]
    if not began:
        recent = [t for d, t in world.begun if d == download_id and t > world.now - SEQUENCE_PERIOD_SECONDS]
    if record is not None and record.running:
        assert not began and result is RecordResult.DUPLICATE, "a second sequence began while one ran"
    elif how != "redriven" and record is not None and sent < record.covered_until:
        assert not began and result is RecordResult.DUPLICATE, "a report of a handled failure ran again"
    elif how == "redriven" or len(recent) < SEQUENCE_LIMIT:
        assert began and result is RecordResult.WORKFLOW_STARTED, "a new failure after the end was dropped"
    else:
        assert not began and result is RecordResult.DEAD_LETTERED, "the bound did not stop a sequence"
        assert world.dead.sent[-1]["error_code"] == "sequences_exhausted"
        assert "retry sequences began" in world.dead.sent[-1]["reason"]


def check(world: World) -> None:
    for download_id in IDS:
        record = world.store.load(download_id)
        flying = world.in_flight(download_id)
        running = record is not None and record.running
        # Running exactly while something of it is in flight: no end lost, none early.
        assert running == bool(flying), f"{download_id}: running={running}, in flight {flying}"
        assert all(s == record.number for s in flying if record), "attempts of two sequences in flight"
    assert all(n == 1 for n in world.issued.values()), f"an attempt was POSTed twice: {world.issued}"
    assert all(attempt <= MAX_ATTEMPTS for _, _, attempt in world.issued)
    assert all(n == 1 for n in world.finals.values()), "a sequence announced its end twice"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=8 * 3600.0), min_size=1, max_size=30))
def test_a_download_that_fails_for_ever_is_retried_at_most_the_bound_per_period(gaps):
    # Whoever keeps reporting it (the sweeper every run, VideoDB's own failure events), a
    # download failing every attempt begins at most SEQUENCE_LIMIT sequences in any period.
    world = World()
    for gap in gaps:
        world.now += gap
        world.send("dl-a")
        while world.queue:  # every attempt fails at once, until the sequence ends
            world.deliver(0, "failed")
        record = world.store.load("dl-a")
        assert record is not None and not record.running
    starts = sorted(t for _, t in world.begun)
    for i, start in enumerate(starts):
        assert len([t for t in starts[i:] if t < start + SEQUENCE_PERIOD_SECONDS]) <= SEQUENCE_LIMIT
    refused = [d for d in world.dead.sent if d["error_code"] == "sequences_exhausted"]
    assert len(starts) + len(refused) == len(gaps), "a report vanished without a verdict"
    assert all(d["reason"] and d["download_id"] == "dl-a" for d in refused)
    assert len(world.videodb.posts) == MAX_ATTEMPTS * len(starts)
