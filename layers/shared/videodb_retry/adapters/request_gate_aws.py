"""The shared request budget's counts in DynamoDB: the adapter behind ``ports.RequestGate``.

One item per budget class and one-second window (``gate#<class>#<window>``) in the
idempotency table; every take adds one to its ``used`` count (one UpdateItem) and the rule
(:meth:`Budgets.admits`) decides on the count before it. Refusals are counted too, which
changes nothing about who is admitted (``admits`` is "fewer than N before you") and shows how
far demand overran the budget. A TTL removes the items.

Rules encoded here:
- UpdateItem with ``ADD`` creates the item and the number on first use and returns the new
  value with ``ReturnValues=UPDATED_NEW`` ("UpdateItem", DynamoDB API Reference).
- The table's TTL attribute is ``expiration``, epoch seconds ("Using time to live (TTL) in
  DynamoDB", DynamoDB Developer Guide); items expire within a few days of it.
- One partition key takes up to 1,000 write units a second ("Best practices for designing
  and using partition keys effectively"): a window's item takes one write per take, at most
  a few tens a second with the defaults (the retry function's waiting threads).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from videodb_retry.errors import TransientError
from videodb_retry.rules.budgets import Budgets, RequestKind, request_class, window_of

GATE_KEY = "gate#{cls}#{window}"
GATE_TTL_SECONDS = 3600  # a window's count is only read during that second
# Short timeouts: a take sits inside a poll invocation whose whole hard limit is seconds, so a
# slow DynamoDB answer must fail fast (the poll then ends as a transient error, retried).
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1, read_timeout=1)


@cache
def gate_client() -> Any:
    """The DynamoDB client the gate counts with (short timeouts), one per process, built where a
    handler module builds its gate: before any worker thread runs (boto3 clients are not built
    thread-safely)."""
    return boto3.client("dynamodb", config=_CONFIG)


class DynamoDBRequestGate:
    """Counts takes per class and window in DynamoDB; ``budgets`` decides."""

    def __init__(self, table_name: str, budgets: Budgets, dynamodb: Any = None) -> None:
        self._table = table_name
        self._budgets = budgets
        self._dynamodb = dynamodb or gate_client()

    def take(self, kind: RequestKind, now: float) -> bool:
        """Count one take of ``kind``'s class in ``now``'s window; True when it is admitted."""
        window = window_of(now)
        try:
            answer = self._dynamodb.update_item(
                TableName=self._table,
                Key={"id": {"S": GATE_KEY.format(cls=request_class(kind).value, window=window)}},
                UpdateExpression="ADD used :one SET expiration = if_not_exists(expiration, :expires)",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":expires": {"N": str(window + GATE_TTL_SECONDS)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except (BotoCoreError, ClientError) as exc:
            # Not a refusal by the budget: the count could not be taken. Transient, with AWS's
            # reason (the poll is retried by the workflow, the record redelivered by SQS).
            raise TransientError(f"the request budget's count was not taken: {exc}") from None
        used_before = int(answer["Attributes"]["used"]["N"]) - 1
        return self._budgets.admits(kind, used_before)
