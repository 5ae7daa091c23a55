"""The sandbox as serve mode runs it: download ids script themselves by prefix."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from videodb_retry_local.sandbox import SandboxServer

_DOWNLOAD_PATH = re.compile(r"^/download/([^/]+)$")


@dataclass(frozen=True)
class Prefix:
    """How the sandbox treats every download id that starts with ``prefix``."""

    prefix: str
    behaviour: str
    expected: str
    script: dict[str, Any] | None  # Script fields; None: the id stays unknown (404)


PREFIXES = (
    Prefix("dl-ok-", "processing ~2 s, then done", "succeeded on attempt 1", {"processing_seconds": 2.0}),
    Prefix(
        "dl-fail-",
        "the first retry job fails, the next one is done",
        "failed, re-queued, succeeded on attempt 2",
        {"fail_times": 1, "processing_seconds": 1.0},
    ),
    Prefix(
        "dl-doomed-",
        "every retry job fails",
        "failed on every attempt; attempts exhausted",
        {"fail_times": 1_000_000, "processing_seconds": 1.0},
    ),
    Prefix(
        "dl-stuck-",
        "the job never finishes",
        "timed out on every attempt",
        # Assumes VideoDB accepts a retry of a still-processing download (README, "VideoDB
        # answers": the sandbox refuses it by default).
        {"never_finishes": True, "not_failed_retry_status": None},
    ),
    Prefix(
        "dl-blip-",
        "the first retry call answers 503",
        "record redelivered once, then succeeded",
        {"retry_status": 503, "retry_status_times": 1, "processing_seconds": 1.0},
    ),
    Prefix("dl-gone-", "unknown to VideoDB (404)", "dead-lettered with error_code http_404", None),
)


class PrefixSandbox(SandboxServer):
    """The sandbox, with download ids that script themselves by prefix on first sight.

    The first request about ``/download/{id}`` (the retry POST, or a GET) with a known prefix
    scripts the id through the public :meth:`SandboxServer.script`; later requests find it
    scripted. Ids without a scripted prefix (``dl-gone-...``, anything else) stay unknown.
    This hooks :meth:`SandboxServer._answer`, the router every request reaches (before the
    key check: a request with a wrong key also scripts the id, and still gets its 401).
    """

    def __init__(self, *args: Any, on_answer: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first_sight = threading.Lock()
        self._on_answer = on_answer

    def behaviour_of(self, download_id: str) -> Prefix | None:
        """The prefix rule for ``download_id``, if any."""
        return next((p for p in PREFIXES if download_id.startswith(p.prefix)), None)

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Any:
        match = _DOWNLOAD_PATH.match(path)
        if match and method in ("GET", "POST"):
            download_id = unquote(match.group(1))
            rule = self.behaviour_of(download_id)
            if rule is not None and rule.script is not None:
                with self._first_sight:  # two first requests at once script it once
                    if self.download(download_id) is None:
                        self.script(download_id, **rule.script)
        answer = super()._answer(method, path, query, headers, body)
        if self._on_answer is not None:  # method, path and status only: never a header
            self._on_answer(f"videodb: {method} {path} -> {answer.status}")
        return answer
