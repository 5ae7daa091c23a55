"""A small VideoDB HTTP client: the retry call, polling an async job, listing downloads.

One :class:`requests.Session` is reused across calls (connection reuse on warm Lambdas).
The API key is sent only to the configured API origin; it is never logged or put in errors.
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC
from typing import Any, Protocol

import requests
import requests.adapters
from urllib3.util import parse_url

from videodb_retry import __version__
from videodb_retry.errors import AuthError, ForeignOriginError, PermanentError, TransientError
from videodb_retry.rules.origin import UnsafeUrl, url_on_origin
from videodb_retry.rules.redelivery_policy import MAX_VISIBILITY_SECONDS
from videodb_retry.rules.sanitise import clean_text
from videodb_retry.rules.status import JobStatus, UnreadableResponse, error_text, parse_job_response
from videodb_retry.settings import Settings

CLIENT_HEADER = "x-videodb-client"
CLIENT_NAME = f"videodb-retry/{__version__}"
# Statuses that mean "this request will never work": the message goes to the DLQ at once.
PERMANENT_STATUSES = frozenset({400, 403, 404, 405, 409, 410, 422})


class ApiKeySource(Protocol):
    """Where the client gets the key: call it for the (cached) key, ``refresh`` to re-read."""

    def __call__(self) -> str: ...

    def refresh(self) -> str: ...


class VideoDBClient:
    """Calls the VideoDB API with the key from ``api_key``.

    A 401 re-reads the key once (it may have been rotated) and repeats the call; a second
    401 is raised as :class:`AuthError`.
    """

    def __init__(
        self,
        settings: Settings,
        api_key: ApiKeySource,
        session: requests.Session | None = None,
    ) -> None:
        self._settings = settings
        self._api_key = api_key
        self._session = session or _pooled_session(settings.batch_concurrency)
        self._origin = settings.api_origin

    def retry_download(self, download_id: str) -> JobStatus:
        """``POST /download/{id}``: ask VideoDB to retry a failed download."""
        return _parse(self._call("POST", self._api_url(f"/download/{download_id}")), download_id)

    def get_job(self, output_url: str, download_id: str | None = None) -> JobStatus:
        """``GET`` an async job's ``output_url`` (only on the API origin) and parse it.

        Raises :class:`ForeignOriginError`, sending nothing, unless :meth:`followable_url`
        accepts ``output_url``. With ``download_id``, an answer naming another download is a
        failed job."""
        return _parse(self._call("GET", self.followable_url(output_url)), download_id)

    def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, Any]]:
        """``GET /download``: one page of download records."""
        params = {"page_index": page_index, "count": count}
        body = self._call("GET", self._api_url("/download"), params=params)
        data = body.get("data") if isinstance(body, dict) else None
        downloads = data.get("downloads") if isinstance(data, dict) else None
        if not isinstance(downloads, list):
            raise TransientError("download list answer has no data.downloads list")
        return [d for d in downloads if isinstance(d, dict)]

    def followable_url(self, url: str) -> str:
        """The URL this client sends for ``url`` (a job's ``output_url``): the configured origin
        plus the path and query urllib3 reads in ``url``. Raises :class:`ForeignOriginError`
        when ``url`` is off the origin or unclean (userinfo, backslash, whitespace, control or
        non-ASCII characters, percent-encoded authority, over 2,048 characters)."""
        try:
            return url_on_origin(url, self._origin)
        except UnsafeUrl as exc:
            raise ForeignOriginError(f"{exc}; not followed") from None

    def is_on_api_origin(self, url: str) -> bool:
        """True when :meth:`followable_url` accepts ``url`` (the check and the request agree)."""
        try:
            self.followable_url(url)
        except ForeignOriginError:
            return False
        return True

    def _api_url(self, path: str) -> str:
        return self.followable_url(self._settings.api_base_url + path)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            return self._send(method, url, self._api_key(), **kwargs)
        except AuthError:
            return self._send(method, url, self._api_key.refresh(), **kwargs)

    def _send(self, method: str, url: str, key: str, **kwargs: Any) -> Any:
        # Every caller passes a URL from followable_url; re-checked here, next to the send.
        url = self.followable_url(url)
        headers = {
            "x-access-token": key,
            CLIENT_HEADER: CLIENT_NAME,
            "accept": "application/json",
        }
        try:
            response = self._session.request(
                method,
                url,
                headers=headers,
                timeout=(self._settings.connect_timeout_seconds, self._settings.read_timeout_seconds),
                allow_redirects=False,  # a redirect could carry the key off the origin
                **kwargs,
            )
        except requests.Timeout as exc:
            raise TransientError(f"{method} {_path(url)} timed out ({type(exc).__name__})") from None
        except requests.ConnectionError:
            raise TransientError(f"{method} {_path(url)} could not connect") from None
        return _read(method, url, response, key)


def _pooled_session(connections: int) -> requests.Session:
    """A session whose connection pool fits the batch's concurrency (requests keeps 10)."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=max(10, connections))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _parse(body: Any, download_id: str | None = None) -> JobStatus:
    try:
        return parse_job_response(body, download_id)
    except UnreadableResponse as exc:
        # An odd answer is the API's problem, not the message's: try again later.
        raise TransientError(f"unreadable VideoDB answer: {exc}") from None


def _read(method: str, url: str, response: requests.Response, key: str) -> Any:
    status = response.status_code
    where = f"{method} {_path(url)}"
    if 200 <= status < 300:
        # Any 2xx carries the answer (a 202 with an AsyncResponse is a job to follow).
        try:
            return response.json()
        except ValueError:
            raise TransientError(f"{where} answered {status} with a body that is not JSON") from None
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
        raise TransientError(text, status_code=status, retry_after=_retry_after(response))
    if 300 <= status < 400:
        raise PermanentError(f"{where} answered a redirect ({status}); not followed", status)
    raise PermanentError(text, status_code=status)


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    # Wherever VideoDB put it: `message` (the Error schema), `data.error`, `response.*`.
    return error_text(body) or ""


def _retry_after(response: requests.Response, now: float | None = None) -> int | None:
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


def _path(url: str) -> str:
    # Errors name the path only: no query strings, no hosts a reader need not see.
    return parse_url(url).path or "/"
