"""The concurrent batch processor keeps Powertools' partial-batch contract."""

import threading
import time

import pytest
from aws_lambda_powertools.utilities.batch import process_partial_response
from videodb_retry.adapters.batch import ConcurrentBatchProcessor


def event(n):
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": str(i),
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                "awsRegion": "us-east-1",
                "md5OfBody": "",
            }
            for i in range(n)
        ]
    }


class Gauge:
    """Counts how many records are inside the handler at once."""

    def __init__(self):
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


@pytest.mark.parametrize("workers, expected_peak", [(1, 1), (4, 4), (10, 10)])
def test_records_run_up_to_the_pool_size_at_once(workers, expected_peak):
    gauge = Gauge()
    barrier = threading.Barrier(expected_peak, timeout=5) if expected_peak > 1 else None

    def handler(record):
        with gauge:
            if barrier:
                barrier.wait()  # all `expected_peak` records must be inside together
            else:
                time.sleep(0.001)
        return record.body

    processor = ConcurrentBatchProcessor(workers)
    result = process_partial_response(event=event(expected_peak), record_handler=handler, processor=processor)
    assert result == {"batchItemFailures": []}
    assert gauge.peak == expected_peak


def test_exactly_the_failed_records_are_reported():
    def handler(record):
        if int(record.body) % 3 == 0:
            raise RuntimeError("boom")
        return "ok"

    processor = ConcurrentBatchProcessor(8, raise_on_entire_batch_failure=False)
    result = process_partial_response(event=event(10), record_handler=handler, processor=processor)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["m-0", "m-3", "m-6", "m-9"]


def test_a_batch_that_fails_entirely_is_still_a_partial_response():
    def handler(record):
        raise RuntimeError("down")

    processor = ConcurrentBatchProcessor(4, raise_on_entire_batch_failure=False)
    result = process_partial_response(event=event(3), record_handler=handler, processor=processor)
    assert len(result["batchItemFailures"]) == 3


def test_the_pool_is_reused_between_invocations():
    def handler(record):
        return record.body

    processor = ConcurrentBatchProcessor(4)
    process_partial_response(event=event(4), record_handler=handler, processor=processor)
    pool = processor._pool
    process_partial_response(event=event(4), record_handler=handler, processor=processor)
    assert processor._pool is pool is not None
