"""The retry queue's adapters: a received record's visibility (:class:`~videodb_retry.ports.Visibility`)
and putting a record back as a new message (:class:`~videodb_retry.ports.Deferrals`)."""

from __future__ import annotations

from typing import Any

from videodb_retry.adapters.aws_clients import client


class VisibilityBackoff:
    """Applies a delay to one received message of the retry queue."""

    def __init__(self, queue_url: str) -> None:
        self._queue_url = queue_url

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        """Make the message visible again only after ``seconds``."""
        client("sqs").change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )


class QueueDeferrals:
    """Puts a received record back on the retry queue as a new message (the adapter behind
    :class:`~videodb_retry.ports.Deferrals`)."""

    def __init__(self, queue_url: str) -> None:
        self._queue_url = queue_url

    def defer(self, body: str, message_attributes: dict[str, Any], delay_seconds: int) -> None:
        """Send ``body`` with its String/Number attributes after ``delay_seconds`` (0-900, the
        range SendMessage's DelaySeconds takes: "SendMessage", Amazon SQS API Reference)."""
        client("sqs").send_message(
            QueueUrl=self._queue_url,
            MessageBody=body,
            DelaySeconds=max(0, min(delay_seconds, 900)),
            MessageAttributes=_sendable(message_attributes),
        )


def _sendable(attributes: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Lambda's event form of message attributes (``stringValue``, ``dataType``) as
    SendMessage takes them; binary ones are left out (this app never sends any)."""
    sendable = {}
    for name, value in attributes.items():
        text = value.get("stringValue", value.get("StringValue"))
        kind = value.get("dataType", value.get("DataType", "String"))
        if text is not None and not kind.startswith("Binary"):
            sendable[name] = {"DataType": kind, "StringValue": text}
    return sendable
