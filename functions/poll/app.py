"""Poll function: the retry workflow's poll step.

Step Functions invokes it with the workflow state (and its retry count); it polls the job on
the inline schedule, or once, and returns the ended attempt's state, or raises
``JobStillRunning`` for the workflow's Retry to wait and invoke it again. When the attempt it
returns is its retry sequence's last, it ends the sequence first (see sequence.py).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from videodb_retry.api_key import ApiKeyProvider
from videodb_retry.client import VideoDBClient
from videodb_retry.observability import ENDING_METRICS, Metric, count, logger, metrics
from videodb_retry.poll import Clock, Ended, JobStillRunning, TransientPollError, follow_job
from videodb_retry.retry_sequences import RetrySequences, end_after_poll
from videodb_retry.sequence_aws import DynamoDBSequenceStore
from videodb_retry.settings import current

settings = current()
videodb = VideoDBClient(settings, ApiKeyProvider(settings))
sequences = RetrySequences(
    DynamoDBSequenceStore(settings.idempotency_table_name), settings.idempotency_expiry_seconds
)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Follow the job in ``event``; return the ended attempt's state or raise JobStillRunning."""
    state = event.get("workflow_state", event)
    logger.append_keys(download_id=state.get("download_id"), job_id=state.get("job_id"))
    # Read through the module's ``time`` at call time (benchmarks swap it for a virtual clock).
    clock = Clock(now=lambda: time.time(), sleep=lambda seconds: time.sleep(seconds))
    try:
        ended = follow_job(
            event, videodb, settings, clock, lambda: context.get_remaining_time_in_millis() / 1000
        )
    except JobStillRunning as still:
        # An expected answer, not a failure: counted apart so the errors alarm can leave it out.
        count(Metric.POLLS)
        count(Metric.POLLS_STILL_RUNNING)
        logger.info("still running", extra={"detail": str(still)})
        raise
    if isinstance(ended, Ended):
        try:
            end_after_poll(sequences, ended.outcome, clock.now())
        except Exception as exc:
            # Raised as a poll error, never silent: the workflow's Retry calls again, and the
            # job is polled and its sequence ended then (nothing is announced before that).
            count(Metric.AWS_REFUSALS)
            logger.error("could not end the retry sequence", extra={"error": f"{type(exc).__name__}: {exc}"})
            raise TransientPollError(f"could not end the retry sequence: {type(exc).__name__}") from None
    count(Metric.POLLS)
    if ended.status in ENDING_METRICS:  # a bare poll step (sam local invoke) may answer running
        count(ENDING_METRICS[ended.status])
    logger.info("polled", extra={"status": ended.status.value, "polls": ended.polls})
    # The typed result becomes the workflow state only here, at the edge.
    return ended.to_state(settings)
