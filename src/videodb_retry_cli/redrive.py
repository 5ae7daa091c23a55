"""``videodb-retry redrive``: say what is in the dead-letter queue, then move it back.

The summary reads messages without consuming them (they are hidden for a few seconds, then
made visible again at once); the move is SQS's own StartMessageMoveTask. Emulators that lack
that API (moto) get a bounded receive/send/delete move instead, and only with --endpoint-url.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from videodb_retry_cli.aws import Aws, error_code
from videodb_retry_cli.output import print_json, render_table, shorten
from videodb_retry_cli.stack_lookup import Targets

DEFAULT_SAMPLE = 100
# Long enough that one sampling pass does not see a message twice; the handles are reset to
# visible right after, so this never delays the move.
SAMPLE_VISIBILITY_SECONDS = 30
NO_ATTRIBUTE = "(none)"
# error_code values the retry function gives input that can never succeed: moving those
# back only sends them to the DLQ again.
PERMANENT_PREFIXES = ("poison", "http_")
# Codes an emulator answers for an API it does not have (moto answers a bare 500).
_UNSUPPORTED = {
    "InvalidAction",
    "UnsupportedOperation",
    "NotImplemented",
    "UnknownOperationException",
    "500",
    "501",
}
FALLBACK_VISIBILITY_SECONDS = 60


@dataclass
class Summary:
    """What the dead-letter queue holds, from its counters and a sample of its messages."""

    queue_url: str
    approximate_messages: int
    in_flight: int
    sampled: int = 0
    groups: Counter[tuple[str, str]] = field(default_factory=Counter)

    def by_error_code(self) -> dict[str, int]:
        """Sampled messages counted by error_code."""
        counts: Counter[str] = Counter()
        for (code, _), n in self.groups.items():
            counts[code] += n
        return dict(counts.most_common())

    def to_json(self) -> dict[str, Any]:
        """The summary for ``--json``."""
        return {
            "dead_letter_queue_url": self.queue_url,
            "approximate_messages": self.approximate_messages,
            "in_flight": self.in_flight,
            "sampled": self.sampled,
            "by_error_code": self.by_error_code(),
            "by_reason": [
                {"error_code": code, "reason": reason, "count": n}
                for (code, reason), n in self.groups.most_common()
            ],
        }


def run(args: Any, aws: Aws, targets: Targets) -> int:
    """Summarise the DLQ; unless --dry-run, start moving its messages to the retry queue."""
    sqs = aws.client("sqs")
    dlq_url = targets.dead_letter_queue_url()
    attributes = targets.queue_attributes(
        dlq_url, "QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"
    )
    summary = Summary(
        queue_url=dlq_url,
        approximate_messages=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )
    sample(sqs, summary, args.sample)
    # The same keys every time, so scripts need not guess: null when it did not happen.
    result: dict[str, Any] = {"summary": summary.to_json(), "task_handle": None, "moved": None}
    if not args.json:
        _print_summary(summary)

    if args.dry_run:
        _done(args, result, "dry run: nothing moved")
        return 0
    if summary.approximate_messages == 0 and summary.sampled == 0:
        _done(args, result, "the dead-letter queue is empty: nothing to redrive")
        return 0

    queue_url = targets.retry_queue_url()
    source_arn = attributes["QueueArn"]
    destination_arn = targets.queue_arn(queue_url)
    handle = _start_move_task(aws, source_arn, destination_arn, args.max_per_second)
    if handle is not None:
        result["task_handle"] = handle
        _done(
            args,
            result,
            f"message move task started: {handle}\n"
            f"follow it with: aws sqs list-message-move-tasks --source-arn {source_arn}",
        )
        return 0
    # Only reached with --endpoint-url, against an emulator without StartMessageMoveTask.
    limit = max(summary.approximate_messages, summary.sampled)
    moved = move_messages(sqs, dlq_url, queue_url, limit, args.max_per_second)
    result["moved"] = moved
    _done(args, result, f"moved {moved} message(s) to {queue_url} (emulator fallback: receive/send/delete)")
    return 0


def sample(sqs: Any, summary: Summary, limit: int) -> None:
    """Read up to ``limit`` messages' attributes into ``summary`` without consuming any."""
    handles: dict[str, str] = {}
    try:
        # Bounded: at most limit/10 receives plus a few empty ones, whatever the queue holds.
        for _ in range(limit // 10 + 3):
            # Never ask for more than the queue holds: a long poll may wait to fill the request.
            wanted = min(10, limit - len(handles), summary.approximate_messages - len(handles))
            if wanted <= 0:
                break
            answer = sqs.receive_message(
                QueueUrl=summary.queue_url,
                MaxNumberOfMessages=wanted,
                VisibilityTimeout=SAMPLE_VISIBILITY_SECONDS,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            for message in messages:
                if message["MessageId"] in handles:
                    continue
                handles[message["MessageId"]] = message["ReceiptHandle"]
                summary.groups[_classify(message.get("MessageAttributes", {}))] += 1
    finally:
        _make_visible(sqs, summary.queue_url, list(handles.values()))
    summary.sampled = len(handles)


def _classify(attributes: dict[str, Any]) -> tuple[str, str]:
    def value(*names: str) -> str | None:
        for name in names:
            text = attributes.get(name, {}).get("StringValue")
            if text:
                return str(text)
        return None

    # Our function writes error_code/reason; EventBridge's target DLQ writes ERROR_CODE/ERROR_MESSAGE;
    # a message the queue redrove after maxReceiveCount carries neither.
    code = value("error_code", "ERROR_CODE") or NO_ATTRIBUTE
    reason = (
        value("reason", "ERROR_MESSAGE") or "(no reason: redriven after repeated failures, or sent by hand)"
    )
    return code, reason


def _make_visible(sqs: Any, queue_url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": f"h{i}", "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start : start + 10])
        ]
        # On failure they become visible by themselves after SAMPLE_VISIBILITY_SECONDS.
        with contextlib.suppress(ClientError):
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def _start_move_task(aws: Aws, source_arn: str, destination_arn: str, rate: int | None) -> str | None:
    """Start StartMessageMoveTask; None when an emulator (--endpoint-url) does not have it."""
    params: dict[str, Any] = {"SourceArn": source_arn, "DestinationArn": destination_arn}
    if rate:
        params["MaxNumberOfMessagesPerSecond"] = rate
    emulated = bool(aws.options.endpoint_url)
    # Against an emulator, one try: moto answers 500 and botocore would retry it for seconds.
    sqs = aws.client("sqs", max_attempts=1) if emulated else aws.client("sqs")
    try:
        return str(sqs.start_message_move_task(**params)["TaskHandle"])
    except ClientError as exc:
        if emulated and error_code(exc) in _UNSUPPORTED:
            return None
        raise


