"""The retry queue's visibility change: the adapter behind :class:`~videodb_retry.ports.Visibility`."""

from __future__ import annotations

from videodb_retry.aws_clients import client


class VisibilityBackoff:
    """Applies a delay to one received message of the retry queue."""

    def __init__(self, queue_url: str) -> None:
        self._queue_url = queue_url

    def postpone(self, receipt_handle: str, seconds: int) -> None:
        """Make the message visible again only after ``seconds``."""
        client("sqs").change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )
