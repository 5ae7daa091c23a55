"""Unit-test fixtures: a scripted HTTP server on loopback and in-memory fakes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from videodb_retry.settings import Settings

from tests.fakes import FakeKey, InMemoryLedger  # noqa: F401  (re-exported for the test files)


@dataclass
class Answer:
    """One scripted HTTP answer."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


class ScriptedServer:
    """An HTTP server on 127.0.0.1 that answers from a queue and records every request."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.seen: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                answer = server.answers.pop(0) if server.answers else Answer(500, {"message": "no answer"})
                payload = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()


@pytest.fixture
def settings_for(http_server: ScriptedServer):
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_base_url": http_server.base_url,
            "read_timeout_seconds": 2.0,
            "connect_timeout_seconds": 1.0,
            "max_retry_attempts": 3,
            "poll_first_wait_seconds": 5,
            "poll_deadline_seconds": 600,
            "requeue_delay_seconds": 30,
        }
        values.update(overrides)
        return Settings(**values)

    return make
