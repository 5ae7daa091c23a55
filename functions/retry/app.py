"""Retry function: consumes the retry queue in batches and retries each failed download.

Each record is processed on its own; only the records that hit a transient error are
reported back as failures, so SQS redelivers exactly those.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from videodb_retry.api_key import ApiKeyProvider
from videodb_retry.client import VideoDBClient
from videodb_retry.dead_letter import DeadLetterQueue
from videodb_retry.errors import TransientError
from videodb_retry.observability import Metric, logger, metrics, tracer
from videodb_retry.outcomes import OutcomePublisher
from videodb_retry.retry import InboundMessage, RetryService
from videodb_retry.settings import current
from videodb_retry.workflow import WorkflowStarter

settings = current()
service = RetryService(
    settings=settings,
    videodb=VideoDBClient(settings, ApiKeyProvider(settings)),
    dead_letters=DeadLetterQueue(settings),
    workflows=WorkflowStarter(settings),
    outcomes=OutcomePublisher(settings),
)
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    """Retry the download one record names; raise to have SQS deliver it again."""
    logger.append_keys(message_id=record.message_id)
    try:
        return service.process(
            InboundMessage(
                body=record.body,
                message_id=record.message_id,
                receive_count=int(record.attributes.approximate_receive_count or 1),
            )
        )
    except TransientError as exc:
        metrics.add_metric(name=Metric.TRANSIENT_ERRORS, unit="Count", value=1)
        logger.warning("transient error; the record will be delivered again", extra={"error": str(exc)})
        raise
    finally:
        logger.remove_keys(["message_id", "download_id", "attempt", "job_id"])


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch entry point with partial batch responses."""
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
