"""Fixtures for the operator CLI: run it in-process, AWS in moto (in-process or a loopback server)."""

from __future__ import annotations

import io
import json
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from moto import mock_aws

from videodb_retry_cli.main import main

REGION = "us-east-1"


@dataclass
class Result:
    """What one run of the command printed and returned."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in an empty directory: the repository's samconfig.toml must not leak in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``cli("enqueue", "id", stdin="...")`` runs main() and returns code, stdout and stderr."""

    def run(*argv: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in-process (no sockets at all)."""
    with mock_aws():
        yield


@dataclass
class Queues:
    """A retry queue whose redrive policy names a dead-letter queue, as the template makes them."""

    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


def make_queues(sqs: Any, prefix: str = "retry") -> Queues:
    """Create the two queues (plain names, so tests read easily)."""
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=prefix,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Queues(url, arn, dlq_url, dlq_arn)


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def queues(sqs: Any) -> Queues:
    return make_queues(sqs)


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message on a queue (received and deleted), with attributes."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        messages += batch
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


class ApiCalls:
    """Records every AWS API call made by any client; ``answers`` can replace one operation."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Callable[[Callable[..., Any], Any, dict[str, Any]], Any]] = {}

    def named(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> ApiCalls:
    spy = ApiCalls()
    original = BaseClient._make_api_call

    def recording(client: Any, operation: str, params: dict[str, Any]) -> Any:
        spy.calls.append((operation, params))
        if operation in spy.answers:
            return spy.answers[operation](original, client, params)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return spy


@pytest.fixture
def server_url(moto_server: str) -> str:
    """The moto server, emptied for this test."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=5)
    return moto_server
