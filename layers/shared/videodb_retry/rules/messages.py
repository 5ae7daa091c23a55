"""The queue's message contract: what an SQS body may hold and how it becomes a retry request.

A body is one of
1. a bare download id: ``download-abc123``;
2. JSON ``{"download_id": "...", "attempt": 2, "sequence": 4, "reason": "..."}`` (attempt,
   sequence and reason optional; ``sequence`` is written by the app on re-queued attempts);
3. a whole EventBridge event whose ``detail.download_id`` holds the id (its ``time`` is when
   the failure was reported).
A body without ``sequence`` and at attempt 1 is a *failure report* (see sequence.py).
Anything else is poison: it can never succeed, so it goes to the dead-letter queue with a reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Letters, digits, '-' and '_' only: the id is put into a URL path, so nothing that could
# change the path ('/', '..', '%', spaces, control characters) may pass.
MAX_DOWNLOAD_ID_LENGTH = 128
_DOWNLOAD_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_DOWNLOAD_ID_LENGTH}}}")
MAX_REASON_LENGTH = 1024
JSON_WHITESPACE = " \t\n\r"  # RFC 8259's whitespace


class PoisonMessage(ValueError):
    """A message that can never be processed; its text is the reason recorded in the DLQ."""


@dataclass(frozen=True)
class RetryRequest:
    """One attempt to retry one download."""

    download_id: str
    attempt: int = 1
    reason: str | None = None
    sequence: int | None = None  # the retry sequence this attempt belongs to (None: a report)
    # When the failure was reported, if the body says (an event's ``time``); not re-sent.
    reported_at: float | None = field(default=None, compare=False)

    @property
    def is_report(self) -> bool:
        """True for a failure report: attempt 1 with no sequence yet."""
        return self.sequence is None and self.attempt == 1

    @property
    def ledger_key(self) -> tuple[str | int, ...]:
        """What an attempt is remembered by: (id, attempt) without a sequence — the key of
        earlier releases, so an attempt in flight across an upgrade is not run twice — and
        (id, sequence, attempt) with one."""
        if self.sequence is None:
            return (self.download_id, self.attempt)
        return (self.download_id, self.sequence, self.attempt)

    def to_body(self) -> str:
        """The JSON body that puts this request on the queue (contract shape 2)."""
        body: dict[str, Any] = {"download_id": self.download_id, "attempt": self.attempt}
        if self.sequence is not None:
            body["sequence"] = self.sequence
        if self.reason:
            body["reason"] = self.reason
        return json.dumps(body, separators=(",", ":"))


def is_valid_download_id(value: object) -> bool:
    """True when ``value`` is a string that is safe to use as a VideoDB download id."""
    return isinstance(value, str) and _DOWNLOAD_ID.fullmatch(value) is not None


def validate_download_id(value: object) -> str:
    """Return ``value`` if it is a valid download id, else raise :class:`PoisonMessage`."""
    if is_valid_download_id(value):
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        raise PoisonMessage(f"download_id must be a string, got {type(value).__name__}")
    if not value:
        raise PoisonMessage("download_id is empty")
    if len(value) > MAX_DOWNLOAD_ID_LENGTH:
        raise PoisonMessage(f"download_id is longer than {MAX_DOWNLOAD_ID_LENGTH} characters")
    raise PoisonMessage(
        f"download_id {_preview(value)} has characters other than letters, digits, '-' and '_'"
    )


def parse_body(body: str | None) -> RetryRequest:
    """Turn an SQS message body into a :class:`RetryRequest`, or raise :class:`PoisonMessage`."""
    # Only the whitespace JSON allows around a value is ignored (str.strip() would also drop
    # control and non-ASCII spaces, which make a body poison like anywhere else in an id).
    text = (body or "").strip(JSON_WHITESPACE)
    if not text:
        raise PoisonMessage("message body is empty")
    if is_valid_download_id(text):
        return RetryRequest(download_id=text)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise PoisonMessage(f"message body {_preview(text)} is neither a download id nor JSON") from None
    if not isinstance(document, dict):
        raise PoisonMessage(f"JSON body must be an object, got {type(document).__name__}")
    if "detail" in document and "detail-type" in document:
        return _from_event(document)
    return _from_request(document)


def _from_event(event: dict[str, Any]) -> RetryRequest:
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise PoisonMessage("EventBridge event has no detail object")
    if "download_id" not in detail:
        raise PoisonMessage("EventBridge event has no detail.download_id")
    reason = detail.get("reason") or detail.get("error")
    return RetryRequest(
        download_id=validate_download_id(detail["download_id"]),
        reason=_reason(reason) if isinstance(reason, str) else f"event {event.get('detail-type')}",
        reported_at=_event_time(event.get("time")),
    )


def _event_time(value: object) -> float | None:
    # EventBridge writes ISO 8601 UTC to the second ("2026-12-05T10:00:00Z"); anything
    # else is ignored (the SQS send time stands in), never poison: the id is what matters.
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None


def _from_request(document: dict[str, Any]) -> RetryRequest:
    if "download_id" not in document:
        raise PoisonMessage("JSON body has no download_id")
    attempt = document.get("attempt", 1)
    # bool is an int subclass; "attempt": true is a wrong type, not attempt 1.
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise PoisonMessage("attempt must be a whole number of at least 1")
    sequence = document.get("sequence")
    if sequence is not None and (isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1):
        raise PoisonMessage("sequence must be a whole number of at least 1")
    reason = document.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise PoisonMessage("reason must be a string")
    return RetryRequest(
        download_id=validate_download_id(document["download_id"]),
        attempt=attempt,
        reason=_reason(reason) if reason else None,
        sequence=sequence,
    )


def _reason(text: str) -> str:
    return text[:MAX_REASON_LENGTH]


def _preview(text: str, limit: int = 40) -> str:
    """A short, printable rendering of untrusted text for error messages and logs."""
    shown = text[:limit].encode("unicode_escape").decode("ascii")
    return repr(shown + ("..." if len(text) > limit else ""))


# The message attribute the dead-letter queue's messages carry (dead_letter.py sends it).
DEAD_LETTER_MARK = "error_code"


def is_redriven(message_attributes: Mapping[str, Any]) -> bool:
    """True for a message this queue's DLQ held: it carries the ``error_code`` attribute sent
    here, which SQS's StartMessageMoveTask and ``videodb-retry redrive`` both keep. A copy of
    a message delivered twice (EventBridge, an operator) carries none."""
    return DEAD_LETTER_MARK in message_attributes
