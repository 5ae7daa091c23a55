"""The soak report's tables: how the ids ended against their predictions, and the counters
(messages, duplicates, faults, deliveries, workflows, POSTs, what was left) beside them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from videodb_retry_local.load.soak_judgement import Judged, Merged
from videodb_retry_local.load.soak_plan import KINDS, Case


def outcome_table(
    cases: Sequence[Case], judged: Judged
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


def counter_rows(
    cases: Sequence[Case], merged: Merged, judged: Judged, seconds: float, shards: int
) -> list[list[str]]:
    """The "count / value / detail" rows of the report."""
    return [*_traffic_rows(cases, merged), *_check_rows(merged, judged, seconds, shards)]


def _traffic_rows(cases: Sequence[Case], merged: Merged) -> list[list[str]]:
    """What went through: messages, injected duplicates and faults, deliveries, workflows."""
    totals, executions, sent = merged.totals, merged.executions, merged.sent
    fault_detail = Counter(c.fault for c in cases if c.fault)
    dupes = Counter(c.duplicate for c in cases if c.duplicate)
    workflow_ids = sum(KINDS[c.kind].workflow for c in cases)
    return [
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
    ]


def _check_rows(merged: Merged, judged: Judged, seconds: float, shards: int) -> list[list[str]]:
    """What the verdict rests on: POSTs, duplicate retries, lost ids, mismatches, leftovers, time."""
    unattributed, leftover = merged.unattributed, merged.leftover
    timed_out, crashed, issued = merged.timed_out, merged.crashed, judged.issued
    posts = sum(s["posts"] for s in merged.seen_all.values())
    return [
        [
            "retry POSTs",
            f"{posts:,}",
            f"{issued:,} carried out by VideoDB, "
            f"{posts - issued:,} answered with an injected or scripted error",
        ],
        [
            "duplicate retries",
            f"{judged.duplicate_retries:,}",
            "issued POSTs beyond one per attempt (must be 0)",
        ],
        ["lost", f"{judged.finals['lost']:,}", "ids with no final event and no dead letter (must be 0)"],
        [
            "not as predicted",
            f"{len(judged.not_as_predicted):,}",
            "ids whose events/workflows/POSTs/letters differ",
        ],
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
            + ", ".join(f"{s:.0f} s" for s in merged.shard_seconds)
            + (f"; {timed_out} TIMED OUT" if timed_out else "")
            + (f"; {crashed} CRASHED" if crashed else ""),
        ],
    ]


def render_table(
    rows: list[list[str]], headers: list[str], right: tuple[int, ...] = (), widest: int = 60
) -> str:
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
