"""The sandbox as serve mode runs it: download ids script themselves by prefix.

:func:`script_by_prefix` is the sandbox's ``on_unknown_id`` hook: the first request about
``/download/{id}`` (the retry POST, or a GET) with a known prefix scripts the id, and later
requests find it scripted. Ids without a scripted prefix (``dl-gone-...``, anything else)
stay unknown (404). The sandbox asks the hook under its lock, so two first requests at once
script the id once; and only after the key check, so a refused request scripts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from videodb_retry_local.videodb_sandbox.sandbox import AnswerHook, SandboxServer, Script


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
        # Assumes VideoDB accepts a retry of a still-processing download (docs/contract.md, "VideoDB
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


def behaviour_of(download_id: str) -> Prefix | None:
    """The prefix rule for ``download_id``, if any."""
    return next((p for p in PREFIXES if download_id.startswith(p.prefix)), None)


def script_by_prefix(download_id: str) -> Script | None:
    """The script of an id the sandbox has not seen, by its prefix (None: unknown, 404)."""
    rule = behaviour_of(download_id)
    return Script(**rule.script) if rule is not None and rule.script is not None else None


def prefix_sandbox(
    api_key: str, host: str = "127.0.0.1", port: int = 0, on_answer: AnswerHook | None = None
) -> SandboxServer:
    """A sandbox (not started) whose download ids script themselves by prefix."""
    return SandboxServer(api_key, host, port, on_unknown_id=script_by_prefix, on_answer=on_answer)
