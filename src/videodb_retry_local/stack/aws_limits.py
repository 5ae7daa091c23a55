"""The AWS limits moto does not enforce, checked on every AWS call of a local run.

:func:`strict_aws` wraps ``botocore.client.BaseClient._make_api_call``, the one method every
botocore client goes through (the functions' clients, Powertools' own, and the clients moto's
Step Functions interpreter creates for the workflow's SQS and EventBridge tasks). Each request
is checked against the rules below before moto sees it; a request that real AWS would refuse
raises :class:`LimitExceeded` (a ``ClientError``, as AWS answers) naming the limit and value,
and is recorded. Code may catch the error, as it would catch AWS's; the record is what makes
the run fail: :func:`strict_aws` raises :class:`LimitsViolated` on exit if any was recorded.

Each rule names the AWS page that states it.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

from botocore.client import BaseClient
from botocore.exceptions import ClientError

SQS_QUOTAS = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html"
SQS_VISIBILITY = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html"
)
SQS_SEND = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html"
SFN_QUOTAS = "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"
EVENTS_SIZE = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html"
EVENTS_PUT = "https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html"
DYNAMODB_QUOTAS = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"

# SQS: a message (body plus every attribute's name, type and value) is at most 256 KiB. SQS
# has since raised its own limit to 1 MiB; this layer keeps to 256 KiB, the limit issue 9
# names and the one the DLQ code budgets for, so a run stays valid on either side of the raise.
SQS_MAX_MESSAGE_BYTES = 256 * 1024
SQS_MAX_ATTRIBUTES = 10
SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_VISIBILITY_SECONDS = 12 * 60 * 60  # counted from the receive, not from the call
SQS_MAX_BATCH_ENTRIES = 10
# The XML character set SQS accepts in bodies and String attribute values.
_SQS_REFUSED_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Calls whose refusal the functions catch and go on from (a failed record keeps the queue's
# visibility timeout): moto's refusal of one of them is recorded as a violation.
TOLERATED_REFUSALS = frozenset({"ChangeMessageVisibility", "ChangeMessageVisibilityBatch"})
SFN_MAX_NAME = 80
SFN_MAX_INPUT_BYTES = 256 * 1024
# Characters an execution name must not contain: whitespace, brackets, wildcards, specials,
# control characters (U+0000-001F, U+007F-009F).
_SFN_REFUSED_NAME_CHARS = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")
EVENTS_MAX_ENTRY_BYTES = 256 * 1024
EVENTS_MAX_ENTRIES = 10
DYNAMODB_MAX_ITEM_BYTES = 400 * 1024


@dataclass(frozen=True)
class Violation:
    """One request real AWS would refuse."""

    operation: str
    limit: str
    value: str
    source: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.limit} (got {self.value}) - {self.source}"


class LimitExceeded(ClientError):
    """A request refused by the strict layer, shaped as AWS's own refusal."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(
            {"Error": {"Code": "InvalidParameterValue", "Message": f"strict AWS limit: {violation}"}},
            violation.operation,
        )
        self.violation = violation


class LimitsViolated(AssertionError):
    """The run made requests real AWS would have refused (raised when the layer is removed)."""


