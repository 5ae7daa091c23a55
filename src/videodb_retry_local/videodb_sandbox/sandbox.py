"""A local, scriptable stand-in for the VideoDB download API ("the sandbox"): its HTTP server.

It speaks the download part of VideoDB's OpenAPI spec (spec/videodb-openapi-downloads.yaml):
retry, async-response polling, one download record, the download list, create and delete.
Every request needs ``x-access-token`` equal to the current key. Each download id can be
scripted (see :class:`Script`) to fail, hang, answer odd statuses or misbehave the ways the
real API is known or feared to, so the retry pipeline can be tested without the network.

This module is the server: it parses and records requests, holds answers back as scripted,
checks the key, applies an outage and routes each request to
:class:`~videodb_retry_local.videodb_sandbox.sandbox_downloads.ScriptedDownloads`, which decides what the
download ids answer. Standard library only: ``ThreadingHTTPServer`` so a slow answer never
blocks the others.

Manual use::

    python -m videodb_retry_local.videodb_sandbox.sandbox --port 8765 --api-key sk-mine --download dl-1
"""

from __future__ import annotations

import argparse
import hmac
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from videodb_retry_local.videodb_sandbox.sandbox_answers import Answer, error_answer
from videodb_retry_local.videodb_sandbox.sandbox_downloads import Script, ScriptedDownloads, UnknownIdHook
from videodb_retry_local.videodb_sandbox.sandbox_population import Population

__all__ = [
    "DEFAULT_API_KEY",
    "MAX_DELAY_SECONDS",
    "AnswerHook",
    "OutageHook",
    "RecordedRequest",
    "SandboxServer",
    "Script",
    "UnknownIdHook",
]

DEFAULT_API_KEY = "sk-sandbox-key"
# Every sleep (global latency + per-id delay) is capped, so no test can hang on a typo.
MAX_DELAY_SECONDS = 60.0
MAX_BODY_BYTES = 1 << 20
_DOWNLOAD_PATH = re.compile(r"^/download/([^/]+)$")
_JOB_PATH = re.compile(r"^/async-response/([^/]+)$")

# (method, path) -> the status (5xx) every call answers during an outage, or None.
OutageHook = Callable[[str, str], int | None]
# (method, path, status) of each answer sent: never a header, so never the key.
AnswerHook = Callable[[str, str, int], None]


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


