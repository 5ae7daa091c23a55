"""The demo's scripted mix: each download's scenario, expected ending and check, how it is sent
into the pipeline, and what happened to it (:class:`Ending`, gathered by :func:`collect`).

The IAM pass (:mod:`videodb_retry_local.commands.iam_pass`) runs the same mix, so it lives apart from
the demo's command line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from videodb_retry.rules.messages import PoisonMessage, parse_body

from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.sqs_event_source import Delivery, QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer


@dataclass
class Ending:
    """What happened to one download: its outcome events, dead letter and deliveries."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)
    dead_letter: dict[str, Any] | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    retry_calls: int = 0

    @property
    def final(self) -> bool:
        """True once no further attempt will follow."""
        return self.dead_letter is not None or any(not e["detail"]["will_retry"] for e in self.outcomes)

    @property
    def statuses(self) -> list[str]:
        """The status of each attempt's outcome, in order."""
        return [e["detail"]["status"] for e in self.outcomes]

    @property
    def last(self) -> dict[str, Any]:
        """The detail of the latest outcome event (empty if none)."""
        return self.outcomes[-1]["detail"] if self.outcomes else {}

    @property
    def redelivered(self) -> bool:
        """True when a record of this download failed and came back from the queue."""
        return any(d.failed for d in self.deliveries) and any(d.receive_count > 1 for d in self.deliveries)

    def outcome(self) -> str:
        """One word or two for the table."""
        if self.dead_letter is not None:
            return "dead-lettered"
        if not self.outcomes:
            return "no outcome yet"
        return {"done": "succeeded", "failed": "failed", "timed_out": "timed out"}[self.last["status"]]

    def where(self) -> str:
        """Where the download's journey ended."""
        if self.dead_letter is not None:
            return f"DLQ ({self.dead_letter['attributes'].get('error_code', 'redrive')})"
        if self.final:
            return self.outcomes[-1]["detail-type"].removeprefix("Download Retry ") + " event"
        return "still running"

    def reason(self) -> str:
        """Why it ended so (the DLQ reason or the last error), or what was noteworthy."""
        if self.dead_letter is not None:
            return self.dead_letter["attributes"].get("reason", "maxReceiveCount exceeded")
        notes = []
        if self.redelivered:
            notes.append("transient error; record redelivered")
        if len(self.outcomes) > 1 and self.last.get("status") == "done":
            first = self.outcomes[0]["detail"]
            notes.append(f"attempt {first['attempt']} {first['status']}: {first.get('error', '-')}")
        if self.last.get("error"):
            notes.append(self.last["error"])
        if self.last.get("will_retry") is False and self.last.get("status") != "done":
            notes.append("attempts exhausted")
        return "; ".join(notes) or "-"


@dataclass(frozen=True)
class Case:
    """One scripted download of the demo mix."""

    download_id: str
    scenario: str
    expected: str
    send: str  # "event" (EventBridge rule), "queue" (bare id), "json" (queue, JSON), "raw"
    script: dict[str, Any] | None  # sandbox behaviour; None: the sandbox does not know the id
    check: Callable[[Ending, int], bool]
    body: str | None = None  # the raw body of a "raw" case


CASES = [
    Case(
        "dl-demo-quick",
        "processing ~2 s, then done",
        "succeeded, attempt 1",
        "event",
        {"processing_seconds": 2.0},
        lambda e, _: e.statuses == ["done"] and e.last["polls"] >= 2,
    ),
    Case(
        "dl-demo-second-try",
        "first retry job fails",
        "failed, then succeeded (attempt 2)",
        "queue",
        {"fail_times": 1},
        lambda e, _: e.statuses == ["failed", "done"] and e.last["attempt"] == 2,
    ),
    Case(
        "dl-demo-stuck",
        "never finishes",
        "timed out on every attempt",
        "json",
        # VideoDB documents retry for downloads in `error` only; this case assumes it accepts
        # a retry of a still-processing one (the sandbox refuses it by default: docs/contract.md,
        # "VideoDB answers").
        {"never_finishes": True, "not_failed_retry_status": None},
        lambda e, attempts: e.statuses == ["timed_out"] * attempts and e.last["will_retry"] is False,
    ),
    Case(
        "dl-demo-missing",
        "unknown to VideoDB (404)",
        "DLQ (http_404)",
        "event",
        None,
        lambda e, _: (
            e.dead_letter is not None
            and e.dead_letter["attributes"].get("error_code") == "http_404"
            and not e.outcomes
        ),
    ),
    Case(
        "(poison)",
        "body is a path, not an id",
        "DLQ (poison), no API call",
        "raw",
        None,
        lambda e, _: (
            e.dead_letter is not None
            and e.dead_letter["attributes"].get("error_code") == "poison"
            and e.retry_calls == 0
        ),
        body="../../etc/passwd",
    ),
    Case(
        "dl-demo-blip",
        "one 503, then fine",
        "redelivered once, then succeeded",
        "event",
        {"retry_status": 503, "retry_status_times": 1},
        lambda e, _: e.statuses == ["done"] and e.redelivered and e.retry_calls == 2,
    ),
]


def download_id_of(body: str) -> str | None:
    """The download id a queue body names (the layer's own parser), None for poison."""
    try:
        return parse_body(body).download_id
    except PoisonMessage:
        return None


def collect(
    stack: EmulatedStack, consumer: QueueConsumer, sandbox: SandboxServer | None, cases: Sequence[Case]
) -> dict[str, Ending]:
    """Gather each case's outcome events, dead letter and deliveries seen so far."""
    endings = {case.download_id: Ending() for case in cases}
    raw_bodies = {case.body: case.download_id for case in cases if case.body is not None}
    for event in stack.outcome_events():
        ending = endings.get(event["detail"].get("download_id"))
        if ending is not None:
            ending.outcomes.append(event)
    for letter in stack.dead_letters():
        key = (
            letter["attributes"].get("download_id")
            or raw_bodies.get(letter["body"])
            or download_id_of(letter["body"])
        )
        if key in endings:
            endings[key].dead_letter = letter
    for delivery in consumer.deliveries:
        key = raw_bodies.get(delivery.body) or download_id_of(delivery.body)
        if key in endings:
            endings[key].deliveries.append(delivery)
    for ending in endings.values():
        ending.outcomes.sort(key=lambda e: e["detail"]["attempt"])
    if sandbox is not None:
        known = {f"/download/{c.download_id}" for c in cases if c.body is None}
        for case in cases:
            # A raw (poison) case is charged with every call for an id that no case names.
            mine = {f"/download/{case.download_id}"} if case.body is None else None
            calls = [r for r in sandbox.retry_calls() if (r.path in mine if mine else r.path not in known)]
            endings[case.download_id].retry_calls = len(calls)
    return endings


def send(stack: EmulatedStack, case: Case) -> None:
    """Put one case into the pipeline through its entry point."""
    if case.send == "event":
        stack.send_failure_event(case.download_id, error="demo: the original download failed")
    elif case.send == "queue":
        stack.send_to_queue(case.download_id)
    elif case.send == "json":
        stack.send_to_queue(f'{{"download_id": "{case.download_id}", "reason": "demo"}}')
    else:
        stack.send_to_queue(case.body or "")
