"""One record's work in the retry function: parse, call VideoDB, route the answer.

What happens to the record:
- poison input or a permanent API error -> dead-letter queue with the reason (record done);
- VideoDB is processing the retry -> the wait/poll workflow is started (record done);
- VideoDB answers done or failed at once -> the outcome is settled here (record done);
- the attempt was already handled (a duplicate delivery) -> nothing is done again (record done);
- a failure report for a download whose retry sequence runs, or sent before it ended -> a
  duplicate; past the bound on sequences -> dead-lettered with the reason (see sequence.py);
- a transient error -> raised, so the batch reports this record failed and SQS redelivers it.

A failure report begins a retry sequence; each of its attempts carries the sequence's number,
and the sequence is ended here (after its last attempt settled) or by the poll function.

The two steps with outside effects, *issue* (the POST) and *settle* (what follows it), each run
once per attempt through the :class:`~videodb_retry.ports.Ledger`, so a redelivery after a
failure in *settle* does not POST again, and a duplicate message does nothing twice.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Self

from videodb_retry.errors import ForeignOriginError, PermanentError, RequestDeferred, StepInProgress
from videodb_retry.messages import PoisonMessage, RetryRequest, parse_body
from videodb_retry.observability import ENDING_METRICS, Metric, count, logger
from videodb_retry.outcomes import Ending, Outcome
from videodb_retry.poll import PollState
from videodb_retry.ports import DeadLetters, Ledger, OutcomeSink, VideoDB, Workflows
from videodb_retry.retry_sequences import RetrySequences
from videodb_retry.sanitise import clean_text
from videodb_retry.sequence import Report, Verdict
from videodb_retry.settings import Settings
from videodb_retry.status import JobState, JobStatus


class RecordResult(enum.StrEnum):
    """What processing one queue record led to."""

    WORKFLOW_STARTED = "workflow_started"
    ALREADY_RUNNING = "already_running"
    DUPLICATE = "duplicate"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    DEFERRED = "deferred"  # our own request budget had no token in time: re-queued as new


@dataclass(frozen=True)
class InboundMessage:
    """The parts of an SQS record the retry needs."""

    body: str
    message_id: str
    receive_count: int = 1
    redriven: bool = False  # moved back from the DLQ (see dead_letter.is_redriven)
    sent_at: float | None = None  # SQS's SentTimestamp, in seconds


@dataclass(frozen=True)
class Refusal:
    """Why VideoDB's answer to the retry can never lead anywhere: the DLQ reason and code."""

    reason: str
    code: str


