"""boto3 clients are built one at a time, once per service, however many threads ask first.

boto3's sessions are not thread-safe and ``boto3.client`` uses the shared default session, so
clients must not be built concurrently (boto3 docs, "Multithreading or multiprocessing with
clients"); the retry function's first use of each client happens inside its batch's threads.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import process_partial_response
from videodb_retry.adapters import aws_clients
from videodb_retry.adapters.batch import ConcurrentBatchProcessor

from tests.unit.test_batch import event


class SessionStub:
    """Stands in for ``boto3.client``: counts constructions and notices two at once."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.inside = 0
        self.overlaps = 0
        self._lock = threading.Lock()

    def __call__(self, service: str, config: Any = None) -> object:
        with self._lock:
            self.inside += 1
            if self.inside > 1:
                self.overlaps += 1
        # Gives another thread the chance to come in while this one builds (a real build
        # loads JSON models for tens of milliseconds); the assertions count, never time.
        time.sleep(0.02)
        with self._lock:
            self.inside -= 1
            self.built.append(service)
        return object()


@pytest.fixture
def stub(monkeypatch):
    stub = SessionStub()
    monkeypatch.setattr(aws_clients.boto3, "client", stub)
    aws_clients.client.cache_clear()
    yield stub
    aws_clients.client.cache_clear()


def test_many_threads_asking_first_build_one_client_one_at_a_time(stub):
    threads = 16
    start = threading.Barrier(threads, timeout=10)
    got: list[object] = []

    def first_use(index: int) -> None:
        start.wait()  # every thread asks at the same moment
        got.append(aws_clients.client(("sqs", "events", "dynamodb", "stepfunctions")[index % 4]))

    workers = [threading.Thread(target=first_use, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert stub.overlaps == 0, "two clients were built at once from the shared session"
    assert sorted(stub.built) == ["dynamodb", "events", "sqs", "stepfunctions"]
    assert len({id(c) for c in got}) == 4, "every thread got its service's one client"


def test_first_use_inside_the_batch_pool_builds_each_client_once(stub):
    def handler(record):
        aws_clients.client("sqs")
        aws_clients.client("events")
        return record.body

    processor = ConcurrentBatchProcessor(10)
    result = process_partial_response(event=event(10), record_handler=handler, processor=processor)
    assert result == {"batchItemFailures": []}
    assert stub.overlaps == 0
    assert sorted(stub.built) == ["events", "sqs"]


def test_cache_clear_builds_again(stub):
    first = aws_clients.client("sqs")
    assert aws_clients.client("sqs") is first
    aws_clients.client.cache_clear()
    assert aws_clients.client("sqs") is not first
    assert stub.built == ["sqs", "sqs"]
