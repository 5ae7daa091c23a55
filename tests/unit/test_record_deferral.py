"""Our own request budget never spends a message's receives: a POST it cannot admit within the
invocation's time is put back on the queue as a new message, and nothing is sent to VideoDB."""

from __future__ import annotations

import json
from types import SimpleNamespace

from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.rules.budgets import Budgets, RequestKind
from videodb_retry.steps.gated_videodb import GatedVideoDB
from videodb_retry.steps.record_delivery import DEFERRED_DELAY_SECONDS, RecordDelivery
from videodb_retry.steps.retry_attempt import RecordResult, RetryService

from tests.fakes import (
    FakeDeadLetters,
    FakeDeferrals,
    FakeKey,
    FakeOutcomes,
    FakeWorkflows,
    InMemoryGate,
    InMemoryLedger,
    in_memory_sequences,
)

from .conftest import Answer


class Postponed:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        self.calls.append((receipt_handle, seconds))


def record(body: str, receive_count: int = 9, attributes: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        body=body,
        message_id="m-1",
        receipt_handle="rh-1",
        attributes=SimpleNamespace(approximate_receive_count=str(receive_count), sent_timestamp=None),
        message_attributes=attributes or {},
    )


def test_a_post_the_budget_cannot_admit_is_requeued_as_new_not_failed(http_server, settings_for):
    settings = settings_for(max_receive_count=10)
    gate = InMemoryGate(Budgets())
    now = [500.0]
    videodb = GatedVideoDB(
        VideoDBClient(settings, FakeKey("k")), gate, lambda: now[0], lambda s: None, patience=lambda: 0.0
    )
    for _ in range(Budgets().intake_per_second):  # the window's intake tokens, spent elsewhere
        assert gate.take(RequestKind.RETRY, now[0])
    dead_letters, deferrals, visibility = FakeDeadLetters(), FakeDeferrals(), Postponed()
    service = RetryService(
        settings=settings,
        videodb=videodb,
        dead_letters=dead_letters,
        workflows=FakeWorkflows(),
        outcomes=FakeOutcomes(),
        ledger=InMemoryLedger(),
        sequences=in_memory_sequences(),
    )
    delivery = RecordDelivery(settings, service, visibility, deferrals)
    redriven = {"error_code": {"stringValue": "http_500", "dataType": "String"}}
    # Its last allowed delivery: a failure would dead-letter it; a deferral must not.
    result = delivery.handle(record('{"download_id": "dl-1", "attempt": 2}', 9, redriven), 60_000)
    assert result is RecordResult.DEFERRED
    # The redrive began sequence 1: the copy is that sequence's attempt, named as such.
    assert deferrals.deferred == [
        ('{"download_id":"dl-1","attempt":1,"sequence":1}', {}, DEFERRED_DELAY_SECONDS)
    ]
    assert http_server.seen == [] and dead_letters.sent == [] and visibility.calls == []


def test_a_deferred_report_comes_back_as_its_sequence_and_is_retried_not_dropped(http_server, settings_for):
    # The report begins sequence 1 and is deferred before its POST; the copy that comes back
    # must carry that sequence on (a copy of the bare report would meet the running sequence
    # as a duplicate, and the download would be dropped).
    settings = settings_for(max_receive_count=10)
    gate = InMemoryGate(Budgets())
    now = [500.0]
    videodb = GatedVideoDB(
        VideoDBClient(settings, FakeKey("k")), gate, lambda: now[0], lambda s: None, patience=lambda: 0.0
    )
    for _ in range(Budgets().intake_per_second):
        assert gate.take(RequestKind.RETRY, now[0])
    deferrals, workflows = FakeDeferrals(), FakeWorkflows()
    service = RetryService(
        settings=settings,
        videodb=videodb,
        dead_letters=FakeDeadLetters(),
        workflows=workflows,
        outcomes=FakeOutcomes(),
        ledger=InMemoryLedger(),
        sequences=in_memory_sequences(),
        clock=lambda: now[0],
    )
    delivery = RecordDelivery(settings, service, Postponed(), deferrals)
    assert delivery.handle(record("dl-7", 1), 60_000) is RecordResult.DEFERRED
    [(body, attributes, _)] = deferrals.deferred
    assert json.loads(body) == {"download_id": "dl-7", "attempt": 1, "sequence": 1} and attributes == {}
    now[0] += DEFERRED_DELAY_SECONDS  # a new window: the budget admits the POST
    job = {"id": "job-7", "output_url": f"{http_server.base_url}/async-response/job-7"}
    http_server.answers.append(Answer(200, {"success": True, "status": "processing", "data": job}))
    returned = SimpleNamespace(**{**vars(record(body, 1)), "message_id": "m-2"})
    assert delivery.handle(returned, 60_000) is RecordResult.WORKFLOW_STARTED
    assert [(r["method"], r["path"]) for r in http_server.seen] == [("POST", "/download/dl-7")]
