"""Retry sequences: what one failure of a download is.

A *failure report* (a bare id, JSON without ``sequence``, a "download failed" event, a message
moved back from the DLQ) asks for a download to be retried. It begins a **retry sequence**:
attempt 1, 2, ... up to ``MaxRetryAttempts``, each re-queued message carrying the sequence's
number. One download has at most one sequence running at a time:

- a report for a download whose sequence is running is a duplicate (nothing is done);
- a report *sent* before the last sequence ended is about the failure that sequence handled
  (EventBridge delivering an event twice, a twin enqueued side by side, VideoDB's own failure
  event for the last attempt): a duplicate too. Sent is the event's ``time`` for an event,
  else SQS's ``SentTimestamp``;
- a report sent after it ended begins a new sequence, numbered one more;
- a download may begin at most :data:`SEQUENCE_LIMIT` sequences in :data:`SEQUENCE_PERIOD_SECONDS`:
  a report past that bound is refused (dead-lettered with the reason, which is also stored), so
  a download that fails for ever is not retried for ever, whoever keeps reporting it (the
  sweeper, VideoDB's own events). A report moved back from the DLQ is an operator's decision
  and is not bound by either rule (only by a running sequence);
- the sequence ends when its last attempt ends (done; failed or timed out with no attempts
  left; dead-lettered), in the retry function or the poll function; a running sequence not
  touched for longer than one attempt can live (``stale_after_seconds``) counts as ended.

Pure rules over one download's :class:`SequenceRecord`; ``retry_sequences`` applies them to
the stored record (DynamoDB: ``sequence_aws``) with optimistic versions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import UTC, datetime

SEQUENCE_LIMIT = 3
SEQUENCE_PERIOD_SECONDS = 24 * 60 * 60


class SequenceConflict(Exception):
    """Someone else saved the download's sequence record since it was read."""


class Verdict(enum.StrEnum):
    """What a failure report leads to."""

    BEGUN = "begun"  # a new sequence (or this very message's, redelivered)
    DUPLICATE = "duplicate"
    REFUSED = "refused"  # past the bound: dead-lettered with the reason


@dataclass(frozen=True)
class SequenceRecord:
    """One download's sequences as stored (``version`` 0: never stored)."""

    download_id: str
    number: int = 0  # the last sequence begun (0: none yet)
    running: bool = False
    begun_by: str = ""  # the SQS message id of the report that began it
    touched_at: float = 0.0  # its last begin, attempt or end
    covered_until: float = 0.0  # reports sent before this are about what is already handled
    ended_as: str = ""
    starts: tuple[float, ...] = ()  # begin times within the last SEQUENCE_PERIOD_SECONDS
    refused_reason: str = ""
    version: int = 0


@dataclass(frozen=True)
class Report:
    """A failure report as the retry function received it."""

    message_id: str
    sent_at: float
    redriven: bool = False


@dataclass(frozen=True)
class Admission:
    """The verdict on a report: the sequence it runs as, or why it does not."""

    verdict: Verdict
    number: int = 0
    reason: str = ""


def admit(
    record: SequenceRecord, report: Report, now: float, stale_after: float
) -> tuple[Admission, SequenceRecord | None]:
    """The verdict on ``report``, and the record to store (None: nothing changes)."""
    if record.running and record.begun_by == report.message_id:
        # This report began the running sequence: a redelivery of it carries on as that one.
        return Admission(Verdict.BEGUN, record.number), None
    abandoned = record.running and now - record.touched_at > stale_after
    if record.running and not abandoned:
        return Admission(Verdict.DUPLICATE, reason=f"retry sequence {record.number} is running"), None
    covered_until = record.touched_at if abandoned else record.covered_until
    if not report.redriven and report.sent_at < covered_until:
        why = f"reported before retry sequence {record.number} ended ({record.ended_as or 'abandoned'})"
        return Admission(Verdict.DUPLICATE, reason=why), None
    recent = tuple(t for t in record.starts if t > now - SEQUENCE_PERIOD_SECONDS)
    if not report.redriven and len(recent) >= SEQUENCE_LIMIT:
        reason = (
            f"{SEQUENCE_LIMIT} retry sequences began in the last {SEQUENCE_PERIOD_SECONDS // 3600} h "
            f"(the last ended {record.ended_as or 'abandoned'}); not retried again before "
            f"{_iso(recent[0] + SEQUENCE_PERIOD_SECONDS)}; move this message back from the DLQ "
            "to retry it anyway"
        )
        refused = replace(
            record, running=False, covered_until=max(covered_until, now), starts=recent, refused_reason=reason
        )
        return Admission(Verdict.REFUSED, record.number, reason), refused
    begun = replace(
        record,
        number=record.number + 1,
        running=True,
        begun_by=report.message_id,
        touched_at=now,
        ended_as="",
        starts=(*recent, now),
        refused_reason="",
    )
    return Admission(Verdict.BEGUN, begun.number), begun


def carry_on(record: SequenceRecord, number: int, now: float) -> tuple[bool, SequenceRecord | None]:
    """Whether a next attempt of sequence ``number`` still belongs to a running sequence;
    the touched record to store. A record never stored (an attempt from before sequences
    were numbered, or one whose record expired) carries on untracked."""
    if record.version == 0:
        return True, None
    if record.running and record.number == number:
        return True, replace(record, touched_at=now)
    return False, None


def finish(
    record: SequenceRecord, ending: str, now: float, number: int | None, begun_by: str | None
) -> SequenceRecord | None:
    """The record with the running sequence ended (None: nothing to end — it ended already,
    or the attempt belongs to another sequence)."""
    if not record.running:
        return None
    if (number is not None and number != record.number) or (number is None and begun_by != record.begun_by):
        return None
    return replace(record, running=False, ended_as=ending, touched_at=now, covered_until=now)


def expires_at(record: SequenceRecord, stale_after: float) -> float:
    """When the stored record may go (DynamoDB TTL): after the bound's period has passed over
    its last begin and any running sequence could have gone stale."""
    return max(record.starts or (record.touched_at,)) + SEQUENCE_PERIOD_SECONDS + stale_after


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
