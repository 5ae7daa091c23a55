"""One soak shard: feeds its cases into an emulated stack against a sandbox and runs the
queue's event source until every case has ended or the deadline passes."""

from __future__ import annotations

import heapq
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from videodb_retry.rules.messages import PoisonMessage, parse_body

from videodb_retry_local.load.soak_plan import Case
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

# moto's SQS scans every message of a queue on each receive and delete, so a queue holding all
# 10,000 bodies at once makes every call slow. Ids are sent in chunks whenever the visible
# backlog falls below the low-water mark: the queue stays short, the consumer never starves.
LOW_WATER = 40
CHUNK = 100
# A late duplicate (a new failure event for an id already delivered) is sent this many seconds
# after the id's first delivery: while its workflow runs or its next attempt waits.
LATE_DUPLICATE_AFTER = (0.3, 2.0)
PROGRESS_EVERY = 10.0
# After the deadline the parent waits this long for a shard to hand in what it saw.
SHARD_GRACE_SECONDS = 60.0
# A slow machine makes the run slower, not wrong: past --timeout a shard goes on while it
# still makes progress (an id ended, a record was delivered, a workflow runs) within the last
# STALL_SECONDS, up to OVERTIME_FACTOR x --timeout; only then does it stop and report.
STALL_SECONDS = 60.0
OVERTIME_FACTOR = 3.0


# -- one shard: a sandbox, an emulated stack, a consumer ------------------------------------


@dataclass
class Seen:
    """What happened to one case in the pipeline."""

    events: list[dict[str, Any]] = field(default_factory=list)  # outcome event details
    letters: list[dict[str, Any]] = field(default_factory=list)  # dead letters' attributes
    executions: list[str] = field(default_factory=list)  # statuses of its workflow executions
    posts: int = 0  # POST /download/{id} requests the sandbox received
    deliveries: int = 0
    redeliveries: int = 0
    # (seconds into the shard, what): deliveries, POSTs, events, letters, for the report of an
    # id that did not end as predicted.
    trail: list[tuple[float, str]] = field(default_factory=list)


