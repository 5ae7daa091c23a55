"""Retry function: consumes the retry queue in batches and retries each failed download.

Each record is processed on its own, several at once; only the records that hit a transient
error are reported back as failures, so SQS redelivers exactly those.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from videodb_retry.adapters.api_key import ApiKeyProvider
from videodb_retry.adapters.batch import ConcurrentBatchProcessor
from videodb_retry.adapters.breaker_aws import DynamoDBBreakerStore
from videodb_retry.adapters.dead_letter import DeadLetterQueue
from videodb_retry.adapters.ledger import DynamoDBLedger
from videodb_retry.adapters.outcomes_aws import OutcomePublisher
from videodb_retry.adapters.queue_aws import QueueDeferrals, VisibilityBackoff
from videodb_retry.adapters.request_gate_aws import DynamoDBRequestGate
from videodb_retry.adapters.sequence_aws import DynamoDBSequenceStore
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.adapters.workflow import WorkflowStarter
from videodb_retry.observability import logger, metrics
from videodb_retry.settings import current
from videodb_retry.steps.breaker_control import OutcomeCounter, enabled_from_env, thresholds_from_env
from videodb_retry.steps.gated_videodb import GatedVideoDB, TimeLeft
from videodb_retry.steps.record_delivery import RecordDelivery
from videodb_retry.steps.retry_attempt import RetryService
from videodb_retry.steps.retry_sequences import RetrySequences

settings = current()
ledger = DynamoDBLedger(settings.idempotency_table_name, settings.idempotency_expiry_seconds)
# A POST waits for the request budget's next window while the invocation has time for it and
# for what follows (its concurrency is the event source's MaximumConcurrency, fixed).
time_left = TimeLeft(reserve_seconds=settings.connect_timeout_seconds + settings.read_timeout_seconds + 5)
videodb = GatedVideoDB(
    VideoDBClient(settings, ApiKeyProvider(settings)),
    DynamoDBRequestGate(settings.idempotency_table_name, settings.budgets),
    now=time.time,
    sleep=time.sleep,
    patience=time_left.patience,
)
delivery = RecordDelivery(
    settings,
    RetryService(
        settings=settings,
        videodb=videodb,
        dead_letters=DeadLetterQueue(settings),
        workflows=WorkflowStarter(settings),
        outcomes=OutcomePublisher(settings),
        ledger=ledger,
        sequences=RetrySequences(
            DynamoDBSequenceStore(settings.idempotency_table_name), settings.idempotency_expiry_seconds
        ),
    ),
    VisibilityBackoff(settings.retry_queue_url),
    QueueDeferrals(settings.retry_queue_url),
)
# Records run concurrently (RetryBatchConcurrency); a batch whose every record failed is
# still a partial response, not a function error.
processor = ConcurrentBatchProcessor(settings.batch_concurrency, raise_on_entire_batch_failure=False)
# The circuit breaker's counts: each batch's records and transient failures (see breaker.py).
breaker_counts = (
    OutcomeCounter(thresholds_from_env(), DynamoDBBreakerStore(settings.idempotency_table_name), time.time)
    if enabled_from_env()
    else None
)


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
    """Retry the download one record names; raise to have SQS deliver it again."""
    logger.thread_safe_append_keys(message_id=record.message_id)
    try:
        remaining = lambda_context.get_remaining_time_in_millis() if lambda_context else None
        return delivery.handle(record, remaining)
    finally:
        logger.thread_safe_clear_keys()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """SQS batch entry point with partial batch responses."""
    ledger.register_lambda_context(context)
    time_left.register(context)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    if breaker_counts is not None:
        breaker_counts.record(len(event.get("Records", [])), len(response.get("batchItemFailures", [])))
    return response
