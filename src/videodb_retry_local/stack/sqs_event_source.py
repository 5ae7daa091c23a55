"""Lambda's SQS event source mapping, emulated for the retry function."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from videodb_retry_local.stack.iam.iam_enforcement import acting_as
from videodb_retry_local.stack.lambda_runtime import FunctionError
from videodb_retry_local.stack.template import TemplateError

if TYPE_CHECKING:
    from videodb_retry_local.stack.emulated_stack import EmulatedStack


@dataclass
class Delivery:
    """One record handed to the retry function by the :class:`QueueConsumer`."""

    message_id: str
    body: str
    receive_count: int
    failed: bool


class QueueConsumer:
    """Lambda's SQS event source mapping, emulated: receive a batch, invoke, delete the rest.

    Records the function reports in ``batchItemFailures`` (or every record, when the whole
    invocation fails) stay on the queue and are received again; moto applies the queue's
    RedrivePolicy (maxReceiveCount) on receive, as SQS does.
    """

    def __init__(
        self, stack: EmulatedStack, function: str = "RetryFunction", redelivery_seconds: int | None = 1
    ) -> None:
        sources = stack.template.sqs_event_sources(function, stack.ids)
        if len(sources) != 1:
            raise TemplateError(f"{function} has {len(sources)} SQS event sources; one is expected")
        source = sources[0]
        self.stack = stack
        self.function = function
        self.queue_arn = source["Queue"]
        self.queue_url = next(
            p.ref for p in stack.ids.resources.values() if p.attributes.get("Arn") == source["Queue"]
        )
        self.batch_size = int(source.get("BatchSize", 10))
        self.reports_item_failures = "ReportBatchItemFailures" in source.get("FunctionResponseTypes", [])
        # In AWS a failed record stays invisible for the queue's VisibilityTimeout (360 s here)
        # or what the function set; locally it comes back after this many seconds so runs are
        # quick. None leaves it as AWS would (e.g. to watch a function's own backoff).
        self.redelivery_seconds = redelivery_seconds
        self.deliveries: list[Delivery] = []
        self.mapping_uuid = stack.ref(f"{function}{next(iter(self._sqs_event_names(stack, function)))}")

    @staticmethod
    def _sqs_event_names(stack: EmulatedStack, function: str) -> list[str]:
        events = stack.template.properties(function, stack.ids).get("Events", {})
        return [name for name, event in events.items() if event.get("Type") == "SQS"]

    def enabled(self) -> bool:
        """The mapping's State as Lambda reports it: a disabled mapping receives nothing."""
        mapping = self.stack.client("lambda").get_event_source_mapping(UUID=self.mapping_uuid)
        return mapping["State"] == "Enabled"

    def poll_once(self) -> int:
        """Receive one batch (if any) and hand it to the function; returns the record count.
        Nothing is received while the event source mapping is disabled (the circuit breaker)."""
        if not self.enabled():
            return 0
        with acting_as(self.function):  # the mapping polls with the function's execution role
            messages = self._receive()
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        try:
            result = self.stack.invoke(self.function, event)
            failed = self._failed_ids(result, messages)
        except FunctionError:
            failed = {m["MessageId"] for m in messages}  # the whole batch comes back
        sqs = self.stack.client("sqs")
        for message in messages:
            is_failed = message["MessageId"] in failed
            self.deliveries.append(
                Delivery(
                    message["MessageId"],
                    message["Body"],
                    int(message["Attributes"]["ApproximateReceiveCount"]),
                    is_failed,
                )
            )
            if is_failed and self.redelivery_seconds is not None:
                sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.redelivery_seconds,
                )
            elif not is_failed:
                with acting_as(self.function):
                    sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def run(self, until: Callable[[], bool], timeout: float, idle_sleep: float = 0.2) -> bool:
        """Poll until ``until()`` is true or ``timeout`` seconds pass; returns ``until()``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until():
                return True
            if not self.poll_once():
                time.sleep(idle_sleep)
        return until()

    def _receive(self) -> list[dict[str, Any]]:
        sqs = self.stack.client("sqs")
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:  # SQS hands out at most 10 per call
            got = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        return messages

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        """An SQS record as Lambda delivers it (the `sam local generate-event sqs` shape)."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value["DataType"],
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.stack.ids.region,
        }

    def _failed_ids(self, result: Any, messages: list[dict[str, Any]]) -> set[str]:
        if not self.reports_item_failures:
            return set()
        failures = (result or {}).get("batchItemFailures", []) if isinstance(result, dict) else []
        ids = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
        known = {m["MessageId"] for m in messages}
        # Lambda treats an unknown or empty identifier as a failure of the whole batch.
        return known if ids - known else ids  # type: ignore[return-value]
