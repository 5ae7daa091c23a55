"""The sweeper's adapters: its claims in DynamoDB, its "download failed" events on EventBridge.

They implement :class:`~videodb_retry.ports.FailureClaims` and
:class:`~videodb_retry.ports.FailureEvents`; when to claim and what to publish is sweeper.py's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from videodb_retry.aws_clients import client


class DynamoDBClaims:
    """Claims kept in the template's state table (TTL on ``expiration``)."""

    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def claim(self, claim_id: str, now: datetime, expires: datetime, stale_before: datetime) -> bool:
        """Write a ``pending`` claim unless one exists that is published or not yet stale."""
        ddb = client("dynamodb")
        try:
            ddb.put_item(
                TableName=self._table_name,
                Item={
                    "id": {"S": claim_id},
                    "expiration": {"N": str(int(expires.timestamp()))},
                    "state": {"S": "pending"},
                    "claimed_at": {"N": str(int(now.timestamp()))},
                },
                ConditionExpression="attribute_not_exists(id) OR (#s = :pending AND claimed_at < :stale)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":pending": {"S": "pending"},
                    ":stale": {"N": str(int(stale_before.timestamp()))},
                },
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def mark_published(self, claim_id: str) -> None:
        """Mark the claim ``published``: no later run takes it over."""
        client("dynamodb").update_item(
            TableName=self._table_name,
            Key={"id": {"S": claim_id}},
            UpdateExpression="SET #s = :published",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":published": {"S": "published"}},
        )

    def forget(self, claim_id: str) -> None:
        """Drop the claim, so the next run publishes this failure."""
        client("dynamodb").delete_item(TableName=self._table_name, Key={"id": {"S": claim_id}})


class EventBridgeFailureEvents:
    """Puts "download failed" events on the bus (one PutEvents call per batch)."""

    def __init__(self, source: str, detail_type: str, event_bus_name: str) -> None:
        self._source = source
        self._detail_type = detail_type
        self._event_bus_name = event_bus_name

    def put(self, details: Sequence[dict[str, Any]], time: datetime) -> list[str | None]:
        """Put one event per detail; the error code of each entry (None when accepted)."""
        entries = [
            {
                "Source": self._source,
                "DetailType": self._detail_type,
                "EventBusName": self._event_bus_name,
                "Time": time,
                "Detail": json.dumps(detail),
            }
            for detail in details
        ]
        answer = client("events").put_events(Entries=entries)
        codes: list[str | None] = [entry.get("ErrorCode") for entry in answer.get("Entries", [])]
        # An answer shorter than the request is read as "accepted", as before the split.
        return codes + [None] * (len(details) - len(codes))