def move_messages(sqs: Any, source_url: str, destination_url: str, limit: int, rate: int | None) -> int:
    """Move at most ``limit`` messages, body and attributes, deleting each only once sent."""
    moved = 0
    started = time.monotonic()
    for _ in range(limit // 10 + 3):
        if moved >= limit:
            break
        answer = sqs.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=min(10, limit - moved),
            VisibilityTimeout=FALLBACK_VISIBILITY_SECONDS,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        entries = []
        for i, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": f"m{i}", "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = {
                    name: {k: v for k, v in attr.items() if k in ("DataType", "StringValue", "BinaryValue")}
                    for name, attr in message["MessageAttributes"].items()
                }
            entries.append(entry)
        sent = sqs.send_message_batch(QueueUrl=destination_url, Entries=entries)
        done = {e["Id"] for e in sent.get("Successful", [])}
        deletes = [
            {"Id": f"m{i}", "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if f"m{i}" in done
        ]
        if deletes:
            sqs.delete_message_batch(QueueUrl=source_url, Entries=deletes)
        moved += len(deletes)
        if rate:
            # Keep to the asked rate, as StartMessageMoveTask would.
            ahead = moved / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    return moved


def _print_summary(summary: Summary) -> None:
    print(f"dead-letter queue: {summary.queue_url}")
    print(f"messages: ~{summary.approximate_messages} waiting, ~{summary.in_flight} in flight")
    if not summary.sampled:
        return
    partial = " (a sample)" if summary.sampled < summary.approximate_messages else ""
    print(f"read {summary.sampled} message(s){partial}, by error code and reason:")
    rows = [(n, code, shorten(reason, 90)) for (code, reason), n in summary.groups.most_common()]
    print(render_table(["COUNT", "ERROR_CODE", "REASON"], rows, right=[0]))
    permanent = sum(n for code, n in summary.by_error_code().items() if code.startswith(PERMANENT_PREFIXES))
    if permanent:
        print(
            f"note: {permanent} message(s) are poison or a permanent VideoDB error; moved back, "
            "poison returns to the dead-letter queue at once, and each other one begins a new retry "
            "sequence: VideoDB is asked again and refuses it again unless its cause was fixed"
        )


def _done(args: Any, result: dict[str, Any], text: str) -> None:
    if args.json:
        print_json(result)
    else:
        print(text)
