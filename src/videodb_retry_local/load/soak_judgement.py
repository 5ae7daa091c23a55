"""The soak's observations judged: the shards' observations put together, and every case
against its prediction (where it ended, how it differs, the POSTs VideoDB carried out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from videodb_retry_local.load.soak_plan import Case, Expected, expect


@dataclass
class Merged:
    """The shards' observations put together (a crashed shard's cases seen as nothing)."""

    seen_all: dict[str, dict[str, Any]] = field(default_factory=dict)
    totals: Counter[str] = field(default_factory=Counter)
    executions: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    unattributed: Counter[str] = field(default_factory=Counter)
    leftover: Counter[str] = field(default_factory=Counter)
    shard_seconds: list[float] = field(default_factory=list)
    timed_out: int = 0
    crashed: int = 0


@dataclass
class Judged:
    """Every case against its prediction."""

    finals: Counter[str]
    predicted: Counter[str]
    matching: Counter[str]
    not_as_predicted: list[str]
    duplicate_retries: int
    issued: int


def merge(results: Sequence[dict[str, Any] | None], shards: list[list[Case]]) -> Merged:
    """Add up what each shard handed in."""
    merged = Merged()
    seen_all, totals, executions = merged.seen_all, merged.totals, merged.executions
    sent, unattributed, leftover = merged.sent, merged.unattributed, merged.leftover
    shard_seconds, timed_out, crashed = merged.shard_seconds, 0, 0
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

    merged.timed_out, merged.crashed = timed_out, crashed
    return merged


def judge(cases: Sequence[Case], seen_all: dict[str, dict[str, Any]], attempts: int, receives: int) -> Judged:
    """Where each case ended, whether as predicted, and the POSTs VideoDB carried out."""
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
        problems = _problems(expected, seen, final)
        if problems:
            trail = ", ".join(f"{t:.1f}s {what}" for t, what in seen.get("trail", []))
            not_as_predicted.append(
                f"{case.key} ({case.kind}, entry {case.entry}, fault {case.fault}, "
                f"duplicate {case.duplicate}): " + "; ".join(problems) + f"\n      trail: {trail or '-'}"
            )
        else:
            matching[final] += 1

    return Judged(finals, predicted, matching, not_as_predicted, duplicate_retries, issued)


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


def _problems(expected: Expected, seen: dict[str, Any], final: str) -> list[str]:
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
    # One execution per attempt, and it succeeds however the attempt ended (done, failed or
    # timed out are outcomes; a FAILED execution is one that broke).
    statuses = ["SUCCEEDED" for _ in expected.events]
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
