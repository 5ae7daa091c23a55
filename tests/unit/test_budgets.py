"""The budgets' split and the gate that holds it: properties over every budget a user may set."""

from __future__ import annotations

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from videodb_retry.adapters.request_gate_aws import DynamoDBRequestGate
from videodb_retry.errors import RequestDeferred
from videodb_retry.rules.budgets import Budgets, BudgetTooSmall, RequestKind, request_class, window_of
from videodb_retry.rules.status import JobState, JobStatus
from videodb_retry.settings import Settings
from videodb_retry.steps.gated_videodb import GatedVideoDB

from tests.fakes import InMemoryGate


@st.composite
def budgets(draw: st.DrawFn) -> Budgets:
    """Any valid budgets: the template's ranges and a poll limit of a few seconds."""
    retry = draw(st.integers(2, 50))
    limit = draw(st.integers(1, 30))
    fixed = retry + 2
    concurrency = draw(st.integers(fixed + limit, 3000))
    return Budgets(
        lambda_concurrency=concurrency,
        videodb_rps=draw(st.integers(2, 1000)),
        retry_concurrency=retry,
        poll_time_limit_seconds=limit,
    )


@given(budgets())
def test_the_classes_together_never_exceed_the_request_budget(b: Budgets) -> None:
    assert b.poll_per_second >= 1 and b.intake_per_second >= 1
    assert b.poll_per_second + b.intake_per_second <= b.videodb_rps


@given(budgets())
def test_polls_at_their_time_limit_and_the_fixed_functions_fit_the_concurrency(b: Budgets) -> None:
    assert b.poll_per_second * b.poll_time_limit_seconds + b.fixed_concurrency <= b.lambda_concurrency


@given(budgets())
def test_intake_never_outpaces_what_polls_can_follow(b: Budgets) -> None:
    # Every attempt is one POST and at least one poll: attempts started faster than polls
    # could never all end.
    assert b.intake_per_second <= b.poll_per_second


@given(budgets())
def test_intake_gets_what_polls_leave_up_to_the_polls_rate(b: Budgets) -> None:
    # No request a second is left unused that intake could follow with a poll.
    assert b.intake_per_second == max(1, min(b.videodb_rps - b.poll_per_second, b.poll_per_second))


kinds = st.sampled_from(list(RequestKind))


@settings(max_examples=200)
@given(budgets(), st.lists(st.tuples(kinds, st.floats(0, 20, allow_nan=False)), max_size=400))
def test_admissions_held_by_the_gate_stay_inside_both_budgets(
    b: Budgets, takes: list[tuple[RequestKind, float]]
) -> None:
    gate = InMemoryGate(b)
    for kind, now in sorted(takes, key=lambda take: take[1]):
        gate.take(kind, now)
    for window in {w for _, w in gate.admitted}:
        admitted = [k for k, w in gate.admitted if w == window]
        polls = sum(1 for k in admitted if k is RequestKind.POLL)
        assert len(admitted) <= b.videodb_rps
        assert polls * b.poll_time_limit_seconds + b.fixed_concurrency <= b.lambda_concurrency
    # Nothing is refused while its class still has tokens in the window.
    for kind in RequestKind:
        for window in {w for _, w in gate.admitted}:
            wanted = sum(
                1 for k, t in takes if request_class(k) is request_class(kind) and window_of(t) == window
            )
            got = sum(1 for k, w in gate.admitted if request_class(k) is request_class(kind) and w == window)
            assert got == min(wanted, b.per_second(kind))


def test_the_defaults_split_fifty_executions_and_ten_requests() -> None:
    b = Budgets()
    # Polls: 46 executions left / 8 s = 5 a second; intake what they leave: 5 (10 of 10 used).
    assert (b.poll_per_second, b.intake_per_second) == (5, 5)
    assert b.minimum_concurrency == 12


def test_a_budget_too_small_for_one_poll_a_second_is_refused() -> None:
    with pytest.raises(BudgetTooSmall, match="at least 12"):
        Budgets(lambda_concurrency=11)
    with pytest.raises(BudgetTooSmall):
        Budgets(videodb_rps=1)
    with pytest.raises(BudgetTooSmall):
        Settings.from_env({"BUDGET_LAMBDA_CONCURRENCY": "5"})


def test_settings_read_the_budgets_from_the_environment() -> None:
    s = Settings.from_env(
        {
            "BUDGET_LAMBDA_CONCURRENCY": "100",
            "BUDGET_VIDEODB_RPS": "20",
            "RETRY_MAX_CONCURRENCY": "4",
            "POLL_TIME_LIMIT_SECONDS": "6",
        }
    )
    assert s.budgets == Budgets(100, 20, retry_concurrency=4, poll_time_limit_seconds=6)


