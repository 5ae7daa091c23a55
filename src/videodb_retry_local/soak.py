"""`make soak`: a bounded soak run of the whole retry pipeline, with exact accounting at the end.

Thousands of failed-download messages go through the real retry handler (the emulated stack's
:class:`~videodb_retry_local.sqs_event_source.QueueConsumer` invoking ``functions/retry/app.py``), a
thousand or more of them through the Step Functions workflow executing in moto and its poll
function, against the sandbox VideoDB API on 127.0.0.1. On top of a scripted mix of downloads
(done or failed at once, processing then done, failing every attempt, never finishing, unknown
to VideoDB, refused, VideoDB down for good, poison bodies, attempts beyond the limit) it injects

- transient API faults at random: one 500/503/429 on the retry POST, one 5xx on a poll, slow
  answers;
- duplicate deliveries at the queue: the same body sent twice side by side, and a new
  "download failed" event for an id whose retry is already in flight.

At the end every id sent is accounted for: done (a Succeeded event), failed with a reason (a
final Failed / Timed Out event with ``will_retry`` false and an error) or in the DLQ with a
reason attribute. An id with none of these is *lost*. A retry POST that VideoDB carried out
more often than the download had attempts is a *duplicate retry*. The exit status is 0 only
when nothing is lost, nothing is retried twice and every id ended exactly as its script
predicts (its outcome events, workflows, retry POSTs and dead letters).

moto's in-process SQS and Step Functions are the bottleneck, and one Python process uses one
core, so the ids are split across ``--shards`` processes (by default one per core, at most two),
each with its own sandbox and emulated stack. Every loop is bounded by ``--timeout``.

    python -m videodb_retry_local.soak [--messages N] [--workflows M] [--fault-rate 0.05]
        [--duplicate-rate R] [--seed S] [--timeout SECONDS] [--shards K]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import random
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote

from videodb_retry.messages import PoisonMessage, parse_body

from videodb_retry_local.emulated_stack import EmulatedStack
from videodb_retry_local.moto_env import local_aws
from videodb_retry_local.sandbox import SandboxServer
from videodb_retry_local.sqs_event_source import QueueConsumer
from videodb_retry_local.template import Template, TemplateError

API_KEY = "sk-soak-sandbox"
DEFAULT_MESSAGES = 10_000
DEFAULT_WORKFLOWS = 1_000
DEFAULT_FAULT_RATE = 0.05
DEFAULT_DUPLICATE_RATE = 0.05
DEFAULT_SEED = 20_240_601
DEFAULT_TIMEOUT = 900.0
MAX_TIMEOUT = 3600.0
# Every wait is a template parameter, shrunk so that a workflow lasts seconds, not hours. Two
# attempts per download keep the "fails every time" and "never finishes" paths short while
# still re-queueing once; five receives (the template's minimum) bound a download whose API
# stays down.
SOAK_PARAMETERS: dict[str, str] = {
    "PollFirstWaitSeconds": "1",
    "PollBackoffFactor": "1",
    "PollMaxWaitSeconds": "1",
    "PollDeadlineSeconds": "3",
    "MaxRetryAttempts": "2",
    "RequeueDelaySeconds": "1",
    "MaxReceiveCount": "5",
    "RedeliveryFirstDelaySeconds": "1",
    "RedeliveryBackoffFactor": "2",
    "RedeliveryMaxDelaySeconds": "2",
    "LogLevel": "ERROR",
}
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

# -- the scripted mix -----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One scripted behaviour of a download and where it must end."""

    name: str
    what: str
    workflow: bool  # its retries are followed by the workflow (the POST answers processing)
    failures: int  # attempts that fail before one succeeds (a large number: never succeeds)
    failed_as: str = "failed"  # how a failing attempt ends: failed | timed_out
    dead_letter: str | None = None  # error_code of its dead letter, if it ends in the DLQ
    fault_types: tuple[str, ...] = ("retry", "delay")  # transient faults it can take


