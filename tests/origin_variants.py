"""URL variants that try to carry the API key off the API origin, and the server that must
never hear from them.

The recorder listens on 127.0.0.2 (loopback, another address than the API's 127.0.0.1) and
answers every request with a job that is "done", so code that follows a variant there would
report a fake success. Strategies build variants out of the API's authority and the
recorder's: userinfo, backslashes, percent-encoding, IDNA look-alikes, IPv6 and numeric IPv4
forms, scheme-relative URLs, letter case, default and explicit ports, trailing dots, ``@`` in
the path, whitespace and control characters.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hypothesis import strategies as st

RECORDER_HOST = "127.0.0.2"
FAKE_DONE = {
    "success": True,
    "status": "done",
    "data": {"id": "job-fake", "status": "done", "name": "fake.mp4", "download_url": "http://127.0.0.2/f"},
}


class Recorder:
    """An HTTP server on 127.0.0.2 that records every request and answers a fake "done"."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.seen.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers)}
                )
                payload = json.dumps(FAKE_DONE).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_HEAD = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((RECORDER_HOST, 0), Handler)
        self.port = self._httpd.server_address[1]
        self.authority = f"{RECORDER_HOST}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def recording_server() -> Iterator[Recorder]:
    """A :class:`Recorder` for the duration of a ``with`` block."""
    recorder = Recorder()
    try:
        yield recorder
    finally:
        recorder.stop()


def _other_forms(port: int) -> list[str]:
    """Ways to write the recorder's authority that a resolver may still read as 127.0.0.2."""
    return [
        f"127.0.0.2:{port}",
        f"127.0.0.2.:{port}",  # trailing dot
        f"2130706434:{port}",  # 127.0.0.2 as one number
        f"0x7f.0.0.2:{port}",
        f"127.2:{port}",
        f"[::ffff:127.0.0.2]:{port}",  # IPv4-mapped IPv6 literal
        f"127.0.0.\uff12:{port}",  # fullwidth digit: IDNA maps it to 2
        f"%31%32%37.0.0.2:{port}",  # percent-encoded host
        f"127.0.0.2:0{port}",  # leading zero in the port
    ]


def foreign_prefixes(api: str, other_port: int) -> st.SearchStrategy[str]:
    """``scheme://authority`` prefixes that must all be refused: each names the recorder, or
    is unclean, or has userinfo, though some look like the API's origin ``api`` (host:port)."""
    others = st.sampled_from(_other_forms(other_port))
    scheme = st.sampled_from(["http", "HTTP", "Http", "https"])
    templates = st.sampled_from(
        [
            "{s}://{o}\\@{a}",  # the finding: urllib3 stops the authority at the '\'
            "{s}://{o}\\\\@{a}",
            "{s}://{o}\\{a}",
            "{s}://{a}\\@{o}",
            "{s}://{o}@{a}",  # userinfo
            "{s}://{a}@{o}",
            "{s}://@{a}",  # empty userinfo
            "{s}://user:pass@{a}",
            "{s}://{o}%40{a}",  # percent-encoded '@'
            "{s}://{o}%5C@{a}",  # percent-encoded '\'
            "{s}://{o}",
            "//{o}",  # scheme-relative
            "//{a}",
            "{s}:{o}",
            "{s}:/{o}",
            "{s}:\\\\{o}",
            "{s}://{o}\t@{a}",  # whitespace and control characters
            "{s}://{o}\x00@{a}",
            " {s}://{o}",
            "{s}://{a} @{o}",
            "{s}://{o}#@{a}",
            "{s}://{o}?@{a}",
            "{s}://{a}.",  # trailing dot on the API's own host: not the same origin
            "{s}://{o};@{a}",
        ]
    )
    return st.builds(lambda t, s, o: t.format(s=s, o=o, a=api), templates, scheme, others)


def url_paths() -> st.SearchStrategy[str]:
    """Paths (with queries and fragments) made of the characters that confuse URL readers."""
    pieces = st.sampled_from(
        ["/", "async-response", "job-1", "@", "\\", "%40", "%2F", "..", ".", "?", "#", "=", "&", ":", "x"]
    )
    return st.lists(pieces, max_size=8).map(lambda parts: "/" + "".join(parts))


def url_soup(api: str, other_port: int) -> st.SearchStrategy[str]:
    """Free concatenations of URL pieces, the API's and recorder's authorities among them."""
    pieces = st.sampled_from(
        [
            "http://",
            "https://",
            "HTTP://",
            "//",
            "\\",
            "@",
            "%40",
            "%5C",
            ":",
            "/",
            "?",
            "#",
            ".",
            " ",
            "\t",
            api,
            f"127.0.0.2:{other_port}",
            f"[::ffff:127.0.0.2]:{other_port}",
            "127.0.0.2",
            "80",
            "localhost",
        ]
    )
    return st.lists(pieces, min_size=1, max_size=8).map("".join)
