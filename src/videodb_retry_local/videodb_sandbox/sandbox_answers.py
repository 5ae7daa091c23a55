"""The answers the sandbox gives, in every shape VideoDB documents (no server, no state).

The sandbox decides *what* happened (a job is processing, done or failed); an
:class:`AnswerShape` decides *how* VideoDB says it. Each documented variant is data: a named
entry of :data:`SHAPES` with the page or SDK file it comes from (spec/NOTES.md lists them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

Kind = Literal["retry", "poll", "get"]  # POST /download/{id}, GET output_url, GET /download/{id}
Form = Literal["async", "record"]  # an AsyncResponse, or the download record {success, data}
Placement = Literal["none", "top", "data"]

# A job ends done or failed; its download record then reads done or error.
RECORD_STATUS = {"processing": "processing", "done": "done", "failed": "error"}

# The Error body's error_code of each status the sandbox answers (any other: its HTTP name).
_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "INSUFFICIENT_CREDITS",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


@dataclass
class Answer:
    """One answer: its HTTP status, its body and any extra headers."""

    status: int
    body: Any  # a JSON-able object, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerShape:
    """How answers about one download are shaped. The defaults are the spec's shapes."""

    download_id_at: Placement = "none"  # where answers name the download (`download_id`)
    error_at: Literal["message", "data.error"] = "message"  # where a failure's text goes
    retry_form: Form = "async"
    poll_form: Form = "async"
    get_form: Form = "record"
    wrap: frozenset[Kind] = frozenset()  # these answers come as {"response": {...}}
    success: Mapping[str, bool] = field(default_factory=dict)  # e.g. {"done": False}

    def form(self, kind: Kind) -> Form:
        """The form of one kind of answer."""
        return {"retry": self.retry_form, "poll": self.poll_form, "get": self.get_form}[kind]


@dataclass(frozen=True)
class JobFacts:
    """What the sandbox knows about the job an answer is about."""

    job_id: str
    output_url: str
    download_id: str
    name: str
    download_url: str  # the download's URL once the job is done
    failure_message: str
    created_at: str


@dataclass(frozen=True)
class DocumentedShape:
    """One documented variant: its shape, where it is documented, and whether the spec's
    schemas (verbatim) allow it."""

    shape: AnswerShape
    source: str
    in_spec: bool
    spelling: Mapping[str, str] = field(default_factory=dict)  # Script.status_spelling


SHAPES: dict[str, DocumentedShape] = {
    "spec": DocumentedShape(AnswerShape(), "spec: AsyncResponse, async-response 200", True),
    "download_id_top": DocumentedShape(
        AnswerShape(download_id_at="top"), "docs: update_download, example prints download_id", True
    ),
    "download_id_in_data": DocumentedShape(
        AnswerShape(download_id_at="data"),
        "docs: create_download, SDK example reads download_id from the returned data",
        True,
    ),
    "error_in_data": DocumentedShape(
        AnswerShape(error_at="data.error"), "docs: get_download, example reads data.error", True
    ),
    "get_as_async_response": DocumentedShape(
        AnswerShape(get_form="async"), "docs: get_download, sample response is an AsyncResponse", True
    ),
    "poll_is_download_record": DocumentedShape(
        AnswerShape(poll_form="record", error_at="data.error"),
        "docs: get_download (record with data.status/download_url/error) as the job result",
        True,
    ),
    "retry_is_download_record": DocumentedShape(
        AnswerShape(retry_form="record"), "spec: GET /download/{id} oneOf record branch", True
    ),
    "poll_wrapped": DocumentedShape(
        AnswerShape(wrap=frozenset({"poll"})),
        "SDK: videodb/_utils/_http_client.py _get_output, body.get('response') or body",
        False,
    ),
    "sdk_in_progress": DocumentedShape(
        AnswerShape(),
        "SDK: videodb/_constants.py Status.in_progress",
        False,
        {"processing": "in progress"},
    ),
    "prose_pending_completed": DocumentedShape(
        AnswerShape(),
        "API-NOTES: async-response prose mentions pending, completed",
        False,
        {"processing": "pending", "done": "completed"},
    ),
    "other_letter_case": DocumentedShape(
        AnswerShape(),
        "assumption: no source fixes the letter case",
        False,
        {"processing": "Processing", "done": "DONE", "failed": "Failed"},
    ),
    "never_seen_status": DocumentedShape(
        AnswerShape(),
        "SDK: videodb/_utils/_http_client.py, any status but processing/in progress is terminal",
        False,
        {"done": "exported", "failed": "aborted"},
    ),
    "done_with_success_false": DocumentedShape(
        AnswerShape(success={"done": False}), "spec: success is a separate boolean", True
    ),
}


def error_answer(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    """An answer with the spec's `Error` body."""
    code = _ERROR_CODES.get(status) or (HTTPStatus(status).name if status in HTTPStatus else "ERROR")
    return Answer(status, {"success": False, "message": message, "error_code": code}, headers or {})


def render(
    kind: Kind, status: str, facts: JobFacts, shape: AnswerShape, spelling: Mapping[str, str]
) -> dict[str, Any]:
    """The body of one answer about a job that is ``status`` (processing, done or failed)."""
    success = shape.success.get(status, status != "failed")
    if shape.form(kind) == "record":
        body = _record(status, facts, spelling, success)
    else:
        body = _async(kind, status, facts, spelling, success)
    if status == "failed":
        if shape.error_at == "message":
            body["message"] = facts.failure_message
        else:
            body["data"]["error"] = facts.failure_message
    if shape.download_id_at == "top":
        body["download_id"] = facts.download_id
    elif shape.download_id_at == "data":
        body["data"]["download_id"] = facts.download_id
    return {"response": body} if kind in shape.wrap else body


def _async(
    kind: Kind, status: str, facts: JobFacts, spelling: Mapping[str, str], success: bool
) -> dict[str, Any]:
    data: dict[str, Any]
    if kind == "poll" and status != "processing":
        # The result of a download job is the download: its id, name and (24 h) URL.
        data = {"id": facts.download_id}
    else:
        data = {"id": facts.job_id, "output_url": facts.output_url}
    if status == "done":
        data.update(name=facts.name, download_url=facts.download_url)
    return {"success": success, "status": spelling.get(status, status), "data": data}


def _record(status: str, facts: JobFacts, spelling: Mapping[str, str], success: bool) -> dict[str, Any]:
    word = RECORD_STATUS[status]
    return {
        "success": success,
        "data": {
            "id": facts.download_id,
            "name": facts.name,
            "status": spelling.get(status, word),
            "download_url": facts.download_url if status == "done" else "",
            "created_at": facts.created_at,
        },
    }
