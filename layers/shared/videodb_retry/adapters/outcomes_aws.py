"""Sending an outcome that ends inside the retry function: re-queue on SQS, announce on EventBridge.

The adapter behind :class:`~videodb_retry.ports.OutcomeSink`; what is sent is built by
:class:`~videodb_retry.rules.outcomes.Outcome`.
"""

from __future__ import annotations

import json

from videodb_retry.adapters.aws_clients import client
from videodb_retry.errors import TransientError
from videodb_retry.rules.outcomes import Outcome
from videodb_retry.settings import Settings


class OutcomePublisher:
    """Re-queues and announces outcomes that end inside the retry function."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def settle(self, outcome: Outcome) -> None:
        """Re-queue the download if attempts remain, then publish the outcome event.

        The re-queue comes first: if it fails the record fails and is redelivered, so the
        download is never left with neither a next attempt nor an announcement.
        """
        if outcome.will_retry:
            client("sqs").send_message(
                QueueUrl=self._settings.retry_queue_url,
                MessageBody=outcome.next_request().to_body(),
                DelaySeconds=min(self._settings.requeue_delay_seconds, 900),
            )
        self.publish(outcome)

    def publish(self, outcome: Outcome) -> None:
        """Put the outcome event on the event bus; raise if EventBridge did not take it."""
        answer = client("events").put_events(
            Entries=[
                {
                    "Source": self._settings.outcome_event_source,
                    "DetailType": outcome.detail_type,
                    "Detail": json.dumps(outcome.detail()),
                    "EventBusName": self._settings.event_bus_name,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            entry = answer["Entries"][0]
            raise TransientError(f"outcome event not accepted: {entry.get('ErrorCode')}")