class ShardRun:
    """Feeds one shard's cases into its stack and runs the queue's event source until every
    case has ended and nothing is left in flight, or the deadline passes."""

    def __init__(
        self,
        stack: EmulatedStack,
        sandbox: SandboxServer,
        cases: Sequence[Case],
        seed: int,
        log: Callable[[str], None],
    ) -> None:
        self.stack = stack
        self.sandbox = sandbox
        self.cases = list(cases)
        self.rng = random.Random(seed)  # noqa: S311 - when late duplicates go out, not a secret
        self.log = log
        self.consumer = QueueConsumer(stack, redelivery_seconds=None)
        self.seen = {case.key: Seen() for case in self.cases}
        self.by_key = {case.key: case for case in self.cases}
        self.raw_bodies = {case.body: case.key for case in self.cases if case.entry == "raw"}
        self.final: set[str] = set()
        self.next_case = 0
        self.late: list[tuple[float, int, str]] = []  # (due, tie-break, key), a heap
        self.late_scheduled: set[str] = set()
        self.reported_at: dict[str, float] = {}  # when each id's original went out
        self.sent = Counter[str]()  # originals, twin, late
        self.unattributed = Counter[str]()  # events, letters, deliveries matching no case
        self._deliveries_read = self._events_read = self._letters_read = 0
        self.timed_out = False
        self.leftover: dict[str, int] = {}
        self.started = time.monotonic()  # the sandbox's clock too: POST times line up

    # -- the loop ---------------------------------------------------------------------

    def run(self, deadline: float, ceiling: float | None = None) -> None:
        """Run until done; past ``deadline`` (time.time()) only while progress is made, and
        never past ``ceiling`` (default: the deadline)."""
        started = time.time()
        ceiling = max(deadline, ceiling or deadline)
        next_check = next_report = started
        progress, last_progress = (0, 0), started
        while True:
            now = time.time()
            current = (len(self.final), len(self.consumer.deliveries))
            if current != progress:
                progress, last_progress = current, now
            if now >= deadline and (now >= ceiling or self._stalled(now, last_progress)):
                self.timed_out = True
                break
            self._top_up()
            self._send_due_late(now)
            received = self.consumer.poll_once()
            self._note_deliveries()
            if now >= next_check:
                # Draining the observer and dead-letter queues keeps them short too.
                next_check = now + (1.0 if received else 0.3)
                self._drain()
                if self._finished():
                    break
            if now >= next_report:
                next_report = now + PROGRESS_EVERY
                self.log(self._progress(now - started))
            if not received:
                time.sleep(0.05)
        self._drain()
        self.leftover = self._queue_counts()
        self.leftover["running"] = self._running()

    def _stalled(self, now: float, last_progress: float) -> bool:
        """Nothing ended or was delivered for STALL_SECONDS and no workflow is running."""
        return now - last_progress >= STALL_SECONDS and self._running() == 0

    def _progress(self, elapsed: float) -> str:
        return (
            f"{elapsed:6.0f} s: sent {self.next_case}/{len(self.cases)}, ended {len(self.final)}, "
            f"deliveries {len(self.consumer.deliveries)}, workflows running {self._running()}"
        )

    # -- sending ----------------------------------------------------------------------

    def _top_up(self) -> None:
        if self.next_case >= len(self.cases):
            return
        if self._queue_counts()["visible"] >= LOW_WATER:
            return
        chunk = self.cases[self.next_case : self.next_case + CHUNK]
        self.next_case += len(chunk)
        bodies: list[str] = []
        events: list[str] = []
        for case in chunk:
            copies = 2 if case.duplicate == "twin" else 1
            # A twin is the same body twice, side by side: both usually land in one batch.
            for _ in range(copies):
                (events if case.entry == "event" else bodies).append(
                    case.key if case.entry == "event" else case.body
                )
            self.sent["original"] += 1
            self.sent["twin"] += copies - 1
            self.reported_at[case.key] = time.time()
        self._send_bodies(bodies)
        self._send_events(events)

    def _send_due_late(self, now: float) -> None:
        bodies, events = [], []
        while self.late and self.late[0][0] <= now:
            _, _, key = heapq.heappop(self.late)
            case = self.by_key[key]
            # The same "download failed" reported again, late (its `time` is the original's:
            # a duplicate, not a new failure, whether or not its retry sequence still runs);
            # bodies that are not a plain first attempt are sent again as they are.
            if case.kind in ("poison", "exhausted"):
                bodies.append(case.body)
            else:
                events.append(case.key)
            self.sent["late"] += 1
            self.sent["late_in_flight"] += key not in self.final
        self._send_bodies(bodies)
        self._send_events(events, reported_at=self.reported_at)

    def _send_bodies(self, bodies: list[str]) -> None:
        sqs = self.stack.client("sqs")
        for start in range(0, len(bodies), 10):
            batch = bodies[start : start + 10]
            answer = sqs.send_message_batch(
                QueueUrl=self.stack.retry_queue_url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)],
            )
            if answer.get("Failed"):
                raise RuntimeError(f"the retry queue refused messages: {answer['Failed']}")

    def _send_events(self, download_ids: list[str], reported_at: dict[str, float] | None = None) -> None:
        events = self.stack.client("events")
        parameters = self.stack.template.parameters
        for start in range(0, len(download_ids), 10):
            entries = [
                {
                    "Source": parameters["FailureEventSource"],
                    "DetailType": parameters["FailureEventDetailType"],
                    "Detail": json.dumps({"download_id": download_id, "error": "soak: download failed"}),
                    "EventBusName": self.stack.event_bus_name,
                    **(
                        {"Time": reported_at[download_id]}
                        if reported_at and download_id in reported_at
                        else {}
                    ),
                }
                for download_id in download_ids[start : start + 10]
            ]
            answer = events.put_events(Entries=entries)
            if answer.get("FailedEntryCount"):
                raise RuntimeError(f"the event bus refused events: {answer['Entries']}")

    # -- watching ---------------------------------------------------------------------

    def key_of(self, body: str, attributes: dict[str, Any] | None = None) -> str | None:
        """The case a queue body (or a dead letter) belongs to, if any."""
        if body in self.raw_bodies:
            return self.raw_bodies[body]
        if attributes and attributes.get("download_id") in self.seen:
            return attributes["download_id"]
        try:
            key = parse_body(body).download_id
        except PoisonMessage:
            return None
        return key if key in self.seen else None

    def _note_deliveries(self) -> None:
        deliveries = self.consumer.deliveries
        for delivery in deliveries[self._deliveries_read :]:
            key = self.key_of(delivery.body)
            if key is None:
                self.unattributed["deliveries"] += 1
                continue
            seen = self.seen[key]
            seen.deliveries += 1
            seen.redeliveries += delivery.receive_count > 1
            state = " failed" if delivery.failed else ""
            seen.trail.append((self._now(), f"delivered#{delivery.receive_count}{state}"))
            if self.by_key[key].duplicate == "late" and key not in self.late_scheduled:
                self.late_scheduled.add(key)
                due = time.time() + self.rng.uniform(*LATE_DUPLICATE_AFTER)
                heapq.heappush(self.late, (due, len(self.late_scheduled), key))
        self._deliveries_read = len(deliveries)

    def _drain(self) -> None:
        events = self.stack.outcome_events()
        for event in events[self._events_read :]:
            detail = event.get("detail", {})
            key = detail.get("download_id")
            if key not in self.seen:
                self.unattributed["events"] += 1
                continue
            self.seen[key].events.append({"detail_type": event.get("detail-type"), **detail})
            self.seen[key].trail.append(
                (self._now(), f"event {detail.get('status')}@{detail.get('attempt')}")
            )
            if detail.get("status") == "done" or detail.get("will_retry") is False:
                self.final.add(key)
        self._events_read = len(events)
        letters = self.stack.dead_letters()
        for letter in letters[self._letters_read :]:
            key = self.key_of(letter["body"], letter["attributes"])
            if key is None:
                self.unattributed["letters"] += 1
                continue
            self.seen[key].letters.append(dict(letter["attributes"]))
            self.seen[key].trail.append((self._now(), f"letter {letter['attributes'].get('error_code')}"))
            self.final.add(key)
        self._letters_read = len(letters)

    def _now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def _queue_counts(self) -> dict[str, int]:
        names = {
            "ApproximateNumberOfMessages": "visible",
            "ApproximateNumberOfMessagesNotVisible": "in_flight",
            "ApproximateNumberOfMessagesDelayed": "delayed",
        }
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.retry_queue_url, AttributeNames=list(names)
        )["Attributes"]
        return {short: int(attributes.get(name, 0)) for name, short in names.items()}

    def _running(self) -> int:
        answer = self.stack.client("stepfunctions").list_executions(
            stateMachineArn=self.stack.state_machine_arn, statusFilter="RUNNING", maxResults=1000
        )
        return len(answer["executions"])

    def _finished(self) -> bool:
        """Every case ended, every duplicate sent, and nothing left that could still act."""
        if self.next_case < len(self.cases) or self.late or len(self.final) < len(self.cases):
            return False
        if any(self._queue_counts().values()):
            return False
        return self._running() == 0

    # -- what the shard hands back ------------------------------------------------------

    def collect(self) -> dict[str, Any]:
        """Per-case observations and shard totals (plain data: it crosses processes)."""
        posts = Counter[str]()
        polls = 0
        for request in self.sandbox.requests:
            if request.method == "POST" and request.path.startswith("/download/"):
                key = unquote(request.path.removeprefix("/download/"))
                posts[key] += 1
                if key in self.seen:
                    self.seen[key].trail.append((round(request.time - self.started, 2), "POST"))
            elif request.method == "GET" and request.path.startswith("/async-response/"):
                polls += 1
        for key, count in posts.items():
            if key in self.seen:
                self.seen[key].posts = count
            else:
                self.unattributed["posts"] += count
        sfn = self.stack.client("stepfunctions")
        executions = Counter[str]()
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.stack.state_machine_arn
        ):
            for execution in page["executions"]:
                executions[execution["status"]] += 1
                key = execution["name"].split("--", 1)[0]
                if key in self.seen:
                    self.seen[key].executions.append(execution["status"])
                else:
                    self.unattributed["executions"] += 1
        deliveries = self.consumer.deliveries
        for seen in self.seen.values():
            seen.trail.sort()
        return {
            "seen": {key: vars(seen) for key, seen in self.seen.items()},
            "totals": {
                "sent": dict(self.sent),
                "deliveries": len(deliveries),
                "redeliveries": sum(d.receive_count > 1 for d in deliveries),
                "failed_deliveries": sum(d.failed for d in deliveries),
                "executions": dict(executions),
                "outcome_events": self._events_read,
                "dead_letters": self._letters_read,
                "polls": polls,
                "unattributed": dict(self.unattributed),
                "leftover": self.leftover,
                "timed_out": self.timed_out,
            },
        }


# moto's DynamoDB reads an item, evaluates the condition and then writes, with no lock: two
# threads can both pass `attribute_not_exists(id)`. DynamoDB's conditional writes are atomic,
# and the retry function's ledger (Powertools Idempotency) relies on that when a batch's records
# run concurrently; without this, twins in one batch are now and then both sent to VideoDB.