@dataclass(frozen=True)
class Issued:
    """What the *issue* step (the POST) led to: VideoDB's job status, or a refusal.

    Kept in the ledger as ``{"status": {...}}`` or ``{"permanent": reason, "code": code}``
    (the shape earlier releases stored, so a replay across an upgrade reads the same).
    """

    status: JobStatus | None = None
    refusal: Refusal | None = None

    def to_record(self) -> dict[str, Any]:
        """The ledger's stored form."""
        if self.refusal is not None:
            return {"permanent": self.refusal.reason, "code": self.refusal.code}
        assert self.status is not None, "an Issued holds a status or a refusal"
        return {"status": self.status.to_dict()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        """Read the ledger's stored form back."""
        if "permanent" in record:
            return cls(refusal=Refusal(reason=record["permanent"], code=record["code"]))
        return cls(status=JobStatus.from_dict(record["status"]))

    @property
    def starts_workflow(self) -> bool:
        """True when the issued retry is a job to follow (the common path)."""
        status = self.status
        return bool(
            status is not None and status.state is JobState.RUNNING and status.job_id and status.output_url
        )


class RetryService:
    """Retries downloads through VideoDB and routes each answer."""

    def __init__(
        self,
        settings: Settings,
        videodb: VideoDB,
        dead_letters: DeadLetters,
        workflows: Workflows,
        outcomes: OutcomeSink,
        ledger: Ledger,
        sequences: RetrySequences,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._sequences = sequences
        self._videodb = videodb
        self._dead_letters = dead_letters
        self._workflows = workflows
        self._outcomes = outcomes
        self._ledger = ledger
        self._clock = clock

    def process(self, message: InboundMessage) -> RecordResult:
        """Process one message; raises :class:`~videodb_retry.errors.TransientError` to retry it."""
        try:
            request = parse_body(message.body)
        except PoisonMessage as exc:
            count(Metric.POISON_MESSAGES)
            return self._send_dead_letter(message, str(exc), "poison", None)
        logger.thread_safe_append_keys(download_id=request.download_id, attempt=request.attempt)
        if request.is_report or message.redriven:
            # A message moved back from the DLQ is an operator's new report, whatever it held.
            admitted = self._admit(message, request)
            if isinstance(admitted, RecordResult):
                return admitted
            request = admitted
        elif request.attempt > self._settings.max_retry_attempts:
            reason = (
                f"attempt {request.attempt} exceeds MaxRetryAttempts ({self._settings.max_retry_attempts})"
            )
            return self.dead_letter(message, reason, "attempts_exhausted", request.download_id)
        elif request.sequence is not None and not self._sequences.carry_on(
            request.download_id, request.sequence, self._clock()
        ):
            return self._duplicate(f"retry sequence {request.sequence} has ended or was superseded")
        try:
            stored, _ = self._ledger.once("issue", request, lambda: self._issue(request).to_record())
            issued = Issued.from_record(stored)
            if issued.starts_workflow:
                # Starting the workflow needs no ledger entry: the execution name is
                # deterministic, so Step Functions itself refuses a second start (for 90 days).
                return self._settle(message, request, issued)
            settled, replayed = self._ledger.once(
                "settle", request, lambda: {"result": self._settle(message, request, issued).value}
            )
        except StepInProgress as exc:
            return self._duplicate(str(exc))
        except RequestDeferred as exc:
            # A report whose sequence was just begun must come back as that sequence's
            # attempt: a copy of the report would be a duplicate of the sequence it began.
            if request.sequence is not None:
                exc.requeue_body = request.to_body()
            raise
        result = RecordResult(settled["result"])
        # After the settle step, replayed too: a redelivery after a refused write ends it then.
        self._end_if_last(request, result)
        if replayed:
            return self._duplicate("this attempt was already handled")
        return result

    def dead_letter(
        self,
        message: InboundMessage,
        reason: str,
        code: str,
        download_id: str | None,
    ) -> RecordResult:
        """Send ``message`` to the DLQ with its reason and end the retry sequence it belongs to
        (its last attempt is over); raises if the DLQ refuses it."""
        result = self._send_dead_letter(message, reason, code, download_id)
        if download_id is not None:
            try:
                request = parse_body(message.body)
            except PoisonMessage:
                return result
            # A report (a redriven message is one, whatever its body says) ends the sequence
            # it began, if any; a re-queued attempt the sequence its body names.
            if request.is_report or message.redriven:
                self._sequences.end(download_id, "dead_lettered", self._clock(), begun_by=message.message_id)
            elif request.sequence is not None:
                self._sequences.end(download_id, "dead_lettered", self._clock(), number=request.sequence)
        return result

    def _admit(self, message: InboundMessage, request: RetryRequest) -> RetryRequest | RecordResult:
        """Begin a retry sequence for a failure report, or say why not (duplicate, refused)."""
        now = self._clock()
        sent_at = request.reported_at or message.sent_at or now
        report = Report(message_id=message.message_id, sent_at=sent_at, redriven=message.redriven)
        admission = self._sequences.begin(request.download_id, report, now)
        if admission.verdict is Verdict.DUPLICATE:
            return self._duplicate(admission.reason)
        if admission.verdict is Verdict.REFUSED:
            return self._send_dead_letter(
                message, admission.reason, "sequences_exhausted", request.download_id
            )
        logger.thread_safe_append_keys(sequence=admission.number)
        return replace(request, sequence=admission.number, attempt=1)

    def _end_if_last(self, request: RetryRequest, result: RecordResult) -> None:
        last = result in (RecordResult.SUCCEEDED, RecordResult.DEAD_LETTERED) or (
            result is RecordResult.FAILED and request.attempt >= self._settings.max_retry_attempts
        )
        if last and request.sequence is not None:
            self._sequences.end(request.download_id, result.value, self._clock(), request.sequence)

    def _send_dead_letter(
        self, message: InboundMessage, reason: str, code: str, download_id: str | None
    ) -> RecordResult:
        self._dead_letters.send(
            body=message.body,
            reason=reason,
            error_code=code,
            source_message_id=message.message_id,
            download_id=download_id,
            receive_count=message.receive_count,
        )
        logger.warning("message sent to the dead-letter queue", extra={"reason": reason, "error_code": code})
        return RecordResult.DEAD_LETTERED

    def _issue(self, request: RetryRequest) -> Issued:
        """The POST, once per attempt. A permanent refusal is a result too (kept, not raised),
        so a duplicate of a refused attempt is not sent to VideoDB again."""
        try:
            status = self._videodb.retry_download(request.download_id)
        except PermanentError as exc:
            code = f"http_{exc.status_code}" if exc.status_code else exc.code
            # Kept in the ledger's DynamoDB item (400 KB at most) and sent as the DLQ reason.
            return Issued(refusal=Refusal(reason=clean_text(str(exc)), code=code))
        count(Metric.RETRIES_ISSUED)
        if status.output_url:
            try:
                self._videodb.followable_url(status.output_url)
            except ForeignOriginError as exc:
                # Following it would send the key elsewhere, and so would every later attempt.
                reason = f"VideoDB's output_url was refused: {exc}"
                return Issued(refusal=Refusal(reason=reason, code="foreign_origin"))
        return Issued(status=status)

    def _settle(self, message: InboundMessage, request: RetryRequest, issued: Issued) -> RecordResult:
        if issued.refusal is not None:
            count(Metric.PERMANENT_ERRORS)
            # The sequence is ended after the settle step (``_end_if_last``), not here.
            return self._send_dead_letter(
                message, issued.refusal.reason, issued.refusal.code, request.download_id
            )
        assert issued.status is not None, "an Issued holds a status or a refusal"
        logger.thread_safe_append_keys(job_id=issued.status.job_id)
        return self._route(request, issued.status)

    def _route(self, request: RetryRequest, status: JobStatus) -> RecordResult:
        if status.state is JobState.RUNNING:
            if status.job_id and status.output_url:
                return self._start_workflow(request, status)
            # Nothing to follow: count it as a failed attempt rather than guess.
            return self._end(
                request, status, Ending.FAILED, "VideoDB answered processing without a job to poll"
            )
        if status.state is JobState.DONE:
            return self._end(request, status, Ending.DONE, None)
        return self._end(request, status, Ending.FAILED, status.error or "VideoDB answered failed")

    def _start_workflow(self, request: RetryRequest, status: JobStatus) -> RecordResult:
        now = self._clock()
        first = PollState(
            download_id=request.download_id,
            job_id=clean_text(status.job_id or ""),
            output_url=status.output_url or "",  # set: only a job with one is followed
            attempt=request.attempt,
            started_at=now,
            deadline_at=now + self._settings.poll_deadline_seconds,
            polls=0,
            sequence=request.sequence,
        )
        # The execution's input: the state the poll function reads back (PollState.from_dict).
        state = {
            **first.to_dict(),
            # The workflow's first Wait (no Lambda waits): then the first poll.
            "wait_seconds": max(1, self._settings.poll_first_wait_seconds),
            "status": JobState.RUNNING.value,
            # For the workflow's last-resort Failed event, built without the poll function.
            "max_attempts": self._settings.max_retry_attempts,
        }
        if self._workflows.start(state):
            logger.info("retry issued; workflow started")
            return RecordResult.WORKFLOW_STARTED
        # The execution name is deterministic: the service itself caught the second start.
        count(Metric.DUPLICATES)
        logger.info("duplicate: the workflow for this job already exists")
        return RecordResult.ALREADY_RUNNING

    def _end(
        self, request: RetryRequest, status: JobStatus, ending: Ending, error: str | None
    ) -> RecordResult:
        outcome = Outcome(
            ending=ending,
            download_id=request.download_id,
            attempt=request.attempt,
            max_attempts=self._settings.max_retry_attempts,
            job_id=status.job_id,
            error=error,
            result=status.result,
            sequence=request.sequence,
        )
        self._outcomes.settle(outcome)
        count(ENDING_METRICS[ending])
        logger.info("retry ended at once", extra={"outcome": ending.value, "will_retry": outcome.will_retry})
        return RecordResult.SUCCEEDED if ending is Ending.DONE else RecordResult.FAILED

    def _duplicate(self, why: str) -> RecordResult:
        count(Metric.DUPLICATES)
        logger.info("duplicate delivery; nothing done again", extra={"why": why})
        return RecordResult.DUPLICATE
