"""The circuit breaker's AWS adapters: its state and counts in DynamoDB, the event source
mapping it switches, and the events it announces. No decisions here (see ``breaker``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from videodb_retry.adapters.aws_clients import client
from videodb_retry.observability import logger
from videodb_retry.rules.breaker import Bucket, Mode, State, StateConflict

# Items in the idempotency table (key "id"); no Powertools record uses this prefix.
STATE_KEY = "breaker#state"
BUCKET_KEY = "breaker#bucket#{start}"
BUCKET_TTL_SECONDS = 24 * 60 * 60  # counts are only read for one window; TTL cleans them up
MAX_BATCH_GET = 100  # DynamoDB BatchGetItem's limit of keys per call


class SwitchRefused(Exception):
    """Lambda refused to change the event source mapping (logged with the reason, counted)."""


class DynamoDBBreakerStore:
    """The breaker's state item and its counting buckets, in one DynamoDB table."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def load(self) -> State:
        """The stored state; a breaker never stored is closed."""
        item = (
            client("dynamodb")
            .get_item(TableName=self._table, Key={"id": {"S": STATE_KEY}}, ConsistentRead=True)
            .get("Item")
        )
        if not item:
            return State()
        return State(
            mode=Mode(item["mode"]["S"]),
            since=float(item["since"]["N"]),
            reason=item.get("reason", {}).get("S", ""),
            manual=item.get("manual", {}).get("BOOL", False),
            concurrency=int(item["concurrency"]["N"]),
            last_probe_at=float(item.get("last_probe_at", {}).get("N", "0")),
            probes=int(item.get("probes", {}).get("N", "0")),
            version=int(item["version"]["N"]),
        )

    def save(self, state: State) -> State:
        """Write ``state`` if the stored version is still ``state.version``; returns it with
        the next version. Raises :class:`StateConflict` when another writer came first."""
        saved = State(**{**state.__dict__, "version": state.version + 1})
        item = {
            "id": {"S": STATE_KEY},
            "mode": {"S": saved.mode.value},
            "since": {"N": _number(saved.since)},
            "reason": {"S": saved.reason[:1000]},
            "manual": {"BOOL": saved.manual},
            "concurrency": {"N": str(saved.concurrency)},
            "last_probe_at": {"N": _number(saved.last_probe_at)},
            "probes": {"N": str(saved.probes)},
            "version": {"N": str(saved.version)},
        }
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(id)"}
            if state.version == 0
            else {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": {"N": str(state.version)}},
            }
        )
        try:
            client("dynamodb").put_item(TableName=self._table, Item=item, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise StateConflict("the breaker's state changed meanwhile") from None
            raise
        return saved

    def add(self, start: int, attempts: int, failures: int) -> None:
        """Add one batch's counts to the bucket beginning at ``start`` (atomic ADD)."""
        client("dynamodb").update_item(
            TableName=self._table,
            Key={"id": {"S": BUCKET_KEY.format(start=start)}},
            UpdateExpression="ADD attempts :a, failures :f SET expiration = if_not_exists(expiration, :e)",
            ExpressionAttributeValues={
                ":a": {"N": str(attempts)},
                ":f": {"N": str(failures)},
                ":e": {"N": str(int(time.time()) + BUCKET_TTL_SECONDS)},
            },
        )

    def buckets(self, starts: list[int]) -> list[Bucket]:
        """The buckets that exist among ``starts`` (unprocessed keys are read again)."""
        found: list[Bucket] = []
        for first in range(0, len(starts), MAX_BATCH_GET):
            keys = [{"id": {"S": BUCKET_KEY.format(start=s)}} for s in starts[first : first + MAX_BATCH_GET]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(5):  # bounded: what is still unprocessed after that fails the tick
                answer = client("dynamodb").batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    found.append(
                        Bucket(
                            start=int(item["id"]["S"].rsplit("#", 1)[1]),
                            attempts=int(item.get("attempts", {}).get("N", "0")),
                            failures=int(item.get("failures", {}).get("N", "0")),
                        )
                    )
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            if request:
                raise RuntimeError("DynamoDB left breaker buckets unread after 5 tries")
        return found


@dataclass(frozen=True)
class EventSourceMapping:
    """The parts of the retry queue's mapping the switch reads (from GetEventSourceMapping)."""

    uuid: str
    state: str  # Enabled, Disabled, or changing: Enabling, Disabling, Updating, Creating, ...
    maximum_concurrency: int | None  # ScalingConfig.MaximumConcurrency; None when not set

    @classmethod
    def from_lambda(cls, mapping: dict[str, Any]) -> EventSourceMapping:
        """Read Lambda's description of one mapping."""
        return cls(
            uuid=mapping["UUID"],
            state=mapping.get("State", ""),
            maximum_concurrency=(mapping.get("ScalingConfig") or {}).get("MaximumConcurrency"),
        )

    @property
    def changing(self) -> bool:
        """True while Lambda is still carrying out an earlier change (left for the next tick)."""
        return self.state in ("Enabling", "Disabling", "Updating", "Creating")


class MappingSwitch:
    """The retry queue's event source mapping, by the id the template gives it (the breaker's
    role may read and update that one mapping only)."""

    def __init__(self, mapping_id: str) -> None:
        self._uuid = mapping_id

    def describe(self) -> EventSourceMapping:
        """The mapping as Lambda describes it now."""
        return EventSourceMapping.from_lambda(self._call("get_event_source_mapping", UUID=self._uuid))

    def apply(self, mode: Mode, concurrency: int) -> bool:
        """Make the mapping match ``mode`` (and ``concurrency`` when closed); True if changed.

        A mapping still changing (Enabling, Disabling, Updating) is left for the next tick.
        """
        mapping = self.describe()
        want_enabled = mode is Mode.CLOSED
        if mapping.changing:
            logger.info(
                "event source mapping is changing; left for the next tick", extra={"state": mapping.state}
            )
            return False
        enabled = mapping.state == "Enabled"
        if enabled == want_enabled and (not want_enabled or mapping.maximum_concurrency == concurrency):
            return False
        change: dict[str, Any] = {"UUID": self._uuid, "Enabled": want_enabled}
        if want_enabled:
            change["ScalingConfig"] = {"MaximumConcurrency": concurrency}
        self._call("update_event_source_mapping", **change)
        return True

    def _call(self, operation: str, **parameters: Any) -> dict[str, Any]:
        """One Lambda call; a refusal is a :class:`SwitchRefused` with Lambda's reason."""
        try:
            answer: dict[str, Any] = getattr(client("lambda"), operation)(**parameters)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            api = "".join(word.title() for word in operation.split("_"))  # GetEventSourceMapping
            raise SwitchRefused(f"{api} refused: {error.get('Code')}: {error.get('Message')}") from None
        return answer


class PauseAnnouncer:
    """Puts ``Retry Paused`` / ``Retry Resumed`` on the app's event bus."""

    def __init__(self, event_bus_name: str, source: str) -> None:
        self._bus = event_bus_name
        self._source = source

    def announce(self, detail_type: str, detail: dict[str, Any]) -> None:
        """One event; raises if EventBridge refuses it (the tick fails and is logged)."""
        answer = client("events").put_events(
            Entries=[
                {
                    "Source": self._source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self._bus,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            entry = answer["Entries"][0]
            raise RuntimeError(
                f"EventBridge refused {detail_type}: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            )


def _number(value: float) -> str:
    return str(Decimal(str(round(value, 3))))
