"""Reading VideoDB's answers about a job, and deciding what each one means (rules, no I/O).

VideoDB documents several shapes for the same facts (see spec/NOTES.md): an `AsyncResponse`
(status ``processing | done | failed``), a download record (status ``processing | done |
error`` inside ``data``), results wrapped in ``response``, the error text in ``message`` or
``data.error``, and ``download_id`` / ``name`` / ``download_url`` beside or inside ``data``.
Every shape is read here, and every decision is one row of :data:`DECISIONS`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from videodb_retry.rules.sanitise import clean_text


class JobState(enum.StrEnum):
    """Where a VideoDB job stands."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class StatusWord(enum.StrEnum):
    """What a status value says on its own, before ``success`` is looked at."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"  # a value no source documents, or no status at all


class Verdict(enum.StrEnum):
    """A row's decision. ``DONE_IF_URL``: done only if the answer names a download URL."""

    RUNNING = "running"
    DONE = "done"
    DONE_IF_URL = "done_if_url"
    FAILED = "failed"


# Every documented spelling, after normalising (case-folded, `_`/`-`/blanks as one space).
# Sources: the spec's two enums; the async-response prose (pending, completed); the Python
# SDK's `Status.in_progress` ("in progress"). Anything else is UNKNOWN: undocumented words
# (e.g. "queued", "success") are not guessed at.
STATUS_WORDS: dict[str, StatusWord] = {
    "processing": StatusWord.RUNNING,
    "in progress": StatusWord.RUNNING,
    "pending": StatusWord.RUNNING,
    "done": StatusWord.DONE,
    "completed": StatusWord.DONE,
    "failed": StatusWord.FAILED,
    "error": StatusWord.FAILED,
}

Success = Literal[True, False, None]  # the answer's `success`; None: absent or not a bool

# The one table of decisions: (what the status says, `success`) -> verdict.
# - `success: false` fails whatever the status (the `Error` body; the SDK raises on it). The
#   SDK would keep polling a `processing` with `success: false`; an Error body is an answer.
# - A status no source documents is terminal, judged by `success` (the SDK's rule: it polls
#   only while the status is `processing` or `in progress`). `success: true` then counts as
#   done only when the answer carries a download URL, so an odd word is never announced as
#   a success without the download it is about.
# - A documented running word keeps the job running: the poll's deadline and PollMaxPolls
#   bound the attempt whatever VideoDB keeps saying.
DECISIONS: dict[tuple[StatusWord, Success], Verdict] = {
    (StatusWord.RUNNING, True): Verdict.RUNNING,
    (StatusWord.RUNNING, None): Verdict.RUNNING,
    (StatusWord.RUNNING, False): Verdict.FAILED,
    (StatusWord.DONE, True): Verdict.DONE,
    (StatusWord.DONE, None): Verdict.DONE,
    (StatusWord.DONE, False): Verdict.FAILED,
    (StatusWord.FAILED, True): Verdict.FAILED,
    (StatusWord.FAILED, None): Verdict.FAILED,
    (StatusWord.FAILED, False): Verdict.FAILED,
    (StatusWord.UNKNOWN, True): Verdict.DONE_IF_URL,
    (StatusWord.UNKNOWN, None): Verdict.FAILED,
    (StatusWord.UNKNOWN, False): Verdict.FAILED,
}

# Result fields carried into the outcome event, wherever VideoDB put them (data first).
RESULT_FIELDS = ("name", "download_url", "stream_url", "player_url", "url")
_BLANKS = re.compile(r"[\s_-]+")


class UnreadableResponse(ValueError):
    """A 200 answer whose body is not a JSON object we can act on."""


