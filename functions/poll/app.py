"""Poll function: the retry workflow's poll step.

Step Functions invokes it with the workflow state (and its retry count); it makes one request
(its token taken from the shared request budget first) and returns the ended attempt's state
or the deferral's, or raises ``JobStillRunning`` for the workflow's Retry to wait and invoke
it again. It never sleeps: its Timeout is its hard time limit, which the budget counts. When
the attempt it returns is its retry sequence's last, it ends the sequence first (sequence.py).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from videodb_retry.adapters.api_key import ApiKeyProvider
from videodb_retry.adapters.request_gate_aws import DynamoDBRequestGate
from videodb_retry.adapters.sequence_aws import DynamoDBSequenceStore
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.observability import ENDING_METRICS, Metric, count, logger, metrics
from videodb_retry.settings import current
from videodb_retry.steps.gated_videodb import GatedVideoDB
from videodb_retry.steps.poll import DEFERRED, Ended, JobStillRunning, TransientPollError, follow_job
from videodb_retry.steps.retry_sequences import RetrySequences, end_after_poll

settings = current()
# Read through the module's ``time`` at call time (benchmarks swap it for a virtual clock).
videodb = GatedVideoDB(
    VideoDBClient(settings, ApiKeyProvider(settings)),
    DynamoDBRequestGate(settings.idempotency_table_name, settings.budgets),
    now=lambda: time.time(),
    sleep=lambda seconds: time.sleep(seconds),
)
sequences = RetrySequences(
    DynamoDBSequenceStore(settings.idempotency_table_name), settings.idempotency_expiry_seconds
)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Poll the job in ``event`` once; return the ended or deferred state, or raise JobStillRunning."""
    state = event.get("workflow_state", event)
    logger.append_keys(download_id=state.get("download_id"), job_id=state.get("job_id"))
    try:
        result = follow_job(event, videodb, settings, now=time.time())
    except JobStillRunning as still:
        # An expected answer, not a failure: counted apart so the errors alarm can leave it out.
        count(Metric.POLLS)
        count(Metric.POLLS_STILL_RUNNING)
        logger.info("still running", extra={"detail": str(still)})
        raise
    answer = result.to_state(settings)  # the typed result becomes the workflow state only here
    if result.status == DEFERRED:
        count(Metric.POLLS_DEFERRED)
        logger.info("deferred by the request budget", extra={"wait_seconds": answer["wait_seconds"]})
        return answer
    if isinstance(result, Ended):
        try:
            end_after_poll(sequences, result.outcome, time.time())
        except Exception as exc:
            # Raised as a poll error, never silent: the workflow's Retry calls again, and the
            # job is polled and its sequence ended then (nothing is announced before that).
            count(Metric.AWS_REFUSALS)
            logger.error("could not end the retry sequence", extra={"error": f"{type(exc).__name__}: {exc}"})
            raise TransientPollError(f"could not end the retry sequence: {type(exc).__name__}") from None
    count(Metric.POLLS)
    if result.status in ENDING_METRICS:  # a bare poll step (sam local invoke) may answer running
        count(ENDING_METRICS[result.status])
    logger.info("polled", extra={"status": str(result.status), "polls": result.polls})
    return answer