class SandboxServer:
    """A VideoDB-compatible HTTP server on ``host`` (loopback by default).

    ``clock`` measures job processing time (inject a fake one to step time in tests);
    ``latency_seconds`` delays every answer (benchmarks); ``on_unknown_id(download_id)`` may
    script an id the sandbox has no record of when a request names it (a Script), or leave
    it unknown (None: 404); ``on_answer(method, path, status)`` hears of every answer sent.
    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        latency_seconds: float = 0.0,
        on_unknown_id: UnknownIdHook | None = None,
        on_answer: AnswerHook | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency_seconds = latency_seconds
        self.on_answer = on_answer
        self._initial_key = api_key
        self._key = api_key
        self._clock = clock
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._outage: OutageHook | None = None
        self._downloads = ScriptedDownloads(clock, lambda: self.base_url, on_unknown_id)
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
        # An AF_INET server's address is (str, int); socketserver's type also allows bytes.
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    # -- set-up --------------------------------------------------------------------------

    def set_outage(self, hook: OutageHook | None) -> None:
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
            self._downloads.script(download_id, script)
        return script

    def add_download(
        self,
        download_id: str,
        status: str = "error",
        name: str | None = None,
        created_at: datetime | str | None = None,
    ) -> None:
        """Add (or replace) a download record, as ``GET /download`` will list it."""
        with self._lock:
            self._downloads.add(download_id, status, name, created_at)

    def populate(self, population: Population | None) -> None:
        """Also list ``population``'s generated downloads (grow it between requests)."""
        with self._lock:
            self._downloads.populate(population)

    def reset(self) -> None:
        """Forget every record, job, script and recorded request; restore the first key."""
        with self._lock:
            self._clear()

    # -- inspection ----------------------------------------------------------------------

    @property
    def downloads(self) -> ScriptedDownloads:
        """The scripted downloads behind the server (what each endpoint answers)."""
        return self._downloads

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
            if (
                request.method == "POST"
                and match
                and (download_id is None or unquote(match.group(1)) == download_id)
            ):
                calls.append(request)
        return calls

    def download(self, download_id: str) -> dict[str, Any] | None:
        """The download record as ``GET /download/{id}`` shows it now, or None."""
        with self._lock:
            return self._downloads.view(download_id)

    # -- request handling (called by the handler threads) -------------------------------

    def _serve_request(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Answer | None:
        """Record, hold back, answer and report one request; None: stopping, hang up."""
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, headers, body, self._clock()))
        if not self._pause(self._delay_for(method, path, query)):
            return None
        answer = self._answer(method, path, query, headers, body)
        if self.on_answer is not None:
            self.on_answer(method, path, answer.status)
        return answer

    def _delay_for(self, method: str, path: str, query: dict[str, str]) -> float:
        """Seconds to hold this answer: global latency plus the delay of the id it is about."""
        with self._lock:
            if match := _DOWNLOAD_PATH.match(path):
                scripted = self._downloads.delay_of(download_id=unquote(match.group(1)))
            elif match := _JOB_PATH.match(path):
                scripted = self._downloads.delay_of(job_id=unquote(match.group(1)))
            elif path == "/download" and method == "DELETE":
                scripted = self._downloads.delay_of(download_id=query.get("download_id"))
            else:
                scripted = 0.0
        return min(max(self.latency_seconds + scripted, 0.0), MAX_DELAY_SECONDS)

    def _pause(self, seconds: float) -> bool:
        """Sleep without holding the lock; False when the server is stopping meanwhile."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Answer:
        """The router: outage, key check, then the endpoint the method and path name."""
        token = headers.get("x-access-token", "")
        with self._lock:
            if self._outage is not None and (status := self._outage(method, path)) is not None:
                return error_answer(status, "Service unavailable (sandbox outage)")
            if not hmac.compare_digest(token.encode(), self._key.encode()):
                return error_answer(401, "Invalid or missing x-access-token")
            downloads = self._downloads
            if match := _DOWNLOAD_PATH.match(path):
                download_id = unquote(match.group(1))
                if method == "POST":
                    return downloads.retry(download_id)
                if method == "GET":
                    return downloads.get(download_id)
            elif (match := _JOB_PATH.match(path)) and method == "GET":
                return downloads.poll(unquote(match.group(1)))
            elif path == "/download":
                if method == "GET":
                    return downloads.page(query)
                if method == "POST":
                    return downloads.create(body)
                if method == "DELETE":
                    return downloads.delete(query, body)
            return error_answer(404, f"No route for {method} {path}")

    def _clear(self) -> None:
        # Caller holds the lock (or is __init__). The same ScriptedDownloads is kept: whoever
        # holds it (a test wrapping one endpoint) still sees the sandbox's downloads after it.
        self._key = self._initial_key
        self._downloads.clear()
        self._requests: list[RecordedRequest] = []


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck on a client never keeps the process alive
    # socketserver's default backlog of 5 drops bursts of connections, which then wait a
    # 1 s SYN retransmit: that would show up as fake latency in benchmarks.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, *, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP into :meth:`SandboxServer._serve_request` calls; one thread per connection."""

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
        answer = sandbox._serve_request(self.command, split.path, query, headers, body)
        if answer is None:
            self.close_connection = True  # stopping: hang up without an answer
            return
        self._send(answer, with_body=self.command != "HEAD")

    # Every method reaches the router, so anything unknown gets a JSON 404 (not HTML 501).
    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = do_HEAD = _handle

    def _send(self, answer: Answer, with_body: bool = True) -> None:
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
        self._send(error_answer(code, message or HTTPStatus(code).phrase))

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet tests; and the request log is the last place a key should ever leak to.
        pass


def _serve(argv: list[str] | None = None) -> None:
    """Command line: serve on loopback until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Local VideoDB download API sandbox (loopback only).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument(
        "--download",
        action="append",
        default=[],
        metavar="ID",
        help="add a download record in error status (repeatable)",
    )
    args = parser.parse_args(argv)
    with SandboxServer(args.api_key, port=args.port, latency_seconds=args.latency) as server:
        for download_id in args.download:
            server.add_download(download_id)
        print(
            f"VideoDB sandbox on {server.base_url} (x-access-token: the --api-key value). Ctrl-C stops.",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", flush=True)


if __name__ == "__main__":
    _serve()
