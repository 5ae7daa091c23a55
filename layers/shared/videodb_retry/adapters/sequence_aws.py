"""Each download's retry sequences in DynamoDB: the adapter behind
:class:`~videodb_retry.ports.SequenceStore` (the rules are ``sequence``).

One item per download in the idempotency table (key ``sequence#<download_id>``; no Powertools
record uses that prefix), written with a version condition: DynamoDB's conditional writes are
atomic, so two records of one batch reporting the same download never both begin a sequence
("Condition expressions", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html).
TTL on ``expiration`` (epoch seconds) removes it once the bound's period is over.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from videodb_retry.adapters.aws_clients import client
from videodb_retry.rules.sanitise import clean_text
from videodb_retry.rules.sequence import SequenceConflict, SequenceRecord

KEY = "sequence#{download_id}"


class DynamoDBSequenceStore:
    """Loads and saves :class:`SequenceRecord` items with optimistic versions."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def load(self, download_id: str) -> SequenceRecord | None:
        """The stored record (strongly consistent: a begin must see the last end)."""
        item = (
            client("dynamodb")
            .get_item(TableName=self._table, Key=_key(download_id), ConsistentRead=True)
            .get("Item")
        )
        if not item:
            return None
        return SequenceRecord(
            download_id=download_id,
            number=int(item["number"]["N"]),
            running=item["running"]["BOOL"],
            begun_by=item.get("begun_by", {}).get("S", ""),
            touched_at=float(item["touched_at"]["N"]),
            covered_until=float(item["covered_until"]["N"]),
            ended_as=item.get("ended_as", {}).get("S", ""),
            starts=tuple(float(n) for n in item.get("starts", {}).get("NS", [])),
            refused_reason=item.get("refused_reason", {}).get("S", ""),
            version=int(item["version"]["N"]),
        )

    def save(self, record: SequenceRecord, expires_at: float) -> None:
        """Write ``record`` as the next version; :class:`SequenceConflict` if another came first."""
        item: dict[str, Any] = {
            **_key(record.download_id),
            "number": {"N": str(record.number)},
            "running": {"BOOL": record.running},
            "touched_at": {"N": _number(record.touched_at)},
            "covered_until": {"N": _number(record.covered_until)},
            "version": {"N": str(record.version + 1)},
            "expiration": {"N": str(int(expires_at))},
        }
        # DynamoDB refuses empty strings in keys only, and empty sets anywhere: left out.
        for name, value in (
            ("begun_by", record.begun_by),
            ("ended_as", record.ended_as),
            ("refused_reason", clean_text(record.refused_reason)),
        ):
            if value:
                item[name] = {"S": value}
        if record.starts:
            item["starts"] = {"NS": sorted({_number(t) for t in record.starts})}
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(id)"}
            if record.version == 0
            else {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": {"N": str(record.version)}},
            }
        )
        try:
            client("dynamodb").put_item(TableName=self._table, Item=item, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise SequenceConflict(record.download_id) from None
            raise


def _key(download_id: str) -> dict[str, Any]:
    return {"id": {"S": KEY.format(download_id=download_id)}}


def _number(value: float) -> str:
    return str(Decimal(str(round(value, 3))))