NEVER = 1_000
KINDS = {
    kind.name: kind
    for kind in (
        Kind("wf_done", "processing up to 1 s, then done", True, 0, fault_types=("retry", "poll", "delay")),
        Kind("wf_retry", "first job fails, second done", True, 1, fault_types=("retry", "poll", "delay")),
        Kind("wf_fail", "every job fails", True, NEVER, fault_types=("retry", "poll", "delay")),
        Kind(
            "wf_timeout", "never finishes", True, NEVER, "timed_out", fault_types=("retry", "poll", "delay")
        ),
        Kind("now_done", "POST answers done", False, 0),
        Kind("now_retry", "POST answers failed, then done", False, 1),
        Kind("now_fail", "POST answers failed every time", False, NEVER),
        Kind("missing", "unknown to VideoDB (404)", False, 0, dead_letter="http_404", fault_types=()),
        Kind(
            "refused",
            "POST refused (400/403/409/422)",
            False,
            0,
            dead_letter="http_4xx",
            fault_types=("delay",),
        ),
        Kind(
            "down",
            "POST answers 503 for good",
            False,
            0,
            dead_letter="transient_exhausted",
            fault_types=("delay",),
        ),
        Kind("poison", "body is not a valid message", False, 0, dead_letter="poison", fault_types=()),
        Kind(
            "exhausted",
            "attempt beyond MaxRetryAttempts",
            False,
            0,
            dead_letter="attempts_exhausted",
            fault_types=(),
        ),
    )
}
# Shares of each kind among the workflow ids and among the others.
WORKFLOW_MIX = {"wf_done": 0.6, "wf_retry": 0.2, "wf_fail": 0.1, "wf_timeout": 0.1}
OTHER_MIX = {
    "now_done": 0.55,
    "now_retry": 0.12,
    "now_fail": 0.08,
    "missing": 0.08,
    "refused": 0.03,
    "down": 0.02,
    "poison": 0.07,
    "exhausted": 0.05,
}
# How valid ids enter: a bare id, a JSON body, or an EventBridge "download failed" event
# through the template's rule.
ENTRIES = (("id", 0.4), ("json", 0.3), ("event", 0.3))
# Kinds whose ids stay in flight for seconds after their first delivery.
LASTING = frozenset({"wf_done", "wf_retry", "wf_fail", "wf_timeout", "now_retry", "now_fail", "down"})
REFUSED_STATUSES = (400, 403, 409, 422)
RETRY_FAULT_STATUSES = (500, 503, 429)
POLL_FAULT_STATUSES = (500, 502, 503, 504)


@dataclass(frozen=True)
class Case:
    """One id of the soak: how it is sent, how the sandbox treats it, what is injected."""

    key: str  # the download id (poison: a label, the body holds no valid id)
    kind: str
    entry: str  # id | json | event | raw
    body: str  # what goes on the queue (for "event": the download id)
    script: dict[str, Any] | None  # sandbox Script fields; None: VideoDB does not know the id
    fault: str | None = None  # e.g. "retry_503", "poll_502", "delay"
    duplicate: str | None = None  # "twin" (sent twice at once) or "late" (again while in flight)

    @property
    def refused_code(self) -> str | None:
        """``http_<status>`` of a refused id's dead letter."""
        if self.kind != "refused" or not self.script:
            return None
        return f"http_{self.script['retry_status']}"


@dataclass(frozen=True)
class Expected:
    """What a case's script predicts."""

    final: str  # done | failed | timed_out | dlq:<error_code>
    events: tuple[tuple[str, int, bool], ...]  # (status, attempt, will_retry) per attempt
    workflows: int
    posts: tuple[int, int]  # every POST /download/{id} the sandbox should see (least, most)
    issued: int  # of those, the ones VideoDB carried out (no injected or scripted error)
    letters: tuple[int, int]  # dead letters of this id (least, most)


def expect(case: Case, attempts: int, receives: int) -> Expected:
    """The end ``case`` must reach with ``attempts`` (MaxRetryAttempts) and ``receives``."""
    kind = KINDS[case.kind]
    copies = 2 if case.duplicate else 1
    if kind.dead_letter is not None:
        code = case.refused_code or kind.dead_letter
        if case.kind in ("poison", "exhausted"):
            # Refused before the ledger: every copy is dead-lettered, none reaches the API.
            return Expected(f"dlq:{code}", (), 0, (0, 0), 0, (copies, copies))
        if case.kind == "down":
            # Each copy fails on its own until its receives run out, except that a copy
            # delivered while the other one's POST is in progress is dropped as a duplicate
            # (the ledger's in-progress record), and the other copy goes on alone.
            return Expected(f"dlq:{code}", (), 0, (receives, receives * copies), 0, (1, copies))
        # A 404/4xx is kept by the ledger: a duplicate is not sent to VideoDB again.
        return Expected(f"dlq:{code}", (), 0, (1, 1), 0, (1, 1))
    events = []
    for attempt in range(1, attempts + 1):
        failed = attempt <= kind.failures
        status = kind.failed_as if failed else "done"
        events.append((status, attempt, failed and attempt < attempts))
        if not failed:
            break
    retry_fault = 1 if case.fault and case.fault.startswith("retry_") else 0
    workflows = len(events) if kind.workflow else 0
    posts = len(events) + retry_fault
    return Expected(events[-1][0], tuple(events), workflows, (posts, posts), len(events), (0, 0))


