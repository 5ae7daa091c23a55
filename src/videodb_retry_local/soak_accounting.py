"""The soak's accounting: every id sent ends done, failed with a reason or in the DLQ with
a reason; the report says how each ended against its prediction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from videodb_retry_local.soak_plan import KINDS, Case, Expected, expect

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


@dataclass
class _Merged:
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
class _Judged:
    """Every case against its prediction."""

    finals: Counter[str]
    predicted: Counter[str]
    matching: Counter[str]
    not_as_predicted: list[str]
    duplicate_retries: int
    issued: int


def _merge(results: Sequence[dict[str, Any] | None], shards: list[list[Case]]) -> _Merged:
    """Add up what each shard handed in."""
    merged = _Merged()
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


def _judge(
    cases: Sequence[Case], seen_all: dict[str, dict[str, Any]], attempts: int, receives: int
) -> _Judged:
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
        problems = _problems(case, expected, seen, final)
        if problems:
            trail = ", ".join(f"{t:.1f}s {what}" for t, what in seen.get("trail", []))
            not_as_predicted.append(
                f"{case.key} ({case.kind}, entry {case.entry}, fault {case.fault}, "
                f"duplicate {case.duplicate}): " + "; ".join(problems) + f"\n      trail: {trail or '-'}"
            )
        else:
            matching[final] += 1

    return _Judged(finals, predicted, matching, not_as_predicted, duplicate_retries, issued)


def _outcome_table(
    cases: Sequence[Case], judged: _Judged
) -> tuple[list[tuple[str, int, int, int]], list[list[str]]]:
    """The "ended as" rows (final state, predicted, ids, as predicted) and their table cells."""
    finals, predicted, matching = judged.finals, judged.predicted, judged.matching
    labels = {
        "done": "done (Succeeded event)",
        "failed": "failed (final Failed event, error)",
        "timed_out": "failed (final Timed Out event, error)",
    }
    dead_lettered = sorted(k for k in set(finals) | set(predicted) if k.startswith("dlq:"))
    order = ["done", "failed", "timed_out", *dead_lettered]
    rows = [(s, predicted[s], finals[s], matching[s]) for s in order]
    if finals["running"]:
        rows.append(("running", 0, finals["running"], 0))
    rows.append(("lost", 0, finals["lost"], 0))
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

    return rows, table_rows


def _counter_rows(
    cases: Sequence[Case], merged: _Merged, judged: _Judged, seconds: float, shards: int
) -> list[list[str]]:
    """The "count / value / detail" rows of the report."""
    totals, executions, sent = merged.totals, merged.executions, merged.sent
    unattributed, leftover, shard_seconds = merged.unattributed, merged.leftover, merged.shard_seconds
    timed_out, crashed, issued = merged.timed_out, merged.crashed, judged.issued
    duplicate_retries, not_as_predicted, lost = (
        judged.duplicate_retries,
        judged.not_as_predicted,
        judged.finals["lost"],
    )
    fault_detail = Counter(c.fault for c in cases if c.fault)
    dupes = Counter(c.duplicate for c in cases if c.duplicate)
    workflow_ids = sum(KINDS[c.kind].workflow for c in cases)
    posts = sum(s["posts"] for s in merged.seen_all.values())
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
            f"{shards} shard(s): "
            + ", ".join(f"{s:.0f} s" for s in shard_seconds)
            + (f"; {timed_out} TIMED OUT" if timed_out else "")
            + (f"; {crashed} CRASHED" if crashed else ""),
        ],
    ]
    return counters


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
    merged = _merge(results, shards)
    judged = _judge(cases, merged.seen_all, attempts, receives)
    rows, table_rows = _outcome_table(cases, judged)
    counters = _counter_rows(cases, merged, judged, seconds, len(shards))
    totals, executions, sent, unattributed = (
        merged.totals,
        merged.executions,
        merged.sent,
        merged.unattributed,
    )
    not_as_predicted, duplicate_retries, issued = (
        judged.not_as_predicted,
        judged.duplicate_retries,
        judged.issued,
    )
    lost, timed_out, crashed = judged.finals["lost"], merged.timed_out, merged.crashed
    kinds = Counter(c.kind for c in cases)
    fault_detail = Counter(c.fault for c in cases if c.fault)
    dupes = Counter(c.duplicate for c in cases if c.duplicate)
    workflow_ids = sum(KINDS[c.kind].workflow for c in cases)
    posts = sum(s["posts"] for s in merged.seen_all.values())
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