class StrictAws:
    """The rules, the receive time of each receipt handle, and what was violated."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.violations: list[Violation] = []
        self._clock = clock
        self._received: dict[str, float] = {}
        self._lock = threading.Lock()

    def before(self, operation: str, params: dict[str, Any]) -> None:
        """Raise :class:`LimitExceeded` (and record it) if AWS would refuse this request."""
        rule = _RULES.get(operation)
        found = list(rule(self, params)) if rule else []
        if found:
            with self._lock:
                self.violations.extend(found)
            raise LimitExceeded(found[0])

    def after(self, operation: str, params: dict[str, Any], answer: dict[str, Any]) -> None:
        """Note what later checks need: when each receipt handle was received."""
        if operation == "ReceiveMessage":
            now = self._clock()
            with self._lock:
                for message in answer.get("Messages", []):
                    self._received[message["ReceiptHandle"]] = now
        elif operation == "DeleteMessage":
            with self._lock:
                self._received.pop(params.get("ReceiptHandle", ""), None)

    def refused(self, operation: str, error: ClientError) -> None:
        """Record moto's refusal of a call the functions tolerate (they log, count and go
        on, see record_delivery.py): locally such a refusal is a bug, so it fails the run too."""
        if operation in TOLERATED_REFUSALS:
            code = error.response.get("Error", {}).get("Code", "?")
            with self._lock:
                self.violations.append(Violation(operation, "refused by AWS", code, SQS_VISIBILITY))

    def take_violations(self) -> list[Violation]:
        """The violations so far, forgotten (for tests that provoke them on purpose)."""
        with self._lock:
            found, self.violations = self.violations, []
        return found

    def visibility_left(self, receipt_handle: str) -> float:
        """Seconds of visibility a message may still be given (12 h from its receive)."""
        with self._lock:
            received = self._received.get(receipt_handle)
        elapsed = 0.0 if received is None else self._clock() - received
        return SQS_MAX_VISIBILITY_SECONDS - elapsed


_active: list[StrictAws] = []


def active() -> StrictAws | None:
    """The layer installed by the innermost :func:`strict_aws`, if any."""
    return _active[-1] if _active else None


@contextlib.contextmanager
def strict_aws(layer: StrictAws | None = None) -> Iterator[StrictAws]:
    """Check every botocore call against the limits; raise :class:`LimitsViolated` on exit
    if any call broke one (even if the code that made it caught the refusal)."""
    strict = layer or StrictAws()
    original = BaseClient._make_api_call

    def checked(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        strict.before(operation, params)
        try:
            answer = original(client, operation, params)
        except ClientError as exc:
            strict.refused(operation, exc)
            raise
        strict.after(operation, params, answer)
        return answer

    _active.append(strict)
    try:
        with mock.patch.object(BaseClient, "_make_api_call", checked):
            yield strict
    finally:
        _active.remove(strict)
    if strict.violations:
        lines = "\n  ".join(str(v) for v in strict.violations[:20])
        raise LimitsViolated(f"{len(strict.violations)} request(s) real AWS would refuse:\n  {lines}")


# -- SQS ------------------------------------------------------------------------------------


def _sqs_text(operation: str, what: str, text: str) -> Iterator[Violation]:
    bad = _SQS_REFUSED_CHARS.search(text)
    if bad:
        yield Violation(
            operation,
            f"{what}: only #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF",
            f"U+{ord(bad.group()):04X} at {bad.start()}",
            SQS_QUOTAS,
        )


def _sqs_message(operation: str, entry: dict[str, Any]) -> Iterator[Violation]:
    body = entry.get("MessageBody", "")
    if not body:
        yield Violation(operation, "message body must not be empty", "empty", SQS_SEND)
    yield from _sqs_text(operation, "message body characters", body)
    attributes = entry.get("MessageAttributes") or {}
    if len(attributes) > SQS_MAX_ATTRIBUTES:
        yield Violation(
            operation, f"at most {SQS_MAX_ATTRIBUTES} message attributes", str(len(attributes)), SQS_QUOTAS
        )
    size = len(body.encode("utf-8", "surrogatepass"))
    for name, value in attributes.items():
        data_type = value.get("DataType", "")
        text = value.get("StringValue")
        if text is not None:
            if text == "":
                yield Violation(operation, f"attribute {name} value must not be empty", "empty", SQS_SEND)
            yield from _sqs_text(operation, f"attribute {name} characters", text)
            size += len(text.encode("utf-8", "surrogatepass"))
        size += len(name.encode()) + len(data_type.encode()) + len(value.get("BinaryValue") or b"")
    if size > SQS_MAX_MESSAGE_BYTES:
        yield Violation(
            operation, f"message with attributes at most {SQS_MAX_MESSAGE_BYTES} bytes", str(size), SQS_QUOTAS
        )
    delay = entry.get("DelaySeconds")
    if delay is not None and not 0 <= int(delay) <= SQS_MAX_DELAY_SECONDS:
        yield Violation(operation, f"DelaySeconds 0-{SQS_MAX_DELAY_SECONDS}", str(delay), SQS_SEND)


def _send_message(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    yield from _sqs_message("SendMessage", params)


def _send_message_batch(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    entries = params.get("Entries", [])
    if not 1 <= len(entries) <= SQS_MAX_BATCH_ENTRIES:
        yield Violation(
            "SendMessageBatch", f"1-{SQS_MAX_BATCH_ENTRIES} entries", str(len(entries)), SQS_QUOTAS
        )
    for entry in entries:
        yield from _sqs_message("SendMessageBatch", entry)


def _visibility(strict: StrictAws, operation: str, handle: str, seconds: Any) -> Iterator[Violation]:
    left = strict.visibility_left(handle)
    if not 0 <= int(seconds) <= left:
        yield Violation(
            operation,
            f"VisibilityTimeout within 12 h of the receive ({max(0, int(left))} s left)",
            str(seconds),
            SQS_VISIBILITY,
        )


def _change_visibility(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    yield from _visibility(
        strict, "ChangeMessageVisibility", params.get("ReceiptHandle", ""), params.get("VisibilityTimeout", 0)
    )


def _change_visibility_batch(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    for entry in params.get("Entries", []):
        yield from _visibility(
            strict,
            "ChangeMessageVisibilityBatch",
            entry.get("ReceiptHandle", ""),
            entry.get("VisibilityTimeout", 0),
        )


def _receive(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    seconds = params.get("VisibilityTimeout")
    if seconds is not None and not 0 <= int(seconds) <= SQS_MAX_VISIBILITY_SECONDS:
        yield Violation(
            "ReceiveMessage",
            f"VisibilityTimeout 0-{SQS_MAX_VISIBILITY_SECONDS}",
            str(seconds),
            SQS_VISIBILITY,
        )


# -- Step Functions, EventBridge, DynamoDB ---------------------------------------------------


def _start_execution(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    name = params.get("name")
    if name is not None:
        bad = _SFN_REFUSED_NAME_CHARS.search(name)
        if not 1 <= len(name) <= SFN_MAX_NAME or bad:
            why = f"{len(name)} characters" if not bad else f"U+{ord(bad.group()):04X} at {bad.start()}"
            yield Violation(
                "StartExecution", f"execution name 1-{SFN_MAX_NAME} allowed characters", why, SFN_QUOTAS
            )
    payload = params.get("input", "{}")
    size = len(payload.encode("utf-8", "surrogatepass"))
    if size > SFN_MAX_INPUT_BYTES:
        yield Violation("StartExecution", f"input at most {SFN_MAX_INPUT_BYTES} bytes", str(size), SFN_QUOTAS)


def _put_events(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    entries = params.get("Entries", [])
    if not 1 <= len(entries) <= EVENTS_MAX_ENTRIES:
        yield Violation("PutEvents", f"1-{EVENTS_MAX_ENTRIES} entries", str(len(entries)), EVENTS_PUT)
    for entry in entries:
        size = 14 if entry.get("Time") is not None else 0
        for key in ("Source", "DetailType", "Detail"):
            size += len(str(entry.get(key, "")).encode("utf-8", "surrogatepass"))
        size += sum(len(r.encode("utf-8", "surrogatepass")) for r in entry.get("Resources", []))
        if size > EVENTS_MAX_ENTRY_BYTES:
            yield Violation(
                "PutEvents", f"entry at most {EVENTS_MAX_ENTRY_BYTES} bytes", str(size), EVENTS_SIZE
            )
        try:
            detail = json.loads(entry.get("Detail", ""))
        except ValueError:
            detail = None
        if not isinstance(detail, dict):
            yield Violation(
                "PutEvents", "Detail must be a JSON object", repr(entry.get("Detail"))[:60], EVENTS_PUT
            )


def attribute_value_bytes(value: dict[str, Any]) -> int:
    """Approximate stored size of one DynamoDB attribute value (DynamoDB's own accounting:
    strings and binaries by their length, numbers up to 21 bytes, 3 bytes per list or map)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8", "surrogatepass"))
    if kind == "B":
        return len(inner)
    if kind == "N":
        return min(21, len(inner.lstrip("-").replace(".", "")) // 2 + 2)
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_value_bytes({kind[0]: v}) for v in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_value_bytes(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_value_bytes(v) for k, v in inner.items())
    return 1  # BOOL, NULL


def _item_bytes(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_value_bytes(value) for name, value in item.items())


def _put_item(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    size = _item_bytes(params.get("Item", {}))
    if size > DYNAMODB_MAX_ITEM_BYTES:
        yield Violation(
            "PutItem", f"item at most {DYNAMODB_MAX_ITEM_BYTES} bytes", str(size), DYNAMODB_QUOTAS
        )


def _update_item(strict: StrictAws, params: dict[str, Any]) -> Iterator[Violation]:
    # What the update writes, plus the key: a lower bound of the item's size after it.
    size = _item_bytes(params.get("Key", {})) + _item_bytes(params.get("ExpressionAttributeValues", {}))
    if size > DYNAMODB_MAX_ITEM_BYTES:
        yield Violation(
            "UpdateItem", f"item at most {DYNAMODB_MAX_ITEM_BYTES} bytes", str(size), DYNAMODB_QUOTAS
        )


_RULES: dict[str, Callable[[StrictAws, dict[str, Any]], Iterator[Violation]]] = {
    "SendMessage": _send_message,
    "SendMessageBatch": _send_message_batch,
    "ChangeMessageVisibility": _change_visibility,
    "ChangeMessageVisibilityBatch": _change_visibility_batch,
    "ReceiveMessage": _receive,
    "StartExecution": _start_execution,
    "PutEvents": _put_events,
    "PutItem": _put_item,
    "UpdateItem": _update_item,
}
