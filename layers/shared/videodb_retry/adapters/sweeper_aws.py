"""The sweeper's adapters: its claims and cursor in DynamoDB, its "download failed" events on
EventBridge.

They implement :class:`~videodb_retry.ports.FailureClaims`,
:class:`~videodb_retry.ports.SweepCursors` and :class:`~videodb_retry.ports.FailureEvents`;
when to claim, where to resume and what to publish is sweeper.py's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from videodb_retry.adapters.aws_clients import client
from videodb_retry.rules.sweep_cursor import Anchor, SweepCursor

# The cursor's key in the state table. Claims are "sweeper#<id>#<created_at>": never equal.
CURSOR_ID = "sweeper-cursor"
# An item is at most 400 KB ("Service, account, and table quotas in Amazon DynamoDB"); the
# anchor's id is VideoDB's and unchecked, so it is capped. A capped id never matches: the
# pass then starts over, which is safe.
MAX_ANCHOR_ID = 1024


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


class DynamoDBSweepCursors:
    """The sweeper's cursor: one item (``CURSOR_ID``) in the state table, TTL on ``expiration``."""

    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def load(self) -> SweepCursor | None:
        """The stored cursor, or None (never stored, or expired)."""
        answer = client("dynamodb").get_item(
            TableName=self._table_name, Key={"id": {"S": CURSOR_ID}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return cursor_from_item(item) if item else None

    def save(self, cursor: SweepCursor, expires: datetime) -> None:
        """Store ``cursor`` (overwriting: the last writer wins, see sweep_cursor.py)."""
        client("dynamodb").put_item(TableName=self._table_name, Item=cursor_item(cursor, expires))


def cursor_item(cursor: SweepCursor, expires: datetime) -> dict[str, Any]:
    """The DynamoDB item of a cursor."""
    anchor = cursor.anchor
    return {
        "id": {"S": CURSOR_ID},
        "expiration": {"N": str(int(expires.timestamp()))},
        "next_page": {"N": str(cursor.next_page)},
        "pass_started": {"S": _iso(cursor.pass_started)},
        "anchor_id": {"S": anchor.download_id[:MAX_ANCHOR_ID] if anchor else ""},
        "anchor_created": {"S": _iso(anchor.created) if anchor else ""},
        "has_anchor": {"BOOL": anchor is not None},
        "newest_first": {"BOOL": cursor.newest_first},
        "descended": {"BOOL": cursor.descended},
        "last_run_at": {"S": _iso(cursor.last_run_at)},
        "last_run": {"S": json.dumps(cursor.last_run)},
    }


def cursor_from_item(item: dict[str, Any]) -> SweepCursor:
    """A cursor from its DynamoDB item (as ``get_item`` returns it)."""

    def text(name: str) -> str:
        return str(item.get(name, {}).get("S", ""))

    anchor = None
    if item.get("has_anchor", {}).get("BOOL"):
        anchor = Anchor(text("anchor_id"), _from_iso(text("anchor_created")))
    try:
        last_run = json.loads(text("last_run") or "{}")
    except ValueError:
        last_run = {}
    return SweepCursor(
        next_page=int(item.get("next_page", {}).get("N", "0")),
        pass_started=_from_iso(text("pass_started")),
        anchor=anchor,
        newest_first=bool(item.get("newest_first", {}).get("BOOL", True)),
        descended=bool(item.get("descended", {}).get("BOOL", False)),
        last_run_at=_from_iso(text("last_run_at")),
        last_run=last_run if isinstance(last_run, dict) else {},
    )


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _from_iso(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


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
