"""Our own request budget never spends a message's receives: a POST it cannot admit within the
invocation's time is put back on the queue as a new message, and nothing is sent to VideoDB."""

from __future__ import annotations

from types import SimpleNamespace

from videodb_retry.budgets import Budgets, RequestKind
from videodb_retry.client import VideoDBClient
from videodb_retry.gated_videodb import GatedVideoDB
from videodb_retry.record_delivery import DEFERRED_DELAY_SECONDS, RecordDelivery
from videodb_retry.retry_attempt import RecordResult, RetryService

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
        attributes=SimpleNamespace(approximate_receive_count=str(receive_count), sent_timestamp="499000"),
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
    # The redriven record is an operator's report: admitted as sequence 1, it comes back as
    # that sequence's first attempt (a copy of the report would be its sequence's duplicate).
    assert deferrals.deferred == [
        ('{"download_id":"dl-1","attempt":1,"sequence":1}', {}, DEFERRED_DELAY_SECONDS)
    ]
    assert http_server.seen == [] and dead_letters.sent == [] and visibility.calls == []
