"""The poll step: one request per invocation, the waits between polls are the workflow's.

The workflow (statemachine/retry_workflow.asl.json) waits ``PollFirstWaitSeconds`` in a Wait
state, then invokes the poll function with ``{"workflow_state": <state>, "retry_count":
$$.State.RetryCount}``. Each invocation makes one request (no sleeping: a poll holds a Lambda
for at most its hard time limit, which is what the concurrency budget counts). A job still
processing raises ``JobStillRunning`` and the Task's Retry waits (growing, capped) and invokes
again: one transition per poll. A bare state is one ``poll_step`` (settling a poll error,
``sam local invoke``, the bench's fixed poller).

Every request takes a token from the shared request budget first (``gated_videodb``). A
refused poll sent nothing and is not a poll: the function answers :class:`Deferred`
(``status`` ``deferred``, with ``wait_seconds``) and the workflow waits in a Wait state, no
Lambda held, then polls again.

A poll's result is a typed value: :class:`Waiting` (still processing), :class:`Deferred` or
:class:`Ended` (``done``, ``failed`` or ``timed_out``, with the
:class:`~videodb_retry.rules.outcomes.Outcome` the workflow re-queues and announces). Their
``to_state`` is the workflow state the handler returns, the one dict form of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from videodb_retry.errors import PermanentError, RequestDeferred, TransientError
from videodb_retry.ports import VideoDB
from videodb_retry.rules.backoff import exponential_wait
from videodb_retry.rules.outcomes import Ending, Outcome
from videodb_retry.rules.status import JobState
from videodb_retry.settings import Settings

# The workflow's Retry on JobStillRunning (IntervalSeconds, BackoffRate, MaxDelaySeconds):
# ASL takes no parameters for them, so they live in the definition; this mirror gives a bare
# step's ``wait_seconds`` and is checked against the definition (tests/unit/test_poll_schedule.py).
LADDER_FIRST_SECONDS = 15
LADDER_FACTOR = 1.25
LADDER_CAP_SECONDS = 900
# A deferred poll waits the ladder's next step, counting its polls and deferrals in this
# attempt as steps (15 s, x1.25 each), at most 120 s, jittered by a quarter: short while the
# budget frees up, growing when it stays spent. Every workflow of a backlog thus tries about as
# often as any other once at the cap, so the polls admitted go to workflows of every age, mostly
# old enough for their job to have ended (polls per attempt fall toward one; a cap of 900 s,
# the ladder's own, let young workflows ask most: mass drained in 40,000 s against 31,000 s).
# Past the deadline a deferred poll is deferred again, for at most PollDeadlineSeconds more
# (2 h at most): the attempt is judged on VideoDB's next answer, not ended by our own budget
# while its job may have succeeded. Rounds are bounded: (a day's deadline + 2 h) /
# (0.75 x 120 s) plus the ramp's ten steps below the cap, about a thousand rounds of 9 events
# (25,000 events, Step Functions quotas; tests/integration/test_history_limit.py).
DEFERRAL_CAP_SECONDS = 120
DEFERRAL_JITTER = 0.25
DEFERRAL_GRACE_CAP_SECONDS = 2 * 3600


class TransientPollError(Exception):
    """Raised for errors worth another try; the state machine's Retry matches this name."""


class JobStillRunning(Exception):
    """Raised when the job is still processing after this invocation's polls; the state
    machine's Retry on this name is the wait between polls (one transition per poll)."""


class InvalidPollState(ValueError):
    """The workflow handed in a state this function cannot work with."""


