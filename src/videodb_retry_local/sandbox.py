"""A local, scriptable stand-in for the VideoDB download API ("the sandbox").

It speaks the download part of VideoDB's OpenAPI spec (spec/videodb-openapi-downloads.yaml):
retry, async-response polling, one download record, the download list, create and delete.
Every request needs ``x-access-token`` equal to the current key. Each download id can be
scripted (see :class:`Script`) to fail, hang, answer odd statuses or misbehave the ways the
real API is known or feared to, so the retry pipeline can be tested without the network.

Standard library only: ``ThreadingHTTPServer`` so a slow answer never blocks the others.

Manual use::

    python -m videodb_retry_local.sandbox --port 8765 --api-key sk-mine --download dl-1
"""

from __future__ import annotations

import argparse
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from videodb_retry_local.sandbox_answers import AnswerShape, JobFacts, render

DEFAULT_API_KEY = "sk-sandbox-key"
# Every sleep (global latency + per-id delay) is capped, so no test can hang on a typo.
MAX_DELAY_SECONDS = 60.0
# The spec's limit on GET /download's `count`.
MAX_PAGE_COUNT = 5000
DEFAULT_PAGE_COUNT = 50
MAX_BODY_BYTES = 1 << 20
# A non-JSON answer as a truncating proxy would give it, still labelled as JSON.
MALFORMED_BODY = b'{"success": true, "status": "processing", "data": {"id": '

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
_DOWNLOAD_PATH = re.compile(r"^/download/([^/]+)$")
_JOB_PATH = re.compile(r"^/async-response/([^/]+)$")


