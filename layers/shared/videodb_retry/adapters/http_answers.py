"""What an HTTP answer from VideoDB means: its body, or the error it raises (rules, no I/O).

Moved out of ``client.py`` unchanged so that anything holding an answer (the HTTP client, the
capacity model's simulated VideoDB) judges it by the same rules: a 2xx carries the body, 401
is an :class:`AuthError`, a status in :data:`PERMANENT_STATUSES` (and any other 4xx or a
redirect) is permanent, 429/5xx/402 are transient with VideoDB's ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC
from typing import Any, Protocol

from videodb_retry.errors import AuthError, PermanentError, TransientError
from videodb_retry.rules.redelivery_policy import MAX_VISIBILITY_SECONDS
from videodb_retry.rules.sanitise import clean_text
from videodb_retry.rules.status import JobStatus, UnreadableResponse, error_text, parse_job_response

# Statuses that mean "this request will never work": the message goes to the DLQ at once.
PERMANENT_STATUSES = frozenset({400, 403, 404, 405, 409, 410, 422})


class HttpAnswer(Protocol):
    """The parts of an HTTP response judged here (``requests.Response`` has them)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


def read_answer(where: str, response: HttpAnswer, key: str) -> Any:
    """The JSON body of a 2xx answer to ``where`` ("METHOD /path"), or the error it means."""
    status = response.status_code
    if 200 <= status < 300:
        # Any 2xx carries the answer (a 202 with an AsyncResponse is a job to follow).
        try:
            body = response.json()
        except ValueError:
            raise TransientError(f"{where} answered {status} with a body that is not JSON") from None
        # Its text reaches events, the DLQ and logs (a `failed` answer's message, a result):
        # an answer that echoes the key must not carry it along, on this path either.
        return _without_key(body, key) if key else body
    # VideoDB's message goes into errors, logs and the DLQ: it must not carry the key along.
    # The key is taken out of the whole message first, so no cut can leave a piece of it;
    # then the message is cleaned and capped by the one rule every path uses (sanitise.py).
    message = _error_message(response)
    if key:
        message = message.replace(key, "[redacted]")
    message = clean_text(message)
    text = f"{where} answered {status}{': ' + message if message else ''}"
    if status == 401:
        raise AuthError(text, status_code=status)
    if status in PERMANENT_STATUSES:
        raise PermanentError(text, status_code=status)
    if status == 429 or status >= 500 or status == 402:
        # 402 (insufficient credits) passes once the account is topped up.
        raise TransientError(text, status_code=status, retry_after=retry_after(response))
    if 300 <= status < 400:
        raise PermanentError(f"{where} answered a redirect ({status}); not followed", status)
    raise PermanentError(text, status_code=status)


def _without_key(value: Any, key: str) -> Any:
    """``value`` (a JSON document) with every occurrence of ``key`` in its strings redacted."""
    if isinstance(value, str):
        return value.replace(key, "[redacted]")
    if isinstance(value, list):
        return [_without_key(item, key) for item in value]
    if isinstance(value, dict):
        return {_without_key(k, key): _without_key(v, key) for k, v in value.items()}
    return value


def job_status(body: Any, download_id: str | None = None) -> JobStatus:
    """The job status a 2xx body states (see ``status.DECISIONS``); an unreadable one is transient."""
    try:
        return parse_job_response(body, download_id)
    except UnreadableResponse as exc:
        # An odd answer is the API's problem, not the message's: try again later.
        raise TransientError(f"unreadable VideoDB answer: {exc}") from None


def _error_message(response: HttpAnswer) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    # Wherever VideoDB put it: `message` (the Error schema), `data.error`, `response.*`.
    return error_text(body) or ""


def retry_after(response: HttpAnswer, now: float | None = None) -> int | None:
    """Seconds ``Retry-After`` asks for (RFC 9110: delta-seconds or an HTTP-date), capped at
    the longest a message can stay invisible in SQS; a date in the past is 0. None when the
    header is absent or unreadable."""
    raw = response.headers.get("Retry-After", "").strip(" \t")
    if not raw:
        return None
    if raw.isascii() and raw.isdigit():
        # Compared as text first: int() refuses more than 4,300 digits.
        return MAX_VISIBILITY_SECONDS if len(raw) > 6 else min(int(raw), MAX_VISIBILITY_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # asctime dates carry no zone; HTTP dates are GMT
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0, min(math.ceil(seconds), MAX_VISIBILITY_SECONDS))
