"""Regenerate the `sam local invoke` payloads in events/ (run: python scripts/make_events.py).

Records follow the shape `sam local generate-event sqs receive-message` prints; the poll
inputs follow what the retry function hands the workflow. Hosts point at
host.docker.internal:8765, where the container tests serve the sandbox VideoDB API.

The retry payloads' download ids use the prefixes `videodb-retry local --serve` scripts
(videodb_retry_local.videodb_sandbox.prefix_sandbox): against it, dl-ok-* are processing then done and
dl-blip-flaky answers 503 once, so the mixed batch starts workflows, reports one record for
redelivery and dead-letters the poison message (docs/developing.md, "On your machine").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

EVENTS = Path(__file__).resolve().parent.parent / "events"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:videodb-retry-RetryQueue"
SANDBOX = "http://host.docker.internal:8765"

FAILURE_EVENT = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "Download Failed",
    "source": "videodb",
    "account": "123456789012",
    "time": "2026-11-29T12:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"download_id": "dl-ok-from-event", "error": "network timeout"},
}


def record(n: int, body: str) -> dict:
    return {
        "messageId": f"00000000-0000-4000-8000-{n:012d}",
        "receiptHandle": f"receipt-{n}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1764417600000",
            "SenderId": "123456789012",
            "ApproximateFirstReceiveTimestamp": "1764417600001",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def poll_input(job_id: str, polls: int = 0) -> dict:
    return {
        "download_id": f"download-{job_id.removeprefix('job-')}",
        "job_id": job_id,
        "output_url": f"{SANDBOX}/async-response/{job_id}",
        "attempt": 1,
        "started_at": 1764417600.0,
        "deadline_at": 4102444800.0,  # 2100-01-01: never reached in a test
        "polls": polls,
        "wait_seconds": 5,
        "status": "running",
    }


def main() -> None:
    payloads = {
        "retry-bare-id.json": {"Records": [record(1, "dl-ok-bare")]},
        "retry-json.json": {
            "Records": [
                record(2, json.dumps({"download_id": "dl-ok-json", "attempt": 2, "reason": "manual"}))
            ]
        },
        "retry-eventbridge.json": {"Records": [record(3, json.dumps(FAILURE_EVENT))]},
        "retry-mixed-batch.json": {
            "Records": [
                record(11, "dl-ok-bare"),
                record(12, json.dumps({"download_id": "dl-ok-json"})),
                record(13, json.dumps(FAILURE_EVENT)),
                record(14, "../../etc/passwd"),
                record(15, "dl-blip-flaky"),
            ]
        },
        "poll-running.json": poll_input("job-running", polls=2),
        "poll-done.json": poll_input("job-done", polls=3),
        "poll-failed.json": poll_input("job-failed", polls=1),
    }
    for name, payload in payloads.items():
        (EVENTS / name).write_text(json.dumps(payload, indent=2) + "\n")
    env = {
        "Parameters": {
            "AWS_ENDPOINT_URL": "http://host.docker.internal:5000",
            "VIDEODB_API_BASE_URL": SANDBOX,
            "API_KEY_SECRET_ID": "videodb-retry/api-key",
        },
        "RetryFunction": {
            "RETRY_QUEUE_URL": "http://host.docker.internal:5000/123456789012/videodb-retry-RetryQueue",
            "DEAD_LETTER_QUEUE_URL": (
                "http://host.docker.internal:5000/123456789012/videodb-retry-RetryDeadLetterQueue"
            ),
            "STATE_MACHINE_ARN": (
                "arn:aws:states:us-east-1:123456789012:stateMachine:videodb-retry-RetryWorkflow"
            ),
            "IDEMPOTENCY_TABLE_NAME": "videodb-retry-IdempotencyTable",
        },
    }
    (EVENTS / "env.json").write_text(json.dumps(env, indent=2) + "\n")


if __name__ == "__main__":
    main()
