"""Sending a message that can never succeed to the dead-letter queue, with the reason."""

from __future__ import annotations

from typing import Any

from videodb_retry.adapters.aws_clients import client
from videodb_retry.rules.messages import DEAD_LETTER_MARK
from videodb_retry.rules.sanitise import MAX_TEXT_CHARS, TRUNCATED, clean_text
from videodb_retry.settings import Settings

# The reason is often VideoDB's message: the one cap on its text (sanitise.py), not a second.
MAX_ATTRIBUTE_LENGTH = MAX_TEXT_CHARS
# SQS counts the body and every attribute's name, type and value against one message limit
# (256 KiB, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html):
# the body gets what the attributes leave.
MAX_MESSAGE_BYTES = 256 * 1024


class DeadLetterQueue:
    """Moves poison input and permanent failures to the DLQ, keeping the original body."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.dead_letter_queue_url

    def send(
        self,
        body: str,
        reason: str,
        error_code: str,
        source_message_id: str,
        download_id: str | None = None,
        receive_count: int | None = None,
    ) -> None:
        """Send ``body`` with its reason as message attributes.

        Every attribute value is cleaned (:func:`~videodb_retry.rules.sanitise.clean_text`): the
        reason is often VideoDB's own message, and SQS refuses characters outside the XML set.
        Raises on failure, so the caller fails the record instead of dropping it.
        """
        attributes = {
            "reason": _string(reason),
            DEAD_LETTER_MARK: _string(error_code),
            "source_message_id": _string(source_message_id),
        }
        if download_id:
            attributes["download_id"] = _string(download_id)
        if receive_count is not None:
            attributes["receive_count"] = {"DataType": "Number", "StringValue": str(receive_count)}
        client("sqs").send_message(
            QueueUrl=self._url,
            MessageBody=_keepable(body, MAX_MESSAGE_BYTES - attribute_bytes(attributes)),
            MessageAttributes=attributes,
        )


def attribute_bytes(attributes: dict[str, dict[str, Any]]) -> int:
    """What SQS counts of message attributes: each name, data type and value, in UTF-8."""
    return sum(
        len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
        for name, value in attributes.items()
    )


def _string(value: str) -> dict[str, Any]:
    # Attribute values must be non-empty and in SQS's character set.
    return {"DataType": "String", "StringValue": clean_text(value, MAX_ATTRIBUTE_LENGTH) or "-"}


def _keepable(body: str, max_bytes: int) -> str:
    """The body as SQS will accept it back: its character set, within size, never empty."""
    text = clean_text(body, len(body)) if body else ""
    if not text:
        return "(empty body)"
    raw = text.encode("utf-8")
    if len(raw) > max_bytes:
        room = max_bytes - len(TRUNCATED.encode())
        return raw[:room].decode("utf-8", "ignore") + TRUNCATED
    return text
