"""Mapping VideoDB's many status spellings onto three job states.

VideoDB's job responses are `AsyncResponse` objects (``processing | done | failed``), but
download records use ``error``, the async-response prose mentions ``pending`` and
``completed``, the SDK treats ``in progress`` as running, and a finished result may be
wrapped in a ``response`` key (see API-NOTES.md). All of them land here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobState(enum.StrEnum):
    """Where a VideoDB job stands."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


_STATES = {
    "processing": JobState.RUNNING,
    "in progress": JobState.RUNNING,
    "in_progress": JobState.RUNNING,
    "pending": JobState.RUNNING,
    "queued": JobState.RUNNING,
    "done": JobState.DONE,
    "completed": JobState.DONE,
    "complete": JobState.DONE,
    "success": JobState.DONE,
    "succeeded": JobState.DONE,
    "failed": JobState.FAILED,
    "error": JobState.FAILED,
}


class UnreadableResponse(ValueError):
    """A 200 answer whose body is not a VideoDB response we can act on."""


@dataclass(frozen=True)
class JobStatus:
    """A parsed job answer: its state, where to poll it and what it produced."""

    state: JobState
    job_id: str | None = None
    output_url: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (kept in the idempotency store between deliveries)."""
        return {
            "state": self.state.value,
            "job_id": self.job_id,
            "output_url": self.output_url,
            "result": self.result,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobStatus:
        """The inverse of :meth:`to_dict`."""
        return cls(
            state=JobState(data["state"]),
            job_id=data.get("job_id"),
            output_url=data.get("output_url"),
            result=dict(data.get("result") or {}),
            error=data.get("error"),
        )


def map_status(raw: object) -> JobState | None:
    """Map one status value to a :class:`JobState`; ``None`` when it is not a known spelling."""
    if not isinstance(raw, str):
        return None
    return _STATES.get(raw.strip().lower())


def parse_job_response(body: object) -> JobStatus:
    """Read an `AsyncResponse`, async-response result or download record into a JobStatus.

    ``success: false`` means failed whatever the status says. A body with no known status
    raises :class:`UnreadableResponse` (treated as transient: the API said something odd).
    """
    if not isinstance(body, dict):
        raise UnreadableResponse(f"response is {type(body).__name__}, not a JSON object")
    # The SDK reads `body.get("response") or body`: results may arrive wrapped.
    wrapped = body.get("response")
    if isinstance(wrapped, dict) and wrapped:
        body = wrapped
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    if body.get("success") is False:
        return JobStatus(
            state=JobState.FAILED,
            job_id=_text(data.get("id")),
            error=_error_text(body, data) or "VideoDB answered success: false",
        )
    state = map_status(body.get("status"))
    if state is None:
        # Download records carry their status inside `data`.
        state = map_status(data.get("status"))
    if state is None:
        raise UnreadableResponse(f"unknown status {body.get('status')!r}")
    result = {
        key: data[key]
        for key in ("name", "download_url", "stream_url", "player_url", "url")
        if isinstance(data.get(key), str)
    }
    return JobStatus(
        state=state,
        job_id=_text(data.get("id")),
        output_url=_text(data.get("output_url")),
        result=result,
        error=_error_text(body, data) if state is JobState.FAILED else None,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_text(body: dict[str, Any], data: dict[str, Any]) -> str | None:
    # The schema has `message`; the docs' example reads `data.error`.
    for value in (body.get("message"), data.get("error"), body.get("error"), data.get("message")):
        if isinstance(value, str) and value:
            return value[:1024]
    return None