@dataclass(frozen=True)
class PollState:
    """The workflow state the poll step reads."""

    download_id: str
    job_id: str
    output_url: str
    attempt: int
    started_at: float
    deadline_at: float
    polls: int
    sequence: int | None = None  # the retry sequence (absent in executions started before)
    deferrals: int = 0  # polls our own request budget refused in this attempt (not polls)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> PollState:
        """Read and type-check the workflow state."""
        try:
            return cls(
                download_id=str(state["download_id"]),
                job_id=str(state["job_id"]),
                output_url=str(state["output_url"]),
                attempt=int(state["attempt"]),
                started_at=float(state["started_at"]),
                deadline_at=float(state["deadline_at"]),
                polls=int(state.get("polls", 0)),
                sequence=_sequence(state),
                deferrals=int(state.get("deferrals", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidPollState(f"workflow state is missing or has a bad {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The workflow state's fields (the first poll's state starts from these)."""
        return {
            "download_id": self.download_id,
            "job_id": self.job_id,
            "output_url": self.output_url,
            "attempt": self.attempt,
            "started_at": self.started_at,
            "deadline_at": self.deadline_at,
            "polls": self.polls,
            **({} if self.sequence is None else {"sequence": self.sequence}),
        }

    @classmethod
    def lenient(cls, state: dict[str, Any], now: float) -> PollState:
        """Whatever can be read from a state that may be malformed (for settling errors)."""

        def number(key: str, default: float) -> float:
            try:
                return float(state[key])
            except (KeyError, TypeError, ValueError):
                return default

        return cls(
            download_id=str(state.get("download_id", "unknown")),
            job_id=str(state.get("job_id", "unknown")),
            output_url=str(state.get("output_url", "")),
            attempt=int(number("attempt", 1)),
            started_at=number("started_at", now),
            deadline_at=number("deadline_at", now),
            polls=int(number("polls", 0)),
            sequence=int(number("sequence", 0)) or None,
        )


def _sequence(state: dict[str, Any]) -> int | None:
    value = state.get("sequence")
    return None if value is None else int(value)


@dataclass(frozen=True)
class Waiting:
    """A poll that found the job still processing: poll again in ``wait_seconds``."""

    carried: Mapping[str, Any]  # the identifying fields, as the workflow handed them in
    polls: int
    wait_seconds: int
    elapsed_seconds: float

    @property
    def status(self) -> JobState:
        """The state's ``status``: always ``running``."""
        return JobState.RUNNING

    def to_state(self, settings: Settings) -> dict[str, Any]:
        """The next workflow state, as the state machine reads it (``settings``: unused here,
        taken so that any :data:`PollResult` becomes a state the same way)."""
        return {
            **self.carried,
            "polls": self.polls,
            "wait_seconds": self.wait_seconds,
            "status": self.status.value,
            "elapsed_seconds": round(self.elapsed_seconds, 1),
        }


@dataclass(frozen=True)
class Deferred:
    """A poll our own request budget refused (nothing was sent; not a poll): the workflow
    waits ``wait_seconds`` in a Wait state, holding no Lambda, and polls again."""

    carried: Mapping[str, Any]
    polls: int
    deferrals: int
    wait_seconds: int

    @property
    def status(self) -> str:
        """The state's ``status``: ``deferred`` (the workflow's Choice routes on it)."""
        return DEFERRED

    def to_state(self, settings: Settings) -> dict[str, Any]:
        """The next workflow state: the polls made so far, carried across the Wait (the Task
        is entered anew after it, so its retry count starts again)."""
        return {
            **self.carried,
            "polls": self.polls,
            "deferrals": self.deferrals,
            "wait_seconds": self.wait_seconds,
            "status": self.status,
        }


@dataclass(frozen=True)
class Ended:
    """An ended attempt: its outcome, for the workflow to re-queue and announce."""

    carried: Mapping[str, Any]  # the identifying fields, as the workflow handed them in
    outcome: Outcome

    @property
    def status(self) -> Ending:
        """The state's ``status``: ``done``, ``failed`` or ``timed_out``."""
        return self.outcome.ending

    @property
    def polls(self) -> int:
        """Polls made in this attempt, this one included."""
        return self.outcome.polls

    def to_state(self, settings: Settings) -> dict[str, Any]:
        """The final workflow state, with what the workflow needs to re-queue and announce."""
        return {
            **self.carried,
            "polls": self.polls,
            "status": self.status.value,
            "elapsed_seconds": round(self.outcome.elapsed_seconds, 1),
            "outcome": self.outcome.for_workflow(settings),
        }


PollResult = Waiting | Deferred | Ended
DEFERRED = "deferred"


def poll_step(state: dict[str, Any], videodb: VideoDB, settings: Settings, now: float) -> PollResult:
    """Poll the job once (or settle a poll error); ``to_state`` is the next workflow state."""
    carried = _carried(state)
    if "poll_error" in state:
        # Settling must work even for the state that made polling fail, or the execution
        # would end with no outcome event.
        current = PollState.lenient(state, now)
        return _end(carried, current, settings, now, Ending.FAILED, _cause(state["poll_error"]), polled=False)
    return _poll(carried, PollState.from_dict(state), videodb, settings, now)


def _poll(
    carried: Mapping[str, Any], current: PollState, videodb: VideoDB, settings: Settings, now: float
) -> PollResult:
    if not videodb.is_on_api_origin(current.output_url):
        # Fail closed: the key goes only to the configured API origin.
        error = "output_url is not on the configured VideoDB API origin; not followed"
        return _end(carried, current, settings, now, Ending.FAILED, error, polled=False)
    try:
        job = videodb.get_job(current.output_url, current.download_id)
    except RequestDeferred:
        return _defer(carried, current, settings, now)
    except PermanentError as exc:
        return _end(carried, current, settings, now, Ending.FAILED, str(exc))
    except TransientError as exc:
        # Retried by the workflow for hours, past the deadline too: while VideoDB cannot answer,
        # the job may well end, and the attempt is judged on VideoDB's next answer.
        raise TransientPollError(str(exc)) from None
    polls = current.polls + 1
    if job.state is JobState.DONE:
        return _end(carried, current, settings, now, Ending.DONE, None, result=job.result)
    if job.state is JobState.FAILED:
        # How an answer is judged (status x success, another download's id) is status.py's
        # table; whatever it says, an attempt is only ever "done" on a DONE answer.
        error = job.error or "VideoDB reported the job failed"
        return _end(carried, current, settings, now, Ending.FAILED, error)
    remaining = current.deadline_at - now
    if remaining <= 0:
        error = f"job still processing after {settings.poll_deadline_seconds} s"
        return _end(carried, current, settings, now, Ending.TIMED_OUT, error)
    if polls >= settings.poll_max_polls:
        # Bounds the execution's history (25,000 events) whatever the timing parameters;
        # PollMaxPolls' MaxValue leaves room for every poll's retries too.
        error = f"job still processing after {polls} polls (PollMaxPolls)"
        return _end(carried, current, settings, now, Ending.TIMED_OUT, error)
    # A hint for a caller that waits itself (the bench's fixed poller): the workflow's ladder.
    wait = exponential_wait(polls - 1, LADDER_FIRST_SECONDS, LADDER_FACTOR, LADDER_CAP_SECONDS)
    # The last wait ends at the deadline, so the final poll happens right on it.
    wait = max(1, min(wait, math.ceil(remaining)))
    return Waiting(carried, polls=polls, wait_seconds=wait, elapsed_seconds=now - current.started_at)


def _defer(carried: Mapping[str, Any], current: PollState, settings: Settings, now: float) -> PollResult:
    """The budget refused this poll: wait and try again (past the deadline too, for as long
    again up to 2 h), or end the attempt timed out once that is spent."""
    grace = min(settings.poll_deadline_seconds, DEFERRAL_GRACE_CAP_SECONDS)
    remaining = current.deadline_at + grace - now
    if remaining <= 0:
        error = f"job still processing after {grace} s (its polls deferred {grace} s more)"
        return _end(carried, current, settings, now, Ending.TIMED_OUT, error, polled=False)
    step = current.polls + current.deferrals
    wait = exponential_wait(
        step, LADDER_FIRST_SECONDS, LADDER_FACTOR, DEFERRAL_CAP_SECONDS, jitter=DEFERRAL_JITTER
    )
    wait = max(1, min(wait, math.ceil(remaining)))
    return Deferred(carried, polls=current.polls, deferrals=current.deferrals + 1, wait_seconds=wait)


def _end(
    carried: Mapping[str, Any],
    current: PollState,
    settings: Settings,
    now: float,
    ending: Ending,
    error: str | None,
    result: dict[str, Any] | None = None,
    polled: bool = True,
) -> Ended:
    outcome = Outcome(
        ending=ending,
        download_id=current.download_id,
        attempt=current.attempt,
        max_attempts=settings.max_retry_attempts,
        job_id=current.job_id,
        polls=current.polls + (1 if polled else 0),
        elapsed_seconds=now - current.started_at,
        error=error,
        result=result or {},
        sequence=current.sequence,
    )
    return Ended(carried, outcome)


def _carried(state: dict[str, Any]) -> dict[str, Any]:
    # Carry the identifying fields forward as they came (the state machine sees them
    # unchanged); per-step fields are dropped so the state stays small.
    keep = (
        "download_id",
        "job_id",
        "output_url",
        "attempt",
        "sequence",
        "started_at",
        "deadline_at",
        "max_attempts",
    )
    return {key: state[key] for key in keep if key in state}


def _cause(poll_error: Any) -> str:
    """The error message out of a Step Functions Catch result ``{"Error", "Cause"}``."""
    if not isinstance(poll_error, dict):
        return "poll step failed"
    cause = poll_error.get("Cause")
    try:
        parsed = json.loads(cause) if isinstance(cause, str) else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("errorMessage"), str):
        message = parsed["errorMessage"]
    else:
        message = cause if isinstance(cause, str) else ""
    error = poll_error.get("Error") or "Error"
    return f"poll step failed ({error}): {message}"[:1024]


def follow_job(event: dict[str, Any], videodb: VideoDB, settings: Settings, now: float) -> PollResult:
    """Poll the job once; return the ended attempt or the deferral, or raise
    ``JobStillRunning`` for the workflow's Retry to wait and invoke again.

    Polls already made: the state's (up to the Task's last entry) plus this entry's retry
    count. Each retry of the Task followed one poll (``JobStillRunning``, a transient error)
    or one invocation Lambda refused (throttling writes history too, so it counts toward
    ``PollMaxPolls``, the history bound); a deferral ends the Task, so it never counts.
    """
    if "workflow_state" not in event or "poll_error" in event["workflow_state"]:
        # A bare state is one poll step (SettlePollError, `sam local invoke`, the bench's
        # fixed poller): it may return ``Waiting`` (``running``, with ``wait_seconds``).
        return poll_step(event.get("workflow_state", event), videodb, settings, now=now)
    state = event["workflow_state"]
    retries = max(0, int(event.get("retry_count", 0) or 0))
    current = PollState.from_dict(state)
    result = _poll(_carried(state), replace(current, polls=current.polls + retries), videodb, settings, now)
    if isinstance(result, Waiting):
        raise JobStillRunning(f"job still processing after {result.polls} polls")
    return result