def _counts(total: int, mix: dict[str, float]) -> dict[str, int]:
    """Split ``total`` by ``mix`` exactly (largest remainder)."""
    raw = {name: total * share / sum(mix.values()) for name, share in mix.items()}
    counts = {name: int(value) for name, value in raw.items()}
    left = total - sum(counts.values())
    for name in sorted(raw, key=lambda n: raw[n] - counts[n], reverse=True)[:left]:
        counts[name] += 1
    return counts


def _poison_body(rng: random.Random, index: int) -> str:
    # Each body is unique, so its dead letter can be traced back to it.
    shapes = [
        f"../../etc/passwd-{index}",
        f"soak poison {index}",
        json.dumps({"download_id": f"dl/soak/{index}"}),
        json.dumps({"download_id": f"dl-soak-p{index}", "attempt": True}),
        json.dumps({"download_id": f"dl-soak-p{index}", "attempt": "2"}),
        json.dumps({"detail-type": "Download Failed", "detail": {"note": index}}),
        json.dumps({"download_id": index}),
        "x" * 129 + f"-{index}",
    ]
    return rng.choice(shapes)


def make_plan(
    messages: int,
    workflows: int,
    fault_rate: float,
    duplicate_rate: float,
    seed: int,
    attempts: int,
) -> list[Case]:
    """The soak's cases: ``messages`` ids, ``workflows`` of them followed by the workflow.

    Deterministic for a seed. Faults go to ``fault_rate * messages`` ids that call the API
    and can be scripted; duplicates to ``duplicate_rate * messages`` ids of any kind.
    """
    if not 0 <= workflows <= messages:
        raise ValueError("--workflows must be between 0 and --messages")
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    kinds: list[str] = []
    for name, count in _counts(workflows, WORKFLOW_MIX).items():
        kinds += [name] * count
    for name, count in _counts(messages - workflows, OTHER_MIX).items():
        kinds += [name] * count
    rng.shuffle(kinds)
    entry_names = [name for name, _ in ENTRIES]
    entry_weights = [share for _, share in ENTRIES]
    cases: list[Case] = []
    for index, kind in enumerate(kinds):
        key = f"dl-soak-{index:05d}"
        entry = rng.choices(entry_names, entry_weights)[0]
        body = key
        script: dict[str, Any] | None = None
        if kind == "wf_done":
            script = {"processing_seconds": rng.choice([0.0, 0.5, 1.0])}
        elif kind in ("wf_retry", "wf_fail"):
            script = {"fail_times": KINDS[kind].failures}
        elif kind == "wf_timeout":
            # Every attempt times out only if VideoDB accepts a retry of a still-processing
            # download; the sandbox refuses it by default (README, "VideoDB answers").
            script = {"never_finishes": True, "not_failed_retry_status": None}
        elif kind == "now_done":
            script = {"answer_done_at_once": True}
        elif kind == "now_retry":
            script = {"answer_done_at_once": True, "fail_times": 1}
        elif kind == "now_fail":
            script = {"answer_failed_at_once": True}
        elif kind == "refused":
            script = {"retry_status": rng.choice(REFUSED_STATUSES)}
        elif kind == "down":
            script = {"retry_status": 503}
        elif kind == "poison":
            key, entry, body = f"poison-{index:05d}", "raw", _poison_body(rng, index)
        elif kind == "exhausted":
            entry = "json"
            body = json.dumps({"download_id": key, "attempt": attempts + 1, "reason": "soak"})
        if entry == "json" and kind != "exhausted":
            body = json.dumps({"download_id": key, "reason": "soak: download failed"})
        cases.append(Case(key, kind, entry, body, script))

    faultable = [i for i, c in enumerate(cases) if KINDS[c.kind].fault_types]
    for i in rng.sample(faultable, min(len(faultable), round(fault_rate * messages))):
        case = cases[i]
        behaviour = KINDS[case.kind]
        # Poll faults only mean something where a workflow polls: those ids get them often.
        weights = (
            {"retry": 0.4, "poll": 0.4, "delay": 0.2}
            if behaviour.workflow
            else {"retry": 0.75, "delay": 0.25}
        )
        allowed = [name for name in weights if name in behaviour.fault_types]
        choice = rng.choices(allowed, [weights[name] for name in allowed])[0]
        script = dict(case.script or {})
        if choice == "retry":
            status = rng.choice(RETRY_FAULT_STATUSES)
            script.update(retry_status=status, retry_status_times=1, retry_after=1 if status == 429 else None)
            fault = f"retry_{status}"
        elif choice == "poll":
            status = rng.choice(POLL_FAULT_STATUSES)
            script.update(poll_status=status, poll_status_times=1)
            fault = f"poll_{status}"
        else:
            script.update(delay_seconds=round(rng.uniform(0.05, 0.25), 2))
            fault = "delay"
        cases[i] = Case(case.key, case.kind, case.entry, case.body, script, fault=fault)

    # Half the duplicates are late: a new failure event for an id whose retry is still in
    # flight, so they go to ids that stay in flight (a workflow, a re-queued attempt, an API
    # that stays down); the other half are twins, of any id.
    duplicates = min(len(cases), round(duplicate_rate * messages))
    lasting = [i for i, c in enumerate(cases) if c.kind in LASTING]
    late = set(rng.sample(lasting, min(len(lasting), duplicates // 2)))
    others = [i for i in range(len(cases)) if i not in late]
    twins = set(rng.sample(others, duplicates - len(late)))
    for i in late | twins:
        case = cases[i]
        how = "late" if i in late else "twin"
        cases[i] = Case(case.key, case.kind, case.entry, case.body, case.script, case.fault, how)
    return cases


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
        self._send_bodies(bodies)
        self._send_events(events)

    def _send_due_late(self, now: float) -> None:
        bodies, events = [], []
        while self.late and self.late[0][0] <= now:
            _, _, key = heapq.heappop(self.late)
            case = self.by_key[key]
            # A new "download failed" event for an id already in flight (attempt 1 again);
            # bodies that are not a plain first attempt are sent again as they are.
            if case.kind in ("poison", "exhausted"):
                bodies.append(case.body)
            else:
                events.append(case.key)
            self.sent["late"] += 1
            self.sent["late_in_flight"] += key not in self.final
        self._send_bodies(bodies)
        self._send_events(events)

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

    def _send_events(self, download_ids: list[str]) -> None:
        events = self.stack.client("events")
        parameters = self.stack.template.parameters
        for start in range(0, len(download_ids), 10):
            entries = [
                {
                    "Source": parameters["FailureEventSource"],
                    "DetailType": parameters["FailureEventDetailType"],
                    "Detail": json.dumps({"download_id": download_id, "error": "soak: download failed"}),
                    "EventBusName": self.stack.event_bus_name,
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
@contextlib.contextmanager
def quick_thread_switches(seconds: float = 0.001) -> Iterator[None]:
    """A shorter GIL switch interval for the run.

    Every loopback HTTP call hands the GIL between the retry function's record threads, the
    sandbox's handler threads and moto's execution threads; at the default 5 ms interval each
    hand-over waits and the shard idles (measured: 1,000 ids in 63 s, 54 s with 1 ms).
    """
    saved = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(saved)


class _Discard(io.TextIOBase):
    """A text stream that keeps nothing."""

    def write(self, text: str) -> int:
        """Drop ``text``."""
        return len(text)


@contextlib.contextmanager
def quiet(verbose: bool = False) -> Iterator[None]:
    """Keep the run's output to its progress lines and table.

    With metrics disabled Powertools still prints its buffer every 100 values, and thousands
    of invocations would print hundreds of EMF lines: stdout is swallowed while the functions
    run (progress is written to the stdout saved before).
    """
    if verbose:
        yield
        return
    saved = os.environ.get("POWERTOOLS_METRICS_DISABLED")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    levels = {name: logging.getLogger(name).level for name in ("moto", "botocore", "urllib3")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    parser_logger = logging.getLogger("moto.stepfunctions.parser")
    parser_level = parser_logger.level
    # moto logs every Fail state at ERROR; here a Fail is a designed ending.
    parser_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(_Discard()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        parser_logger.setLevel(parser_level)
        if saved is None:
            os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
        else:
            os.environ["POWERTOOLS_METRICS_DISABLED"] = saved


def run_shard(
    cases: Sequence[Case],
    parameters: dict[str, str],
    shard: int,
    seed: int,
    deadline: float,
    verbose: bool = False,
    out: Any = None,
) -> dict[str, Any]:
    """Run one shard in this process: its own sandbox and emulated stack."""
    stream = out or sys.stdout

    def log(line: str) -> None:
        print(f"[shard {shard}] {line}", file=stream, flush=True)

    started = time.time()
    with (
        quick_thread_switches(),
        quiet(verbose),
        SandboxServer(api_key=API_KEY, host="127.0.0.1") as sandbox,
        local_aws(),
    ):
        for case in cases:
            if case.script is not None:
                sandbox.script(case.key, **case.script)
        stack = EmulatedStack(API_KEY, {**parameters, "VideoDBApiBaseUrl": sandbox.base_url}).create()
        try:
            from videodb_retry.observability import logger

            level = logger.log_level
            if not verbose:
                # The functions log failures at ERROR; thousands are designed here.
                logger.setLevel(logging.CRITICAL)
            try:
                log(f"{len(cases)} ids, sandbox on {sandbox.base_url}, stack created")
                run = ShardRun(stack, sandbox, cases, seed + shard, log)
                run.run(deadline, overtime_ceiling(started, deadline))
                result = run.collect()
            finally:
                logger.setLevel(level)
        finally:
            stack.close()
    result["totals"]["seconds"] = time.time() - started
    log(
        f"finished in {result['totals']['seconds']:.0f} s"
        + (" (TIMED OUT)" if result["totals"]["timed_out"] else "")
    )
    return result


def overtime_ceiling(started: float, deadline: float) -> float:
    """The latest a shard may run while it still makes progress (see STALL_SECONDS)."""
    return started + OVERTIME_FACTOR * max(0.0, deadline - started)


def _shard_main(
    conn: Any,
    cases: list[Case],
    parameters: dict[str, str],
    shard: int,
    seed: int,
    deadline: float,
    verbose: bool,
) -> None:
    """Entry point of a shard process: run, hand the result back through ``conn``."""
    try:
        conn.send(run_shard(cases, parameters, shard, seed, deadline, verbose))
    except BaseException:
        conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()


def run_shards(
    shards: list[list[Case]],
    parameters: dict[str, str],
    seed: int,
    deadline: float,
    verbose: bool = False,
) -> list[dict[str, Any] | None]:
    """Run every shard (one in this process, several in spawned processes); a shard that
    crashed or did not answer by the deadline plus a grace period gives None."""
    if len(shards) == 1:
        return [run_shard(shards[0], parameters, 0, seed, deadline, verbose)]
    # spawn, not fork: each shard starts without this process's threads or moto state.
    context = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    waiting: dict[Any, int] = {}
    for index, cases in enumerate(shards):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_shard_main,
            args=(sender, cases, parameters, index, seed, deadline, verbose),
            name=f"soak-shard-{index}",
            daemon=True,
        )
        process.start()
        sender.close()
        processes.append(process)
        waiting[receiver] = index
    results: list[dict[str, Any] | None] = [None] * len(shards)
    give_up = overtime_ceiling(time.time(), deadline) + SHARD_GRACE_SECONDS
    while waiting and time.time() < give_up:
        ready = multiprocessing.connection.wait(list(waiting), timeout=max(0.1, give_up - time.time()))
        for end in ready:
            index = waiting.pop(end)
            try:
                # Only the Pipe ends made above are waited on.
                answer: dict[str, Any] = cast(multiprocessing.connection.Connection, end).recv()
            except EOFError:
                answer = {"error": "the shard process ended without an answer"}
            if "error" in answer:
                print(f"[shard {index}] FAILED:\n{answer['error']}", file=sys.stderr, flush=True)
            else:
                results[index] = answer
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():  # only the processes started here, each by its handle
            process.terminate()
            process.join(timeout=5)
    return results


# -- accounting -----------------------------------------------------------------------------


@dataclass
class Report:
    """The soak's accounting; ``ok`` decides the exit status."""

    ids: int
    lost: int
    duplicate_retries: int
    not_as_predicted: list[str]
    rows: list[tuple[str, int, int, int]]  # final state, predicted ids, ids, as predicted
    totals: dict[str, Any]
    text: str

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing retried twice, everything as its script predicts."""
        return (
            self.lost == 0
            and self.duplicate_retries == 0
            and not self.not_as_predicted
            and not self.totals.get("crashed_shards")
        )


def observed_final(seen: dict[str, Any]) -> str:
    """Where a case ended: done, failed, timed_out, dlq:<code>, running (a workflow still
    ran when the shard had to stop: unfinished, not lost) or lost."""
    letters = [letter for letter in seen["letters"] if letter.get("reason")]
    if letters:
        return f"dlq:{letters[0].get('error_code')}"
    finals = [
        e
        for e in seen["events"]
        if e.get("status") == "done" or (e.get("will_retry") is False and e.get("error"))
    ]
    if finals:
        return str(finals[-1]["status"])
    if "RUNNING" in seen["executions"]:
        return "running"
    return "lost"


def _problems(case: Case, expected: Expected, seen: dict[str, Any], final: str) -> list[str]:
    """How one case differs from its prediction (empty: as predicted)."""
    problems = []
    if final != expected.final:
        problems.append(f"ended {final}, predicted {expected.final}")
    events = tuple(
        (e.get("status"), e.get("attempt"), e.get("will_retry"))
        for e in sorted(seen["events"], key=lambda e: (e.get("attempt", 0), e.get("status", "")))
    )
    if events != expected.events:
        problems.append(f"outcome events {list(events)}, predicted {list(expected.events)}")
    for event in seen["events"]:
        if event.get("status") != "done" and not event.get("error"):
            problems.append(f"{event.get('status')} event of attempt {event.get('attempt')} has no error")
    # One execution per attempt: it succeeds when the job was done, fails (a Fail state) when
    # the attempt failed or timed out.
    statuses = sorted("SUCCEEDED" if status == "done" else "FAILED" for status, _, _ in expected.events)
    predicted_statuses = statuses if expected.workflows else []
    if sorted(seen["executions"]) != predicted_statuses:
        problems.append(f"workflows {sorted(seen['executions'])}, predicted {predicted_statuses}")
    if not expected.posts[0] <= seen["posts"] <= expected.posts[1]:
        problems.append(f"{seen['posts']} retry POSTs, predicted {_range(expected.posts)}")
    if not expected.letters[0] <= len(seen["letters"]) <= expected.letters[1]:
        problems.append(f"{len(seen['letters'])} dead letters, predicted {_range(expected.letters)}")
    for letter in seen["letters"]:
        if not letter.get("reason"):
            problems.append(f"dead letter without a reason: {letter}")
    return problems


def _range(bounds: tuple[int, int]) -> str:
    return str(bounds[0]) if bounds[0] == bounds[1] else f"{bounds[0]}-{bounds[1]}"


def issued_posts(case: Case, seen: dict[str, Any]) -> int:
    """POSTs VideoDB carried out: those not answered with an injected or scripted error."""
    if case.script is None or case.kind in ("refused", "down"):
        return 0  # 404 for an unknown id; every POST of these answered 4xx/503
    injected = 1 if case.fault and case.fault.startswith("retry_") else 0
    return max(0, seen["posts"] - injected)


def account(
    cases: Sequence[Case],
    results: Sequence[dict[str, Any] | None],
    shards: list[list[Case]],
    attempts: int,
    receives: int,
    seconds: float,
    header: str,
) -> Report:
    """Merge the shards' observations and account for every id."""
    seen_all: dict[str, dict[str, Any]] = {}
    totals: Counter[str] = Counter()
    executions: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    unattributed: Counter[str] = Counter()
    leftover: Counter[str] = Counter()
    shard_seconds, timed_out, crashed = [], 0, 0
    empty = {
        "events": [],
        "letters": [],
        "executions": [],
        "posts": 0,
        "deliveries": 0,
        "redeliveries": 0,
        "trail": [],
    }
    for result, shard in zip(results, shards, strict=True):
        if result is None:
            crashed += 1
            for case in shard:
                seen_all[case.key] = dict(empty)
            continue
        seen_all.update(result["seen"])
        t = result["totals"]
        for name in (
            "deliveries",
            "redeliveries",
            "failed_deliveries",
            "outcome_events",
            "dead_letters",
            "polls",
        ):
            totals[name] += t[name]
        executions.update(t["executions"])
        sent.update(t["sent"])
        unattributed.update(t["unattributed"])
        leftover.update(t["leftover"])
        shard_seconds.append(t["seconds"])
        timed_out += bool(t["timed_out"])

    finals: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    matching: Counter[str] = Counter()
    not_as_predicted: list[str] = []
    duplicate_retries = issued = 0
    for case in cases:
        expected = expect(case, attempts, receives)
        seen = seen_all[case.key]
        final = observed_final(seen)
        finals[final] += 1
        predicted[expected.final] += 1
        case_issued = issued_posts(case, seen)
        issued += case_issued
        # Attempts of one download follow each other, so more issued POSTs than attempts the
        # download went through means one attempt was sent to VideoDB twice.
        attempts_seen = max([e.get("attempt", 0) for e in seen["events"]] + [len(expected.events)])
        duplicate_retries += max(0, case_issued - attempts_seen)
        problems = _problems(case, expected, seen, final)
        if problems:
            trail = ", ".join(f"{t:.1f}s {what}" for t, what in seen.get("trail", []))
            not_as_predicted.append(
                f"{case.key} ({case.kind}, entry {case.entry}, fault {case.fault}, "
                f"duplicate {case.duplicate}): " + "; ".join(problems) + f"\n      trail: {trail or '-'}"
            )
        else:
            matching[final] += 1

    labels = {
        "done": "done (Succeeded event)",
        "failed": "failed (final Failed event, error)",
        "timed_out": "failed (final Timed Out event, error)",
    }
    dead_lettered = sorted(k for k in set(finals) | set(predicted) if k.startswith("dlq:"))
    order = ["done", "failed", "timed_out", *dead_lettered]
    rows = [(s, predicted[s], finals[s], matching[s]) for s in order]
    lost = finals["lost"]
    if finals["running"]:
        rows.append(("running", 0, finals["running"], 0))
    rows.append(("lost", 0, lost, 0))
    table_rows = [
        [
            labels.get(
                s,
                f"DLQ, reason attribute, error_code {s[4:]}"
                if s.startswith("dlq:")
                else "UNFINISHED (workflow still running at the end)"
                if s == "running"
                else "LOST (none of these)",
            ),
            f"{p:,}",
            f"{n:,}",
            f"{m:,}" if s not in ("lost", "running") else "-",
        ]
        for s, p, n, m in rows
    ]
    table_rows.append(
        ["total ids", f"{len(cases):,}", f"{sum(finals.values()):,}", f"{sum(matching.values()):,}"]
    )

    kinds = Counter(c.kind for c in cases)
    fault_detail = Counter(c.fault for c in cases if c.fault)
    dupes = Counter(c.duplicate for c in cases if c.duplicate)
    workflow_ids = sum(KINDS[c.kind].workflow for c in cases)
    posts = sum(s["posts"] for s in seen_all.values())
    counters = [
        [
            "messages sent",
            f"{sent['original'] + sent['twin'] + sent['late']:,}",
            f"{sent['original']:,} originals + {sent['twin'] + sent['late']:,} duplicates",
        ],
        [
            "duplicates injected",
            f"{sum(dupes.values()):,}",
            f"{sent['twin']:,} same body twice at once, {sent['late']:,} new failure events after "
            f"the first delivery ({sent['late_in_flight']:,} before the id's end was seen)",
        ],
        [
            "faults injected",
            f"{sum(fault_detail.values()):,}",
            ", ".join(f"{name} {count}" for name, count in sorted(fault_detail.items()))
            if fault_detail
            else "-",
        ],
        [
            "deliveries",
            f"{totals['deliveries']:,}",
            f"{totals['redeliveries']:,} redeliveries, "
            f"{totals['failed_deliveries']:,} reported as batch item failures",
        ],
        [
            "workflows run",
            f"{sum(executions.values()):,}",
            ", ".join(f"{k.lower()} {v:,}" for k, v in sorted(executions.items()))
            + f"; {workflow_ids:,} ids scripted to be followed",
        ],
        ["polls", f"{totals['polls']:,}", "GET /async-response by the poll function"],
        ["outcome events", f"{totals['outcome_events']:,}", ""],
        ["DLQ messages", f"{totals['dead_letters']:,}", ""],
        [
            "retry POSTs",
            f"{posts:,}",
            f"{issued:,} carried out by VideoDB, "
            f"{posts - issued:,} answered with an injected or scripted error",
        ],
        ["duplicate retries", f"{duplicate_retries:,}", "issued POSTs beyond one per attempt (must be 0)"],
        ["lost", f"{lost:,}", "ids with no final event and no dead letter (must be 0)"],
        ["not as predicted", f"{len(not_as_predicted):,}", "ids whose events/workflows/POSTs/letters differ"],
        [
            "unattributed",
            f"{sum(unattributed.values()):,}",
            ", ".join(f"{k} {v}" for k, v in sorted(unattributed.items())) or "-",
        ],
        [
            "left at the end",
            f"{sum(leftover.values()):,}",
            ", ".join(f"{k} {v}" for k, v in sorted(leftover.items()) if v)
            or "queue empty, no workflow running",
        ],
        [
            "duration",
            f"{seconds:.1f} s",
            f"{len(shards)} shard(s): "
            + ", ".join(f"{s:.0f} s" for s in shard_seconds)
            + (f"; {timed_out} TIMED OUT" if timed_out else "")
            + (f"; {crashed} CRASHED" if crashed else ""),
        ],
    ]
    mix = ", ".join(f"{name} {count:,}" for name, count in sorted(kinds.items()))
    text = "\n".join(
        [
            header,
            f"mix: {mix}",
            "",
            _table(table_rows, ["ended as", "predicted", "ids", "as predicted"], right=(1, 2, 3)),
            "",
            _table(counters, ["count", "value", "detail"], right=(1,), widest=130),
        ]
    )
    if not_as_predicted:
        shown = not_as_predicted[:25]
        text += (
            "\n\nnot as predicted"
            + (f" (first {len(shown)})" if len(shown) < len(not_as_predicted) else "")
            + ":\n"
        )
        text += "\n".join(f"  {line}" for line in shown)
    report = Report(
        ids=len(cases),
        lost=lost,
        duplicate_retries=duplicate_retries,
        not_as_predicted=not_as_predicted,
        rows=rows,
        totals={
            **totals,
            "messages_sent": sent["original"] + sent["twin"] + sent["late"],
            "duplicates_injected": sum(dupes.values()),
            "faults_injected": sum(fault_detail.values()),
            "workflows": sum(executions.values()),
            "workflow_ids": workflow_ids,
            "posts": posts,
            "issued": issued,
            "unattributed": sum(unattributed.values()),
            "timed_out_shards": timed_out,
            "crashed_shards": crashed,
            "seconds": seconds,
        },
        text="",
    )
    verdict = "PASS" if report.ok else "FAIL"
    report.text = (
        text + f"\n\n{verdict}: lost {lost}, duplicate retries {duplicate_retries}, "
        f"not as predicted {len(not_as_predicted)}, in {seconds:.1f} s."
    )
    return report


def _table(rows: list[list[str]], headers: list[str], right: tuple[int, ...] = (), widest: int = 60) -> str:
    cells = [[c if len(c) <= widest else c[: widest - 1] + "…" for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- entry points ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakConfig:
    """The soak's size and knobs."""

    messages: int = DEFAULT_MESSAGES
    workflows: int = DEFAULT_WORKFLOWS
    fault_rate: float = DEFAULT_FAULT_RATE
    duplicate_rate: float = DEFAULT_DUPLICATE_RATE
    seed: int = DEFAULT_SEED
    timeout: float = DEFAULT_TIMEOUT
    shards: int = 1
    verbose: bool = False
    parameters: dict[str, str] = field(default_factory=lambda: dict(SOAK_PARAMETERS))


def run_soak(config: SoakConfig, out: Callable[[str], None] = print) -> Report:
    """Plan, run every shard until done or ``config.timeout``, and account."""
    attempts = int(config.parameters["MaxRetryAttempts"])
    receives = int(config.parameters["MaxReceiveCount"])
    cases = make_plan(
        config.messages, config.workflows, config.fault_rate, config.duplicate_rate, config.seed, attempts
    )
    shards = [cases[i :: config.shards] for i in range(config.shards)]
    shown = ", ".join(f"{k}={v}" for k, v in sorted(config.parameters.items()))
    header = (
        f"soak: {config.messages:,} ids ({config.workflows:,} followed by the workflow), fault rate "
        f"{config.fault_rate:g}, duplicate rate {config.duplicate_rate:g}, seed {config.seed}, "
        f"{config.shards} shard(s), timeout {config.timeout:g} s\ntemplate parameters: {shown}"
    )
    out(header)
    started = time.time()
    results = run_shards(shards, config.parameters, config.seed, started + config.timeout, config.verbose)
    return account(cases, results, shards, attempts, receives, time.time() - started, header)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m videodb_retry_local.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="failed-download ids to send")
    parser.add_argument(
        "--workflows",
        type=int,
        default=DEFAULT_WORKFLOWS,
        help="of those, ids whose retry is followed by the workflow",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=DEFAULT_FAULT_RATE,
        help="share of ids given one transient API fault",
    )
    parser.add_argument(
        "--duplicate-rate", type=float, default=DEFAULT_DUPLICATE_RATE, help="share of ids delivered twice"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds before the run stops, whatever is left (at most {MAX_TIMEOUT:g})",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes, each with its own sandbox and emulated stack (default: cores, at most 2)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter override (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="show the functions' logs and metrics")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    if not 0 <= args.workflows <= args.messages:
        parser.error("--workflows must be between 0 and --messages")
    for name in ("fault_rate", "duplicate_rate"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if not 0 < args.timeout <= MAX_TIMEOUT:
        parser.error(f"--timeout must be between 0 and {MAX_TIMEOUT:g}")
    if not 1 <= args.shards <= 16:
        parser.error("--shards must be between 1 and 16")
    if any("=" not in p for p in args.param):
        parser.error("--param takes NAME=VALUE")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; exit status 0 only when the accounting is exact."""
    args = parse_args(argv)
    parameters = {**SOAK_PARAMETERS, **dict(p.split("=", 1) for p in args.param)}
    try:
        # Checked here, once, rather than failing in every shard.
        Template.load(overrides={**parameters, "VideoDBApiBaseUrl": "http://127.0.0.1:1"})
    except TemplateError as exc:
        print(f"cannot build the stack: {exc}", file=sys.stderr)
        return 2
    config = SoakConfig(
        messages=args.messages,
        workflows=args.workflows,
        fault_rate=args.fault_rate,
        duplicate_rate=args.duplicate_rate,
        seed=args.seed,
        timeout=args.timeout,
        shards=min(args.shards, args.messages),
        verbose=args.verbose,
        parameters=parameters,
    )
    report = run_soak(config, out=lambda line: print(line, flush=True))
    print()
    print(report.text, flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    # Run through the package module, so the shard processes unpickle the same classes.
    from videodb_retry_local.soak import main as _main

    sys.exit(_main())
