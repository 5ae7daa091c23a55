"""How one attempt ends, and what it announces.

The outcome event's shape, the decision to try again and the re-queued message are built
here only; the retry function sends them itself (``outcomes_aws.OutcomePublisher``), the
workflow sends what the poll function hands it (see statemachine/retry_workflow.asl.json).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from videodb_retry.rules.messages import RetryRequest
from videodb_retry.rules.sanitise import clean_result, clean_text


class RequeueSettings(Protocol):
    """The one setting an outcome needs (``Settings`` has it): the rule reads no environment."""

    @property
    def requeue_delay_seconds(self) -> int:
        """Seconds a re-queued message waits before the retry function sees it."""


class Ending(enum.StrEnum):
    """The three ways a retry attempt can end."""

    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


DETAIL_TYPES = {
    Ending.DONE: "Download Retry Succeeded",
    Ending.FAILED: "Download Retry Failed",
    Ending.TIMED_OUT: "Download Retry Timed Out",
}


@dataclass(frozen=True)
class Outcome:
    """The end of one attempt of one download."""

    ending: Ending
    download_id: str
    attempt: int
    max_attempts: int
    job_id: str | None = None
    polls: int = 0
    elapsed_seconds: float = 0.0
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    sequence: int | None = None  # the retry sequence (None: an attempt from before they were numbered)

    @property
    def will_retry(self) -> bool:
        """True when this attempt failed or timed out and another attempt is allowed."""
        return self.ending is not Ending.DONE and self.attempt < self.max_attempts

    @property
    def ends_sequence(self) -> bool:
        """True when this was the sequence's last attempt: done, or no attempt is left."""
        return not self.will_retry

    @property
    def detail_type(self) -> str:
        """The EventBridge detail-type of the outcome event."""
        return DETAIL_TYPES[self.ending]

    def detail(self) -> dict[str, Any]:
        """The outcome event's detail (never holds the API key).

        What VideoDB wrote (job id, error, result) is cleaned and capped here, the one place
        every event and the workflow's copy of it are built (see sanitise.py).
        """
        detail: dict[str, Any] = {
            "download_id": self.download_id,
            "job_id": None if self.job_id is None else clean_text(self.job_id),
            "status": self.ending.value,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "sequence": self.sequence,
            "polls": self.polls,
            "elapsed_seconds": round(self.elapsed_seconds, 1),
            "will_retry": self.will_retry,
        }
        if self.error:
            detail["error"] = clean_text(self.error)
        if self.result:
            detail["result"] = clean_result(self.result)
        return detail

    def next_request(self) -> RetryRequest:
        """The message that re-queues this download for its next attempt."""
        why = self.error or self.ending.value.replace("_", " ")
        return RetryRequest(
            download_id=self.download_id,
            attempt=self.attempt + 1,
            reason=clean_text(f"attempt {self.attempt} {self.ending.value}: {why}"),
            sequence=self.sequence,
        )

    def for_workflow(self, settings: RequeueSettings) -> dict[str, Any]:
        """What the state machine needs to re-queue and announce this outcome itself."""
        return {
            "detail_type": self.detail_type,
            "detail": self.detail(),
            "requeue": self.will_retry,
            "requeue_body": self.next_request().to_body() if self.will_retry else "",
            "requeue_delay_seconds": settings.requeue_delay_seconds,
        }
