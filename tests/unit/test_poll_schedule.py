"""The poll loop inside one invocation (inline schedule), and the workflow's Retry ladder."""

import json

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from videodb_retry.client import VideoDBClient
from videodb_retry.poll import Clock, JobStillRunning, follow_job, inline_schedule
from videodb_retry.settings import Settings

from videodb_retry_local.template import PROJECT_ROOT, Template

from .conftest import Answer, FakeKey

RUNNING = Answer(200, {"success": True, "status": "processing"})
DONE = Answer(200, {"success": True, "status": "done", "data": {"id": "d-1"}})
DEFINITION = PROJECT_ROOT / "statemachine" / "retry_workflow.asl.json"


class FakeClock:
    def __init__(self, start: float) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def follow(http_server, settings_for):
    def run(answers, retry_count=0, now=1000.0, seconds_left=60.0, state=None, **overrides):
        http_server.answers.extend(answers)
        settings = settings_for(
            **{
                "poll_first_wait_seconds": 4,
                "poll_backoff_factor": 2.0,
                "poll_max_wait_seconds": 8,
                "poll_inline_seconds": 44,
                **overrides,
            }
        )
        clock = FakeClock(now)
        workflow_state = {
            "download_id": "download-1",
            "job_id": "job-1",
            "output_url": f"{http_server.base_url}/async-response/job-1",
            "attempt": 1,
            "started_at": 1000.0,
            "deadline_at": 1600.0,
            "polls": 0,
            **(state or {}),
        }
        event = {"workflow_state": workflow_state, "retry_count": retry_count}
        result = follow_job(
            event,
            VideoDBClient(settings, FakeKey("k")),
            settings,
            Clock(clock.now, clock.sleep),
            lambda: seconds_left,
        )
        return result, clock

    return run


def test_default_inline_schedule():
    assert inline_schedule(Settings()) == [4, 12, 20, 28, 36, 44]


def test_first_invocation_polls_on_the_schedule_until_done(follow, http_server):
    result, clock = follow([RUNNING, RUNNING, DONE])
    assert result.status == "done" and result.polls == 3
    assert clock.sleeps == [4, 8, 8] and clock.t == 1020.0
    assert len(http_server.seen) == 3


def test_still_running_after_the_schedule_raises_for_the_workflow_retry(follow):
    with pytest.raises(JobStillRunning, match="after 6 polls"):
        follow([RUNNING] * 6)


def test_a_retried_invocation_polls_once_and_counts_earlier_polls(follow, http_server):
    # Third ladder retry: 6 inline polls + 2 earlier retries were made before this one.
    result, clock = follow([DONE], retry_count=3, now=1100.0)
    assert clock.sleeps == [] and len(http_server.seen) == 1
    assert result.status == "done" and result.polls == 6 + 2 + 1


def test_short_remaining_time_ends_the_inline_schedule_early(follow, http_server):
    # 10 s left: after the first poll there is no room for an 8 s sleep plus a 3 s request.
    with pytest.raises(JobStillRunning, match="after 1 polls"):
        follow([RUNNING] * 6, seconds_left=10.0)
    assert len(http_server.seen) == 1


def test_the_deadline_cuts_the_schedule_and_times_out_on_it(follow):
    result, clock = follow([RUNNING] * 6, state={"deadline_at": 1015.0}, max_retry_attempts=1)
    assert result.status == "timed_out" and clock.t == 1015.0


def test_a_ladder_poll_after_the_deadline_times_out(follow):
    result, _ = follow([RUNNING], retry_count=30, now=1700.0, max_retry_attempts=1)
    assert result.status == "timed_out"


def test_max_polls_ends_the_inline_schedule(follow):
    result, _ = follow([RUNNING] * 6, poll_max_polls=3, max_retry_attempts=1)
    assert result.status == "timed_out" and result.polls == 3


def test_a_bare_state_is_one_poll_step(follow, http_server, settings_for):
    settings = settings_for()
    http_server.answers.append(RUNNING)
    clock = FakeClock(1010.0)
    state = {
        "download_id": "d",
        "job_id": "j",
        "output_url": f"{http_server.base_url}/async-response/j",
        "attempt": 1,
        "started_at": 1000.0,
        "deadline_at": 1600.0,
        "polls": 0,
    }
    result = follow_job(
        state, VideoDBClient(settings, FakeKey("k")), settings, Clock(clock.now, clock.sleep), lambda: 60.0
    )
    assert result.status == "running" and result.wait_seconds >= 1 and clock.sleeps == []


# -- the schedule as a whole: inline polls, then the workflow's Retry ladder ---------------


def ladder() -> dict:
    (retrier,) = [
        r
        for r in json.loads(DEFINITION.read_text())["States"]["PollJob"]["Retry"]
        if r["ErrorEquals"] == ["JobStillRunning"]
    ]
    return retrier


def poll_times(settings: Settings, until: float) -> list[float]:
    """When polls happen (seconds after the retry), ignoring the invocations' own run time."""
    times = list(inline_schedule(settings))
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
def test_any_job_is_noticed_within_max_10s_or_a_quarter_of_its_duration(duration):
    times = poll_times(Settings(), until=duration + 1000)
    noticed = next(t for t in times if t >= duration)
    assert noticed - duration <= max(10.0, 0.25 * duration)


def test_poll_function_timeout_covers_the_inline_schedule():
    template = Template.load()
    poll = template.document["Resources"]["PollFunction"]["Properties"]
    s = Settings()
    assert poll["Timeout"] >= s.poll_inline_seconds + s.connect_timeout_seconds + s.read_timeout_seconds
    assert int(template.parameters["PollInlineSeconds"]) == s.poll_inline_seconds
