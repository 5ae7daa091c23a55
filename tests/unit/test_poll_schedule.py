"""One request per poll invocation, the budget's deferrals, and the workflow's Retry ladder."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.rules.budgets import Budgets
from videodb_retry.settings import Settings
from videodb_retry.steps import poll
from videodb_retry.steps.gated_videodb import GatedVideoDB
from videodb_retry.steps.poll import Deferred, JobStillRunning, follow_job

from tests.fakes import InMemoryGate, workflow_state
from videodb_retry_local.stack.template import PROJECT_ROOT, Template

from .conftest import Answer, FakeKey

RUNNING = Answer(200, {"success": True, "status": "processing"})
DONE = Answer(200, {"success": True, "status": "done", "data": {"id": "d-1"}})
DEFINITION = PROJECT_ROOT / "statemachine" / "retry_workflow.asl.json"


class SpentGate:
    """A request budget with no token left."""

    def take(self, kind, now):
        return False


@pytest.fixture
def follow(http_server, settings_for):
    def run(answers, retry_count=0, now=1010.0, state=None, gate=None, **overrides):
        http_server.answers.extend(answers)
        settings = settings_for(**overrides)
        state = workflow_state(http_server.base_url, **(state or {}))
        event = {"workflow_state": state, "retry_count": retry_count}
        videodb = GatedVideoDB(
            VideoDBClient(settings, FakeKey("k")),
            gate or InMemoryGate(Budgets()),
            lambda: now,
            lambda s: None,
        )
        return follow_job(event, videodb, settings, now=now)

    return run


def test_an_invocation_polls_once_and_never_sleeps(follow, http_server):
    result = follow([DONE])
    assert result.status == "done" and result.polls == 1
    assert len(http_server.seen) == 1


def test_still_running_raises_for_the_workflow_retry_after_one_request(follow, http_server):
    with pytest.raises(JobStillRunning, match="after 1 polls"):
        follow([RUNNING, RUNNING])
    assert len(http_server.seen) == 1


def test_a_retried_invocation_counts_the_earlier_polls_of_the_task(follow, http_server):
    result = follow([DONE], retry_count=3, state={"polls": 2}, now=1100.0)
    assert len(http_server.seen) == 1
    assert result.status == "done" and result.polls == 2 + 3 + 1


def test_a_poll_the_budget_refuses_sends_nothing_and_is_not_a_poll(follow, http_server):
    result = follow([DONE], retry_count=2, state={"polls": 4}, gate=SpentGate())
    assert isinstance(result, Deferred) and http_server.seen == []
    state = result.to_state(Settings())
    # The polls made so far cross the Wait (the Task starts its retry count again after it).
    assert state["status"] == "deferred" and state["polls"] == 6 and state["deferrals"] == 1
    assert 1 <= state["wait_seconds"] <= poll.DEFERRAL_CAP_SECONDS


@given(
    deferrals=st.integers(0, 10_000),
    polls=st.integers(0, 400),
    before_end=st.floats(0.01, 7_000),
)
@hsettings(max_examples=80, deadline=None)
def test_a_deferral_waits_grow_to_a_cap_and_never_past_the_grace(deferrals, polls, before_end):
    """A refused poll waits the ladder's step for its polls and deferrals so far (15 s, x1.25
    each, jittered by a quarter), at most the cap, and never past the deadline's grace (the
    last deferral ends right on it)."""

    class NoVideoDB:
        def is_on_api_origin(self, url):
            return True

        def followable_url(self, url):
            return url

    state = {
        "download_id": "d",
        "job_id": "j",
        "output_url": "https://api.videodb.io/j",
        "attempt": 1,
        "started_at": 0.0,
        "deadline_at": 100.0,
        "polls": polls,
        "deferrals": deferrals,
    }
    now = 100.0 + min(Settings().poll_deadline_seconds, poll.DEFERRAL_GRACE_CAP_SECONDS) - before_end
    gated = GatedVideoDB(NoVideoDB(), SpentGate(), lambda: now, lambda s: None)  # type: ignore[arg-type]
    result = follow_job({"workflow_state": state, "retry_count": 0}, gated, Settings(), now=now)
    assert isinstance(result, Deferred) and result.deferrals == deferrals + 1 and result.polls == polls
    step = min(
        poll.LADDER_FIRST_SECONDS * poll.LADDER_FACTOR ** min(polls + deferrals, 64),
        poll.DEFERRAL_CAP_SECONDS,
    )
    assert 1 <= result.wait_seconds <= min(poll.DEFERRAL_CAP_SECONDS, math.ceil(before_end))
    if before_end > poll.DEFERRAL_CAP_SECONDS:
        assert (
            (1 - poll.DEFERRAL_JITTER) * step - 1
            <= result.wait_seconds
            <= (1 + poll.DEFERRAL_JITTER) * step + 1
        )


def test_a_deferral_past_the_deadline_defers_again_until_the_grace_is_spent(follow, http_server):
    # Deadline 1600: past it, our own budget does not end the attempt while the job may have
    # ended well (deferred for as long again); VideoDB's next answer judges it.
    result = follow([], now=1700.0, gate=SpentGate(), max_retry_attempts=1, poll_deadline_seconds=600)
    assert isinstance(result, Deferred) and http_server.seen == []
    result = follow([], now=2200.0, gate=SpentGate(), max_retry_attempts=1, poll_deadline_seconds=600)
    assert result.status == "timed_out" and result.polls == 0 and http_server.seen == []


def test_a_ladder_poll_after_the_deadline_times_out(follow):
    result = follow([RUNNING], retry_count=30, now=1700.0, max_retry_attempts=1)
    assert result.status == "timed_out"


def test_max_polls_ends_the_attempt(follow):
    result = follow([RUNNING], retry_count=2, poll_max_polls=3, max_retry_attempts=1)
    assert result.status == "timed_out" and result.polls == 3


def test_a_bare_state_is_one_poll_step_with_the_ladders_wait(follow, http_server, settings_for):
    settings = settings_for()
    http_server.answers.append(RUNNING)
    state = {
        "download_id": "d",
        "job_id": "j",
        "output_url": f"{http_server.base_url}/async-response/j",
        "attempt": 1,
        "started_at": 1000.0,
        "deadline_at": 1600.0,
        "polls": 0,
    }
    result = follow_job(state, VideoDBClient(settings, FakeKey("k")), settings, now=1010.0)
    assert result.status == "running" and 13 <= result.wait_seconds <= 17


# -- the schedule as a whole: the first Wait, then the workflow's Retry ladder -------------


def ladder() -> dict:
    (retrier,) = [
        r
        for r in json.loads(DEFINITION.read_text())["States"]["PollJob"]["Retry"]
        if r["ErrorEquals"] == ["JobStillRunning"]
    ]
    return retrier


def test_poll_py_mirrors_the_ladder():
    r = ladder()
    assert (r["IntervalSeconds"], r["BackoffRate"], r["MaxDelaySeconds"]) == (
        poll.LADDER_FIRST_SECONDS,
        poll.LADDER_FACTOR,
        poll.LADDER_CAP_SECONDS,
    )


def poll_times(settings: Settings, until: float) -> list[float]:
    """When polls happen (seconds after the retry), ignoring the invocations' own run time."""
    times = [float(settings.poll_first_wait_seconds)]
    r = ladder()
    interval = float(r["IntervalSeconds"])
    for _ in range(r["MaxAttempts"]):
        if times[-1] >= until:
            break
        times.append(times[-1] + min(interval, r["MaxDelaySeconds"]))
        interval *= r["BackoffRate"]
    return times