@dataclass(frozen=True)
class Script:
    """How the sandbox treats one download id. The defaults are a normal download that is in
    ``error`` and whose retry succeeds after ``processing_seconds``.

    Counters (``fail_times``, ``*_times``) count from when the script was set.
    """

    fail_times: int = 0  # the first N retry jobs end "failed", later ones "done"
    failure_message: str = "Download failed: the source stream could not be read"
    processing_seconds: float = 0.0  # a job stays processing this long (injected clock)
    never_finishes: bool = False  # ...or forever
    answer_done_at_once: bool = False  # the retry POST answers the job's end ("done", or
    # "failed" while fail_times lasts) instead of "processing"
    answer_failed_at_once: bool = False  # the retry POST answers "failed", every time
    retry_status: int | None = None  # the retry POST answers this HTTP status with an Error
    retry_status_times: int | None = None  # ...this many times (None: always)
    retry_after: int | None = None  # Retry-After header (seconds) on a scripted 429
    poll_status: int | None = None  # same, for GET /async-response of this id's jobs
    poll_status_times: int | None = None
    status_spelling: dict[str, str] | None = None  # e.g. {"processing": "in progress"}
    # How answers are shaped: the documented variants (sandbox_answers.SHAPES), as data.
    shape: AnswerShape = field(default_factory=AnswerShape)
    # Retry is documented for downloads in `error` only; what VideoDB answers otherwise is
    # not documented. By default: this status with the spec's Error body. None: accept it
    # (a new job starts, as if the download had failed).
    not_failed_retry_status: int | None = 400
    delay_seconds: float = 0.0  # every answer about this id is this late (capped)
    malformed_json_times: int = 0  # the retry POST answers 200 with a non-JSON body N times
    output_origin: str | None = None  # output_url on this origin instead of the sandbox

    def __post_init__(self) -> None:
        for name in ("fail_times", "malformed_json_times", "processing_seconds", "delay_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"Script.{name} must not be negative")
        for name in ("retry_status", "poll_status", "not_failed_retry_status"):
            status = getattr(self, name)
            if status is not None and not 100 <= status <= 599:
                raise ValueError(f"Script.{name}={status} is not an HTTP status")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the sandbox received it (headers with lower-case names)."""

    method: str
    path: str
    query: dict[str, str]
    # Kept out of repr: the headers hold the API key and a failing assert prints reprs.
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    time: float  # the sandbox's clock when the request arrived


@dataclass
class _Record:
    id: str
    name: str
    status: str  # processing | done | error
    created_at: datetime
    seq: int  # breaks created_at ties: later additions count as newer
    download_url: str = ""
    job_id: str | None = None  # the latest job, whose end decides the status
    last_job_id: str | None = None  # the latest job, still known once it has ended


@dataclass
class _Job:
    id: str
    download_id: str
    name: str
    outcome: str  # done | failed, fixed when the job is created
    ends_at: float | None  # None: never
    output_url: str
    download_url: str  # what the download gets if the job ends "done"


@dataclass
class _Counters:
    jobs: int = 0
    retry_status: int = 0
    poll_status: int = 0
    malformed: int = 0


@dataclass
class _Answer:
    status: int
    body: Any  # a JSON-able object, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


class SandboxServer:
    """A VideoDB-compatible HTTP server on ``host`` (loopback by default).

    ``clock`` measures job processing time (inject a fake one to step time in tests);
    ``latency_seconds`` delays every answer (benchmarks). Use as a context manager or call
    :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        latency_seconds: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_seconds = latency_seconds
        self._initial_key = api_key
        self._key = api_key
        self._clock = clock
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._outage: Callable[[str, str], int | None] | None = None
        self._clear()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("sandbox already started")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler, sandbox=self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits at most this long
            name="videodb-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; wakes delayed answers, which then hang up."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("sandbox not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- set-up --------------------------------------------------------------------------

    def set_outage(self, hook: Callable[[str, str], int | None] | None) -> None:
        """An API-wide outage: ``hook(method, path)`` returns the status (5xx) every call
        answers, or None to answer normally; ``None`` ends it. The hook decides per request,
        so it can model "down" (always 503) or a flapping API (by time or call count)."""
        with self._lock:
            self._outage = hook

    def rotate_key(self, new_key: str) -> None:
        """Accept only ``new_key`` from now on (the old key gets 401)."""
        with self._lock:
            self._key = new_key

    def script(self, download_id: str, script: Script | None = None, **behaviour: Any) -> Script:
        """Script ``download_id`` with a :class:`Script` or its fields as keywords.

        Replaces any earlier script of the id and restarts its counters; creates the
        download record (status ``error``) if there is none.
        """
        if script is not None and behaviour:
            raise TypeError("pass a Script or keywords, not both")
        script = script if script is not None else Script(**behaviour)
        with self._lock:
            self._scripts[download_id] = script
            self._counters[download_id] = _Counters()
            if download_id not in self._records:
                self._add_record(download_id, "error", None, None)
        return script

    def add_download(
        self,
        download_id: str,
        status: str = "error",
        name: str | None = None,
        created_at: datetime | str | None = None,
    ) -> None:
        """Add (or replace) a download record, as ``GET /download`` will list it."""
        if status not in ("processing", "done", "error"):
            raise ValueError(f"download status {status!r} is not processing, done or error")
        with self._lock:
            self._add_record(download_id, status, name, created_at)

    def reset(self) -> None:
        """Forget every record, job, script and recorded request; restore the first key."""
        with self._lock:
            self._clear()

    # -- inspection ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def retry_calls(self, download_id: str | None = None) -> list[RecordedRequest]:
        """The recorded ``POST /download/{id}`` requests (of one id, if given)."""
        calls = []
        for request in self.requests:
            match = _DOWNLOAD_PATH.match(request.path)
            if request.method == "POST" and match:
                if download_id is None or unquote(match.group(1)) == download_id:
                    calls.append(request)
        return calls

    def download(self, download_id: str) -> dict[str, Any] | None:
        """The download record as ``GET /download/{id}`` shows it now, or None."""
        with self._lock:
            record = self._records.get(download_id)
            return self._record_view(record) if record else None

    # -- request handling (called by the handler threads) -------------------------------

    def _record_request(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                        body: bytes) -> None:
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, headers, body, self._clock()))

    def _delay_for(self, method: str, path: str, query: dict[str, str]) -> float:
        """Seconds to hold this answer: global latency plus the delay of the id it is about."""
        with self._lock:
            download_id = None
            if match := _DOWNLOAD_PATH.match(path):
                download_id = unquote(match.group(1))
            elif match := _JOB_PATH.match(path):
                job = self._jobs.get(unquote(match.group(1)))
                download_id = job.download_id if job else None
            elif path == "/download" and method == "DELETE":
                download_id = query.get("download_id")
            script = self._scripts.get(download_id) if download_id else None
            delay = self.latency_seconds + (script.delay_seconds if script else 0.0)
        return min(max(delay, 0.0), MAX_DELAY_SECONDS)

    def _pause(self, seconds: float) -> bool:
        """Sleep without holding the lock; False when the server is stopping meanwhile."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                body: bytes) -> _Answer:
        token = headers.get("x-access-token", "")
        with self._lock:
            if self._outage is not None and (status := self._outage(method, path)) is not None:
                return _error(status, "Service unavailable (sandbox outage)")
            if not hmac.compare_digest(token.encode(), self._key.encode()):
                return _error(401, "Invalid or missing x-access-token")
            if match := _DOWNLOAD_PATH.match(path):
                download_id = unquote(match.group(1))
                if method == "POST":
                    return self._retry(download_id)
                if method == "GET":
                    return self._get_download(download_id)
            elif (match := _JOB_PATH.match(path)) and method == "GET":
                return self._poll(unquote(match.group(1)))
            elif path == "/download":
                if method == "GET":
                    return self._list(query)
                if method == "POST":
                    return self._create(body)
                if method == "DELETE":
                    return self._delete(query, body)
            return _error(404, f"No route for {method} {path}")

    def _retry(self, download_id: str) -> _Answer:
        record = self._records.get(download_id)
        if record is None:
            return _error(404, f"Download {download_id} not found")
        script = self._scripts.get(download_id, Script())
        counters = self._counters.setdefault(download_id, _Counters())
        if _use(script.retry_status, script.retry_status_times, counters, "retry_status"):
            return _scripted_error(script.retry_status, script, "retry")
        if counters.malformed < script.malformed_json_times:
            counters.malformed += 1
            return _Answer(200, MALFORMED_BODY)
        self._settle(record)
        if record.status != "error" and script.not_failed_retry_status is not None:
            return _error(script.not_failed_retry_status,
                          f"Download {download_id} is {record.status}; only a download in error "
                          "status can be retried")
        job = self._new_job(record, script, counters)
        if script.answer_done_at_once or script.answer_failed_at_once:
            # The job ends inside the POST; the answer and the record show its end.
            job.ends_at = self._clock()
            if script.answer_failed_at_once:
                job.outcome = "failed"
            self._settle(record)
            status = job.outcome
        else:
            # Processing even when processing_seconds is 0: the first poll sees the end.
            record.status, record.download_url = "processing", ""
            status = "processing"
        return _Answer(200, self._render("retry", status, job, script))

    def _render(self, kind: Any, status: str, job: _Job, script: Script) -> dict[str, Any]:
        record = self._records.get(job.download_id)
        created = record.created_at if record else datetime.now(UTC)
        facts = JobFacts(
            job_id=job.id,
            output_url=job.output_url,
            download_id=job.download_id,
            name=job.name,
            download_url=job.download_url,
            failure_message=script.failure_message,
            created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        return render(kind, status, facts, script.shape, script.status_spelling or {})

    def _new_job(self, record: _Record, script: Script, counters: _Counters) -> _Job:
        counters.jobs += 1
        job_id = f"job-{uuid.uuid4()}"
        origin = (script.output_origin or self.base_url).rstrip("/")
        now = self._clock()
        job = _Job(
            id=job_id,
            download_id=record.id,
            name=record.name,
            outcome="failed" if counters.jobs <= script.fail_times else "done",
            ends_at=None if script.never_finishes else now + script.processing_seconds,
            output_url=f"{origin}/async-response/{job_id}",
            download_url=_file_url(record.id, record.name),
        )
        self._jobs[job_id] = job
        record.job_id = record.last_job_id = job_id
        return job

    def _poll(self, job_id: str) -> _Answer:
        job = self._jobs.get(job_id)
        if job is None:
            return _error(404, f"Async response {job_id} not found")
        script = self._scripts.get(job.download_id, Script())
        counters = self._counters.setdefault(job.download_id, _Counters())
        if _use(script.poll_status, script.poll_status_times, counters, "poll_status"):
            return _scripted_error(script.poll_status, script, "async-response")
        status = self._job_status(job)
        record = self._records.get(job.download_id)
        if record is not None:
            self._settle(record)
        return _Answer(200, self._render("poll", status, job, script))

    def _get_download(self, download_id: str) -> _Answer:
        record = self._records.get(download_id)
        if record is None:
            return _error(404, f"Download {download_id} not found")
        view = self._record_view(record)
        script = self._scripts.get(download_id, Script())
        if script.shape.get_form == "record":
            return _Answer(200, {"success": True, "data": view})
        # The docs' sample: an AsyncResponse about the download's latest job (or itself).
        job = self._jobs.get(record.last_job_id or "") or _Job(
            id=download_id, download_id=download_id, name=record.name, outcome="done",
            ends_at=None, output_url=f"{self.base_url}/download/{quote(download_id, safe='')}",
            download_url=record.download_url,
        )
        status = {"processing": "processing", "done": "done", "error": "failed"}[view["status"]]
        return _Answer(200, self._render("get", status, job, script))

    def _list(self, query: dict[str, str]) -> _Answer:
        try:
            page_index = int(query.get("page_index", 0))
            count = int(query.get("count", DEFAULT_PAGE_COUNT))
        except ValueError:
            return _error(400, "page_index and count must be integers")
        if page_index < 0 or not 1 <= count <= MAX_PAGE_COUNT:
            return _error(400, f"page_index must be >= 0 and count between 1 and {MAX_PAGE_COUNT}")
        newest_first = sorted(self._records.values(), key=lambda r: (r.created_at, r.seq), reverse=True)
        page = newest_first[page_index * count : (page_index + 1) * count]
        return _Answer(200, {"success": True, "data": {"downloads": [self._record_view(r) for r in page]}})

    def _create(self, body: bytes) -> _Answer:
        payload = _json_object(body)
        stream_link = payload.get("stream_link") if payload else None
        if not isinstance(stream_link, str) or not stream_link:
            return _error(400, "stream_link is required")
        name = payload.get("name") if isinstance(payload.get("name"), str) else None
        download_id = f"download-{uuid.uuid4().hex[:12]}"
        record = self._add_record(download_id, "processing", name, None)
        job = self._new_job(record, Script(), self._counters.setdefault(download_id, _Counters()))
        return _Answer(200, {
            "success": True,
            "status": "processing",
            "data": {"id": job.id, "output_url": job.output_url},
        })

    def _delete(self, query: dict[str, str], body: bytes) -> _Answer:
        # The spec puts the id in the query; the docs' example sends it in a JSON body.
        download_id = query.get("download_id") or (_json_object(body) or {}).get("download_id")
        if not isinstance(download_id, str) or not download_id:
            return _error(400, "download_id is required")
        if self._records.pop(download_id, None) is None:
            return _error(404, f"Download {download_id} not found")
        return _Answer(200, {"success": True, "message": f"Download {download_id} deleted"})

    # -- state helpers (caller holds the lock) -------------------------------------------

    def _clear(self) -> None:
        self._key = self._initial_key
        self._records: dict[str, _Record] = {}
        self._jobs: dict[str, _Job] = {}
        self._scripts: dict[str, Script] = {}
        self._counters: dict[str, _Counters] = {}
        self._requests: list[RecordedRequest] = []
        self._seq = 0

    def _add_record(self, download_id: str, status: str, name: str | None,
                    created_at: datetime | str | None) -> _Record:
        self._seq += 1
        record = _Record(
            id=download_id,
            name=name or f"{download_id}.mp4",
            status=status,
            created_at=_as_utc(created_at),
            seq=self._seq,
        )
        if status == "done":
            record.download_url = _file_url(download_id, record.name)
        self._records[download_id] = record
        return record

    def _job_status(self, job: _Job) -> str:
        if job.ends_at is None or self._clock() < job.ends_at:
            return "processing"
        return job.outcome

    def _settle(self, record: _Record) -> None:
        """Once the record's latest job has ended, the record shows its end (once)."""
        job = self._jobs.get(record.job_id) if record.job_id else None
        if job is None or self._job_status(job) == "processing":
            return
        if job.outcome == "done":
            record.status, record.download_url = "done", job.download_url
        else:
            record.status, record.download_url = "error", ""
        record.job_id = None

    def _record_view(self, record: _Record) -> dict[str, Any]:
        self._settle(record)
        return {
            "id": record.id,
            "name": record.name,
            "status": record.status,
            "download_url": record.download_url,
            "created_at": record.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _use(status: int | None, times: int | None, counters: _Counters, counter: str) -> bool:
    """True when a scripted status applies to this request (and count it)."""
    if status is None:
        return False
    used = getattr(counters, counter)
    if times is not None and used >= times:
        return False
    setattr(counters, counter, used + 1)
    return True


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> _Answer:
    """An answer with the spec's `Error` body."""
    code = _ERROR_CODES.get(status) or (HTTPStatus(status).name if status in HTTPStatus else "ERROR")
    return _Answer(status, {"success": False, "message": message, "error_code": code}, headers or {})


def _scripted_error(status: int, script: Script, what: str) -> _Answer:
    headers = {}
    if status == 429 and script.retry_after is not None:
        headers["Retry-After"] = str(script.retry_after)
    return _error(status, f"sandbox: scripted HTTP {status} for the {what} call", headers)


def _file_url(download_id: str, name: str) -> str:
    # `.invalid` never resolves: nothing may fetch it. Like VideoDB's, the URL expires in 24 h.
    expires = int((datetime.now(UTC) + timedelta(hours=24)).timestamp())
    return f"https://files.sandbox.invalid/{download_id}/{name}?expires={expires}"


def _as_utc(value: datetime | str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck on a client never keeps the process alive
    # socketserver's default backlog of 5 drops bursts of connections, which then wait a
    # 1 s SYN retransmit: that would show up as fake latency in benchmarks.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, *, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP into :meth:`SandboxServer._answer` calls; one thread per connection."""

    server: _HTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection: stop() really stops
    timeout = 30  # a silent client frees its thread
    server_version = "VideoDBSandbox/1.0"

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        split = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(split.query).items()}
        headers = {key.lower(): value for key, value in self.headers.items()}
        try:
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        sandbox._record_request(self.command, split.path, query, headers, body)
        if not sandbox._pause(sandbox._delay_for(self.command, split.path, query)):
            self.close_connection = True  # stopping: hang up without an answer
            return
        answer = sandbox._answer(self.command, split.path, query, headers, body)
        self._send(answer, with_body=self.command != "HEAD")

    # Every method reaches the router, so anything unknown gets a JSON 404 (not HTML 501).
    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def _send(self, answer: _Answer, with_body: bool = True) -> None:
        payload = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(payload)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server answers unparsable requests with HTML; keep every body JSON.
        self.close_connection = True
        self._send(_error(code, message or HTTPStatus(code).phrase))

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet tests; and the request log is the last place a key should ever leak to.
        pass


def _serve(argv: list[str] | None = None) -> None:
    """Command line: serve on loopback until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Local VideoDB download API sandbox (loopback only).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--download", action="append", default=[], metavar="ID",
                        help="add a download record in error status (repeatable)")
    args = parser.parse_args(argv)
    with SandboxServer(args.api_key, port=args.port, latency_seconds=args.latency) as server:
        for download_id in args.download:
            server.add_download(download_id)
        print(f"VideoDB sandbox on {server.base_url} (x-access-token: the --api-key value). "
              "Ctrl-C stops.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", flush=True)


if __name__ == "__main__":
    _serve()
