"""`redrive`: the dead-letter queue summary (nothing consumed) and the move back."""

from __future__ import annotations

import json
from typing import Any

import boto3

from tests.cli.conftest import REGION, ApiCalls, Queues, drain, make_queues


def dead_letter(sqs: Any, queue_url: str, body: str, code: str | None, reason: str | None) -> None:
    """A message as the retry function's DeadLetterQueue.send leaves it (or bare, without code)."""
    attributes: dict[str, Any] = {}
    if code:
        attributes = {
            "reason": {"DataType": "String", "StringValue": reason},
            "error_code": {"DataType": "String", "StringValue": code},
            "source_message_id": {"DataType": "String", "StringValue": "m-1"},
            "receive_count": {"DataType": "Number", "StringValue": "1"},
        }
    sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=attributes)


def fill(sqs: Any, queues: Queues) -> None:
    for n in range(3):
        dead_letter(
            sqs, queues.dlq_url, f"bad body {n}", "poison", "message body is neither a download id nor JSON"
        )
    for n in range(2):
        dead_letter(sqs, queues.dlq_url, f"gone-{n}", "http_404", "POST /download answered 404: not found")
    dead_letter(sqs, queues.dlq_url, "tired-1", None, None)


def visible(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_dry_run_counts_by_code_and_reason_and_consumes_nothing(
    cli: Any, sqs: Any, queues: Queues, api_calls: ApiCalls
) -> None:
    fill(sqs, queues)
    result = cli("redrive", "--dry-run", "--queue-url", queues.url)  # DLQ found from the redrive policy
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"dead-letter queue: {queues.dlq_url}"
    assert lines[1] == "messages: ~6 waiting, ~0 in flight"
    assert lines[2] == "read 6 message(s), by error code and reason:"
    assert lines[3].split() == ["COUNT", "ERROR_CODE", "REASON"]
    assert lines[4].split()[:2] == ["3", "poison"] and lines[4].endswith("neither a download id nor JSON")
    assert lines[5].split()[:2] == ["2", "http_404"]
    assert lines[6].split()[:2] == ["1", "(none)"]
    # What moving them back does now: poison comes straight back; the others begin a new retry
    # sequence, so VideoDB is asked again (never "not sent again": retry sequences, issue 21).
    assert "5 message(s) are poison or a permanent VideoDB error" in result.out
    assert "VideoDB is asked again" in result.out and "not sent to VideoDB again" not in result.out
    assert lines[-1] == "dry run: nothing moved"
    assert api_calls.named("StartMessageMoveTask") == []
    # Read, not consumed: everything is visible again at once.
    assert visible(sqs, queues.dlq_url) == 6
    assert len(drain(sqs, queues.dlq_url)) == 6


def test_dry_run_json(cli: Any, sqs: Any, queues: Queues) -> None:
    fill(sqs, queues)
    result = cli("redrive", "--dry-run", "--json", "--queue-url", queues.url, "--dlq-url", queues.dlq_url)
    answer = json.loads(result.out)
    assert (answer["task_handle"], answer["moved"]) == (None, None)
    summary = answer["summary"]
    assert summary["approximate_messages"] == 6 and summary["sampled"] == 6
    assert summary["by_error_code"] == {"poison": 3, "http_404": 2, "(none)": 1}
    assert summary["by_reason"][0] == {
        "error_code": "poison",
        "reason": "message body is neither a download id nor JSON",
        "count": 3,
    }


def test_sample_is_bounded(cli: Any, sqs: Any, queues: Queues, api_calls: ApiCalls) -> None:
    for n in range(25):
        dead_letter(sqs, queues.dlq_url, f"b{n}", "poison", "r")
    result = cli("redrive", "--dry-run", "--json", "--sample", "12", "--queue-url", queues.url)
    summary = json.loads(result.out)["summary"]
    assert summary["sampled"] == 12 and summary["approximate_messages"] == 25
    assert len(api_calls.named("ReceiveMessage")) <= 3
    assert visible(sqs, queues.dlq_url) == 25


def test_starts_a_message_move_task_from_the_dlq_to_the_retry_queue(
    cli: Any, sqs: Any, queues: Queues, api_calls: ApiCalls
) -> None:
    fill(sqs, queues)
    api_calls.answers["StartMessageMoveTask"] = lambda original, client, params: {
        "TaskHandle": "task-handle-1"
    }
    result = cli("redrive", "--queue-url", queues.url, "--max-per-second", "5")
    assert result.code == 0, result.err
    assert api_calls.named("StartMessageMoveTask") == [
        {"SourceArn": queues.dlq_arn, "DestinationArn": queues.arn, "MaxNumberOfMessagesPerSecond": 5}
    ]
    assert "message move task started: task-handle-1" in result.out
    assert f"aws sqs list-message-move-tasks --source-arn {queues.dlq_arn}" in result.out


def test_empty_dlq_moves_nothing(cli: Any, queues: Queues, api_calls: ApiCalls) -> None:
    result = cli("redrive", "--queue-url", queues.url)
    assert result.code == 0
    assert "the dead-letter queue is empty: nothing to redrive" in result.out
    assert api_calls.named("StartMessageMoveTask") == []


def test_refused_move_task_is_one_line(cli: Any, sqs: Any, queues: Queues, api_calls: ApiCalls) -> None:
    from botocore.exceptions import ClientError

    def refuse(original: Any, client: Any, params: dict[str, Any]) -> Any:
        error = {
            "Error": {
                "Code": "InvalidParameterValue",
                "Message": "Source queue must be configured\nas a DLQ.",
            }
        }
        raise ClientError(error, "StartMessageMoveTask")

    fill(sqs, queues)
    api_calls.answers["StartMessageMoveTask"] = refuse
    result = cli("redrive", "--queue-url", queues.url)
    assert result.code == 1
    assert result.err_lines == [
        "videodb-retry: StartMessageMoveTask failed: InvalidParameterValue: "
        "Source queue must be configured as a DLQ."
    ]


def test_queue_without_dlq_needs_dlq_url(cli: Any, sqs: Any) -> None:
    url = sqs.create_queue(QueueName="plain")["QueueUrl"]
    result = cli("redrive", "--dry-run", "--queue-url", url)
    assert result.code == 1
    assert result.err_lines == [f"videodb-retry: queue {url} has no dead-letter queue; pass --dlq-url"]


def test_emulator_fallback_moves_messages_back(cli: Any, server_url: str) -> None:
    """moto has no StartMessageMoveTask: with --endpoint-url the bounded fallback moves them."""
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=server_url)
    queues = make_queues(sqs)
    fill(sqs, queues)
    result = cli("--endpoint-url", server_url, "redrive", "--queue-url", queues.url)
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == (
        f"moved 6 message(s) to {queues.url} (emulator fallback: receive/send/delete)"
    )
    assert drain(sqs, queues.dlq_url) == []
    moved = drain(sqs, queues.url)
    assert sorted(m["Body"] for m in moved) == sorted(
        ["bad body 0", "bad body 1", "bad body 2", "gone-0", "gone-1", "tired-1"]
    )
    gone = next(m for m in moved if m["Body"] == "gone-0")
    assert (
        gone["MessageAttributes"]["error_code"]["StringValue"] == "http_404"
    )  # attributes kept, as SQS does