@dataclass(frozen=True)
class JobStatus:
    """A parsed job answer: its state, where to poll it and what it produced."""

    state: JobState
    job_id: str | None = None
    output_url: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    raw_status: str | None = None  # the status value as VideoDB spelled it

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (kept in the idempotency store between deliveries)."""
        return {
            "state": self.state.value,
            "job_id": self.job_id,
            "output_url": self.output_url,
            "result": self.result,
            "error": self.error,
            "raw_status": self.raw_status,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobStatus:
        """The inverse of :meth:`to_dict` (also reads entries stored before ``raw_status``)."""
        return cls(
            state=JobState(data["state"]),
            job_id=data.get("job_id"),
            output_url=data.get("output_url"),
            result=dict(data.get("result") or {}),
            error=data.get("error"),
            raw_status=data.get("raw_status"),
        )


def normalise_status(raw: object) -> str | None:
    """A status value case-folded with `_`, `-` and runs of blanks as one space; None if not text."""
    if not isinstance(raw, str):
        return None
    return _BLANKS.sub(" ", raw).strip().casefold() or None


def status_word(raw: object) -> StatusWord:
    """What one status value says: a documented spelling in any letter case, else UNKNOWN."""
    word = normalise_status(raw)
    return STATUS_WORDS.get(word, StatusWord.UNKNOWN) if word else StatusWord.UNKNOWN


def decide(raw_status: object, success: object, has_download_url: bool) -> JobState:
    """The job state for a status value, a `success` value and whether a URL came with them."""
    flag: Success = success if isinstance(success, bool) else None
    verdict = DECISIONS[(status_word(raw_status), flag)]
    if verdict is Verdict.DONE_IF_URL:
        return JobState.DONE if has_download_url else JobState.FAILED
    return JobState(verdict.value)


def parse_job_response(body: object, download_id: str | None = None) -> JobStatus:
    """Read any documented job answer into a JobStatus (see :data:`DECISIONS`).

    ``download_id`` is the download asked about: an answer that names another one (in
    ``download_id``, top-level or in ``data``) is a failed attempt, never a success.
    """
    if not isinstance(body, dict):
        raise UnreadableResponse(f"response is {type(body).__name__}, not a JSON object")
    layers = _layers(body)
    inner = layers[0]
    data = _data(inner)
    raw = _first_text((inner.get("status"), data.get("status")))
    result = _result(layers)
    state = decide(raw, inner.get("success"), "download_url" in result)
    error = _error_text(layers) if state is JobState.FAILED else None
    if state is JobState.FAILED and error is None:
        error = _why_failed(raw, inner.get("success"))
    named = _first_text([value for layer in layers for value in _named_ids(layer)])
    if download_id is not None and named is not None and named != download_id:
        state, result = JobState.FAILED, {}
        error = clean_text(f"VideoDB answered about download {named!r}, not {download_id!r}")
    return JobStatus(
        state=state,
        job_id=_text(data.get("id")),
        output_url=_text(data.get("output_url")) if state is JobState.RUNNING else None,
        result=result if state is not JobState.FAILED else {},
        error=error,
        raw_status=raw[:100] if raw else None,
    )


def error_text(body: object) -> str | None:
    """VideoDB's error text wherever it put it (``message``, ``data.error``, ``response.*``)."""
    return _error_text(_layers(body)) if isinstance(body, dict) else None


def _layers(body: dict[str, Any]) -> list[dict[str, Any]]:
    # The SDK reads `body.get("response") or body`; the outer layer is still read for fields
    # the inner one lacks (the inner one first).
    wrapped = body.get("response")
    return [wrapped, body] if isinstance(wrapped, dict) and wrapped else [body]


def _data(layer: dict[str, Any]) -> dict[str, Any]:
    data = layer.get("data")
    return data if isinstance(data, dict) else {}


def _named_ids(layer: dict[str, Any]) -> tuple[object, object]:
    return layer.get("download_id"), _data(layer).get("download_id")


def _result(layers: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for layer in layers:
        for source in (_data(layer), layer):
            for key in RESULT_FIELDS:
                if key not in result and _text(source.get(key)):
                    result[key] = source[key]
    return result


def _error_text(layers: list[dict[str, Any]]) -> str | None:
    # The schema has `message`; the get-download example reads `data.error`.
    candidates = []
    for layer in layers:
        data = _data(layer)
        candidates += [layer.get("message"), data.get("error"), layer.get("error"), data.get("message")]
    text = _first_text(candidates)
    # Cleaned and capped by the one rule for VideoDB's text (sanitise.MAX_TEXT_CHARS), as the
    # 4xx paths' message is (client.py): every path carries the same text.
    return clean_text(text) if text else None


def _why_failed(raw: str | None, success: object) -> str:
    if success is False:
        return "VideoDB answered success: false"
    if status_word(raw) is StatusWord.UNKNOWN:
        shown = repr(raw[:100]) if raw else "no status"
        return f"VideoDB answered {shown}, which no VideoDB source documents, without a download_url"
    return f"VideoDB reported the job {raw[:100] if raw else 'failed'}"


def _first_text(values: Any) -> str | None:
    return next((value for value in values if _text(value)), None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def map_status(raw: object) -> JobState | None:
    """The state one status value names on its own (any letter case); None when undocumented."""
    word = status_word(raw)
    return None if word is StatusWord.UNKNOWN else JobState(word.value)
