"""How long a record that failed for a transient reason waits before its next delivery.

Lambda leaves a failed record invisible for the queue's whole visibility timeout; instead the
retry function sets that record's visibility itself, growing with its receive count (and at
least VideoDB's ``Retry-After``), so a struggling API is not hammered and a short blip is
retried soon. The last allowed delivery goes to the DLQ with the reason, not silently by redrive.
The policy only: ``queue_aws.VisibilityBackoff`` applies the delay, ``record_delivery`` decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from videodb_retry.rules.backoff import exponential_wait

# SQS refuses a visibility that ends more than 12 h after the message's *receive*, not after
# the call (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html).
# A record reaches the function after Lambda's poller received it and waited for its batch
# (MaximumBatchingWindowInSeconds, at most 300 s), and fails within the function's run (at
# most 900 s): the longest delay leaves both out of the 12 h.
SQS_VISIBILITY_LIMIT_SECONDS = 12 * 60 * 60
RECEIVE_TO_CALL_SECONDS = 300 + 900
MAX_VISIBILITY_SECONDS = SQS_VISIBILITY_LIMIT_SECONDS - RECEIVE_TO_CALL_SECONDS


@dataclass(frozen=True)
class RedeliveryPolicy:
    """How long a failed record stays invisible before its next delivery."""

    first_delay_seconds: int = 30
    factor: float = 2.0
    max_delay_seconds: int = 900
    max_receive_count: int = 10

    def delay(self, receive_count: int, retry_after: int | None = None) -> int:
        """Seconds until delivery ``receive_count + 1`` (exponential, jittered, capped)."""
        wait = exponential_wait(
            max(0, receive_count - 1), self.first_delay_seconds, self.factor, self.max_delay_seconds
        )
        if retry_after:
            wait = max(wait, retry_after)
        return min(wait, MAX_VISIBILITY_SECONDS)

    def is_last_delivery(self, receive_count: int) -> bool:
        """True when SQS would move this record to the DLQ after one more failure."""
        return receive_count >= self.max_receive_count