class Recorder:
    """A VideoDB port that records the requests it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def retry_download(self, download_id: str) -> JobStatus:
        self.sent.append(f"POST {download_id}")
        return JobStatus(state=JobState.RUNNING, job_id="j", output_url="https://api.videodb.io/j")

    def get_job(self, output_url: str, download_id: str | None = None) -> JobStatus:
        self.sent.append(f"GET {output_url}")
        return JobStatus(state=JobState.RUNNING)

    def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, object]]:
        self.sent.append(f"LIST {page_index}")
        return []

    def followable_url(self, url: str) -> str:
        return url

    def is_on_api_origin(self, url: str) -> bool:
        return True


class VirtualClock:
    def __init__(self, start: float) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def test_a_refused_poll_sends_nothing_and_says_deferred() -> None:
    gate = InMemoryGate(Budgets())
    clock = VirtualClock(100.5)
    videodb = GatedVideoDB(Recorder(), gate, clock.now, clock.sleep)
    for _ in range(5):
        videodb.get_job("https://api.videodb.io/j")
    with pytest.raises(RequestDeferred):
        videodb.get_job("https://api.videodb.io/j")
    assert len(videodb._videodb.sent) == 5 and clock.slept == []  # type: ignore[attr-defined]


def test_a_retry_waits_for_the_next_window_while_patience_lasts() -> None:
    gate = InMemoryGate(Budgets(videodb_rps=4))  # intake 2 a window
    clock = VirtualClock(100.25)
    recorder = Recorder()
    videodb = GatedVideoDB(recorder, gate, clock.now, clock.sleep, patience=lambda: 3.0)
    for i in range(5):
        videodb.retry_download(f"d{i}")
    # Two a window: the third and fifth waited for the next window, from where they were.
    assert clock.slept == [0.75, 1.0]
    assert [w for _, w in gate.admitted] == [100, 100, 101, 101, 102]
    assert len(recorder.sent) == 5


def test_a_retry_out_of_patience_is_deferred_unsent() -> None:
    gate = InMemoryGate(Budgets(videodb_rps=2))
    clock = VirtualClock(7.0)
    left = [1.5]
    recorder = Recorder()
    videodb = GatedVideoDB(recorder, gate, clock.now, clock.sleep, patience=lambda: left[0] - (clock.t - 7.0))
    videodb.retry_download("a")
    videodb.retry_download("b")  # waited one window
    with pytest.raises(RequestDeferred):
        videodb.retry_download("c")
    assert recorder.sent == ["POST a", "POST b"]


def test_probes_and_sweeps_take_intake_tokens() -> None:
    gate = InMemoryGate(Budgets(videodb_rps=4))  # intake 2 a window
    clock = VirtualClock(0.0)
    probe = GatedVideoDB(Recorder(), gate, clock.now, clock.sleep, list_kind=RequestKind.PROBE)
    probe.list_downloads(0, 1)
    sweep = GatedVideoDB(Recorder(), gate, clock.now, clock.sleep)
    sweep.list_downloads(0, 500)
    with pytest.raises(RequestDeferred):
        sweep.retry_download("x")
    assert [k for k, _ in gate.admitted] == [RequestKind.PROBE, RequestKind.SWEEP]


def test_the_dynamodb_gate_admits_the_first_n_of_a_window_and_counts_the_rest() -> None:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        gate = DynamoDBRequestGate("t", Budgets(), dynamodb)
        polls = [gate.take(RequestKind.POLL, 50.2) for _ in range(7)]
        intake = [gate.take(RequestKind.RETRY, 50.9) for _ in range(4)]
        intake += [gate.take(RequestKind.SWEEP, 50.9), gate.take(RequestKind.PROBE, 50.9)]
        assert polls == [True] * 5 + [False] * 2
        assert intake == [True] * 5 + [False]
        assert gate.take(RequestKind.POLL, 51.0)
        item = dynamodb.get_item(TableName="t", Key={"id": {"S": "gate#poll#50"}})["Item"]
        assert item["used"]["N"] == "7" and item["expiration"]["N"] == "3650"


def test_the_template_defaults_are_the_rules_defaults() -> None:
    from videodb_retry_local.stack.template import DEFAULT_TEMPLATE, Template

    template = Template.load(DEFAULT_TEMPLATE)
    parameters = template.document["Parameters"]
    b = Budgets()
    assert parameters["ConcurrencyBudget"]["Default"] == b.lambda_concurrency
    assert parameters["ConcurrencyBudget"]["MinValue"] == b.minimum_concurrency
    assert parameters["VideoDBRequestsPerSecond"]["Default"] == b.videodb_rps
    assert parameters["RetryMaxConcurrency"]["Default"] == b.retry_concurrency


def test_a_count_dynamodb_refuses_is_a_transient_error_with_the_reason() -> None:
    from botocore.exceptions import ClientError
    from videodb_retry.errors import TransientError

    class Throttled:
        def update_item(self, **kwargs: object) -> dict[str, object]:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]

    gate = DynamoDBRequestGate("t", Budgets(), Throttled())
    with pytest.raises(TransientError, match="ProvisionedThroughputExceededException"):
        gate.take(RequestKind.POLL, 1.0)
