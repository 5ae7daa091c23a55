"""The soak's accounting: every id sent ends done, failed with a reason or in the DLQ with
a reason; the report says how each ended against its prediction.

``soak_judgement`` merges the shards' observations and judges each case; ``soak_tables``
lays out the report's tables; this module puts the report together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from videodb_retry_local.load.soak_judgement import Judged, Merged, judge, merge
from videodb_retry_local.load.soak_plan import KINDS, Case
from videodb_retry_local.load.soak_tables import counter_rows, outcome_table, render_table


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
    merged = merge(results, shards)
    judged = judge(cases, merged.seen_all, attempts, receives)
    rows, table_rows = outcome_table(cases, judged)
    counters = counter_rows(cases, merged, judged, seconds, len(shards))
    report = Report(
        ids=len(cases),
        lost=judged.finals["lost"],
        duplicate_retries=judged.duplicate_retries,
        not_as_predicted=judged.not_as_predicted,
        rows=rows,
        totals=_totals(cases, merged, judged, seconds),
        text="",
    )
    verdict = "PASS" if report.ok else "FAIL"
    report.text = (
        _text(header, cases, table_rows, counters, judged.not_as_predicted)
        + f"\n\n{verdict}: lost {report.lost}, duplicate retries {report.duplicate_retries}, "
        f"not as predicted {len(report.not_as_predicted)}, in {seconds:.1f} s."
    )
    return report


def _totals(cases: Sequence[Case], merged: Merged, judged: Judged, seconds: float) -> dict[str, Any]:
    """The report's numbers for scripts: the shards' counters and what the run added up to."""
    sent = merged.sent
    return {
        **merged.totals,
        "messages_sent": sent["original"] + sent["twin"] + sent["late"],
        "duplicates_injected": sum(1 for c in cases if c.duplicate),
        "faults_injected": sum(1 for c in cases if c.fault),
        "workflows": sum(merged.executions.values()),
        "workflow_ids": sum(KINDS[c.kind].workflow for c in cases),
        "posts": sum(s["posts"] for s in merged.seen_all.values()),
        "issued": judged.issued,
        "unattributed": sum(merged.unattributed.values()),
        "timed_out_shards": merged.timed_out,
        "crashed_shards": merged.crashed,
        "seconds": seconds,
    }


def _text(
    header: str,
    cases: Sequence[Case],
    table_rows: list[list[str]],
    counters: list[list[str]],
    not_as_predicted: list[str],
) -> str:
    """The report as printed, up to the verdict: the mix, both tables, the first mismatches."""
    kinds = Counter(c.kind for c in cases)
    mix = ", ".join(f"{name} {count:,}" for name, count in sorted(kinds.items()))
    text = "\n".join(
        [
            header,
            f"mix: {mix}",
            "",
            render_table(table_rows, ["ended as", "predicted", "ids", "as predicted"], right=(1, 2, 3)),
            "",
            render_table(counters, ["count", "value", "detail"], right=(1,), widest=130),
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
    return text
