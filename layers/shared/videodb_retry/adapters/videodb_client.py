"""A small VideoDB HTTP client: the retry call, polling an async job, listing downloads.

One :class:`requests.Session` is reused across calls (connection reuse on warm Lambdas).
The API key is sent only to the configured API origin; it is never logged or put in errors.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests
import requests.adapters
from urllib3.util import parse_url

from videodb_retry import __version__
from videodb_retry.adapters.http_answers import PERMANENT_STATUSES, job_status, read_answer
from videodb_retry.adapters.http_answers import retry_after as _retry_after
from videodb_retry.errors import AuthError, ForeignOriginError, TransientError
from videodb_retry.rules.origin import UnsafeUrl, url_on_origin
from videodb_retry.rules.status import JobStatus
from videodb_retry.settings import Settings

CLIENT_HEADER = "x-videodb-client"
CLIENT_NAME = f"videodb-retry/{__version__}"
# How an answer is judged (status -> body or error) is http_answers' rule; re-exported here.
__all__ = ["CLIENT_HEADER", "CLIENT_NAME", "PERMANENT_STATUSES", "VideoDBClient", "_retry_after"]


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
    return job_status(body, download_id)


def _read(method: str, url: str, response: requests.Response, key: str) -> Any:
    return read_answer(f"{method} {_path(url)}", response, key)


def _path(url: str) -> str:
    # Errors name the path only: no query strings, no hosts a reader need not see.
    return parse_url(url).path or "/"
