"""Sending a message that can never succeed to the dead-letter queue, with the reason."""

from __future__ import annotations

from typing import Any

from videodb_retry.aws_clients import client
from videodb_retry.settings import Settings

MAX_ATTRIBUTE_LENGTH = 1024
# SQS message bodies are at most 256 KiB; a body kept whole must leave room for attributes.
MAX_BODY_BYTES = 250 * 1024


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

        Raises on failure, so the caller fails the record instead of dropping it.
        """
        attributes = {
            "reason": _string(reason),
            "error_code": _string(error_code),
            "source_message_id": _string(source_message_id),
        }
        if download_id:
            attributes["download_id"] = _string(download_id)
        if receive_count is not None:
            attributes["receive_count"] = {"DataType": "Number", "StringValue": str(receive_count)}
        client("sqs").send_message(
            QueueUrl=self._url,
            MessageBody=_keepable(body),
            MessageAttributes=attributes,
        )


def _string(value: str) -> dict[str, Any]:
    # Attribute values must be non-empty valid unicode; untrusted text is cleaned first.
    text = value.encode("utf-8", "replace").decode("utf-8")[:MAX_ATTRIBUTE_LENGTH] or "-"
    return {"DataType": "String", "StringValue": text}


def _keepable(body: str) -> str:
    """The body as SQS will accept it back: valid unicode, within size, never empty."""
    text = body.encode("utf-8", "replace").decode("utf-8") if body else ""
    if not text:
        return "(empty body)"
    raw = text.encode("utf-8")
    if len(raw) > MAX_BODY_BYTES:
        return raw[:MAX_BODY_BYTES].decode("utf-8", "ignore") + "...(truncated)"
    return text
