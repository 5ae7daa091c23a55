"""How the sandbox treats one download id: its :class:`Script`, and the counted answers.

:class:`~videodb_retry_local.videodb_sandbox.sandbox_downloads.ScriptedDownloads` holds a Script per id and
consults these when an endpoint is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from videodb_retry_local.videodb_sandbox.sandbox_answers import Answer, AnswerShape, error_answer


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


# What to do with a download id the sandbox has no record of: a Script to script it with
# (its record is created in `error`, as :meth:`ScriptedDownloads.script` does), or None to
# leave it unknown (404).
UnknownIdHook = Callable[[str], Script | None]


@dataclass
class Counters:
    """How often a script's counted behaviours were used (since the script was set)."""

    jobs: int = 0
    retry_status: int = 0
    poll_status: int = 0
    malformed: int = 0


def scripted_status(status: int | None, times: int | None, counters: Counters, counter: str) -> int | None:
    """The scripted status this request answers (and count it), or None to answer normally."""
    if status is None:
        return None
    used = getattr(counters, counter)
    if times is not None and used >= times:
        return None
    setattr(counters, counter, used + 1)
    return status


def scripted_error(status: int, script: Script, what: str) -> Answer:
    """The scripted error answer (a 429 carries the script's Retry-After, if any)."""
    headers = {}
    if status == 429 and script.retry_after is not None:
        headers["Retry-After"] = str(script.retry_after)
    return error_answer(status, f"sandbox: scripted HTTP {status} for the {what} call", headers)
