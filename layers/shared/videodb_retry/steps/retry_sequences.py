"""Applying the retry-sequence rules (``sequence``) to each download's stored record.

Read, decide, write with the version read: a lost race (another record of the batch, the
poll function) is decided again from what the winner stored.
"""

from __future__ import annotations

from collections.abc import Callable

from videodb_retry.errors import TransientError
from videodb_retry.ports import SequenceStore
from videodb_retry.rules.outcomes import Outcome
from videodb_retry.rules.sequence import (
    Admission,
    Report,
    SequenceConflict,
    SequenceRecord,
    admit,
    carry_on,
    expires_at,
    finish,
)

SAVE_TRIES = 3  # versions lost in a row before the record fails (and SQS redelivers it)


class RetrySequences:
    """Begins, carries on and ends one download's retry sequences in the store."""

    def __init__(self, store: SequenceStore, stale_after_seconds: float) -> None:
        self._store = store
        self._stale_after = stale_after_seconds

    def begin(self, download_id: str, report: Report, now: float) -> Admission:
        """The verdict on a failure report (stored before it is returned).

        Most reports name a download never seen: the record is first written as if there
        were none (one conditional write); only when one exists is it read and decided on.
        """
        return self._update(
            download_id,
            lambda record: admit(record, report, now, self._stale_after),
            assume=SequenceRecord(download_id),
        )

    def carry_on(self, download_id: str, number: int, now: float) -> bool:
        """True when attempt messages of sequence ``number`` should still run."""
        return self._update(download_id, lambda record: carry_on(record, number, now))

    def end(
        self,
        download_id: str,
        ending: str,
        now: float,
        number: int | None = None,
        begun_by: str | None = None,
    ) -> bool:
        """End the running sequence ``number`` (or the one the report ``begun_by`` began);
        True when this call ended it. Ending twice does nothing."""

        def decide(record: SequenceRecord) -> tuple[bool, SequenceRecord | None]:
            ended = finish(record, ending, now, number, begun_by)
            return ended is not None, ended

        return self._update(download_id, decide)

    def _update[T](
        self,
        download_id: str,
        decide: Callable[[SequenceRecord], tuple[T, SequenceRecord | None]],
        assume: SequenceRecord | None = None,
    ) -> T:
        for _ in range(SAVE_TRIES):
            record = assume or self._store.load(download_id) or SequenceRecord(download_id)
            assume = None
            answer, new = decide(record)
            if new is None:
                return answer
            try:
                self._store.save(new, expires_at(new, self._stale_after))
            except SequenceConflict:
                continue  # someone else stored first: decide again from what they stored
            return answer
        raise TransientError(f"the retry sequence of {download_id} kept changing; try again")


def end_after_poll(sequences: RetrySequences, outcome: Outcome, now: float) -> None:
    """The poll function's part: when the attempt it returns is the sequence's last, end the
    sequence before the workflow announces it (a refused write is retried by the workflow)."""
    if outcome.sequence is not None and outcome.ends_sequence:
        sequences.end(outcome.download_id, outcome.ending.value, now, number=outcome.sequence)