def test_every_retrier_caps_its_delay():
    for name, state in json.loads(DEFINITION.read_text())["States"].items():
        for retrier in state.get("Retry", []):
            assert 0 < retrier["MaxDelaySeconds"] <= 900, (name, retrier)


def test_the_ladder_outlasts_the_longest_deadline():
    longest = int(Template.load().document["Parameters"]["PollDeadlineSeconds"]["MaxValue"])
    assert poll_times(Settings(), until=longest)[-1] >= longest


@given(duration=st.floats(min_value=0.0, max_value=7200.0))
@hsettings(max_examples=300, deadline=None)
def test_any_job_is_noticed_within_15s_and_a_quarter_of_its_duration(duration):
    # No inline polls: the ladder starts at the first wait, so a job is noticed within a
    # quarter of its duration plus one first wait (the old inline schedule: max(10 s, 25 %)).
    times = poll_times(Settings(), until=duration + 1000)
    noticed = next(t for t in times if t >= duration)
    assert noticed - duration <= 0.25 * duration + 15.0


def test_the_poll_functions_timeout_is_the_budgets_time_limit_and_covers_one_request():
    template = Template.load()
    poll_function = template.document["Resources"]["PollFunction"]["Properties"]
    env = poll_function["Environment"]["Variables"]
    assert poll_function["Timeout"] == Settings().poll_time_limit_seconds == Budgets().poll_time_limit_seconds
    request = float(env["HTTP_CONNECT_TIMEOUT_SECONDS"]) + float(env["HTTP_READ_TIMEOUT_SECONDS"])
    # The margin holds the budget's token (DynamoDB, 1 s timeouts) and the key's first read.
    assert poll_function["Timeout"] - request >= 2
