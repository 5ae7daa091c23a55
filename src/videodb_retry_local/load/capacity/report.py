"""What ``make scale`` shows: a table per scenario, ``bench/scale.json``, and the plots.

The plots (PNG, matplotlib's Agg backend: no display needed) are one figure per scenario and
design with four panels over time: our Lambda concurrency, VideoDB requests per second, the
retry queue's depth and the running executions, each with the budget drawn where there is one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videodb_retry_local.load.capacity.model import ScenarioResult
from videodb_retry_local.load.capacity.series import Series

ROWS = (
    ("downloads", "downloads"),
    ("lost", "lost"),
    ("duplicate POSTs", "duplicate_posts"),
    ("ended by throttling", "ended_by_throttling"),
    ("peak Lambda concurrency", "peak_lambda_concurrency"),
    ("peak VideoDB requests/s", "peak_videodb_rps"),
    ("drain (s)", "drain_seconds"),
    ("drain floor (s)", "drain_floor_seconds"),
    ("drain bound of the split (s)", "drain_split_bound_seconds"),
    ("cost (USD)", "cost_usd"),
    ("dead letters", "dead_letters"),
    ("still pending at the horizon", "unfinished"),
    ("throttles", "throttles"),
    ("executions at peak", "peak_executions"),
    ("queue depth at peak", "peak_queue_depth"),
    ("VideoDB requests", "requests"),
    ("refused by VideoDB (429/503)", "refused_by_videodb"),
    ("executions / transitions", "executions"),
    ("receives", "receives"),
    ("request budget refusals", "budget_refusals"),
    ("retry records deferred", "deferred_records"),
)


def table(result: ScenarioResult, budget: dict[str, int]) -> str:
    """One scenario's figures as a plain-text table."""
    data = result.to_json()
    data["executions"] = f"{result.executions} / {result.transitions}"
    lines = [f"== {result.name} ({result.design}; budget {budget}) =="]
    width = max(len(label) for label, _ in ROWS)
    for label, key in ROWS:
        lines.append(f"  {label:<{width}}  {_shown(data[key])}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
    return f"{value:,}" if isinstance(value, int) else str(value)


def scale_json(
    budget: dict[str, int], results: Sequence[ScenarioResult], calibration: dict[str, Any] | None
) -> dict[str, Any]:
    """``bench/scale.json`` in the issue's shape (calibration left out when not run)."""
    document: dict[str, Any] = {"budget": budget, "scenarios": [r.to_json() for r in results]}
    if calibration is not None:
        document["calibration"] = calibration
    return document


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def series_json(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """The plotted series of each run (kept so a later design is plotted next to this one)."""
    return {r.name: r.series.__dict__ for r in results if r.series is not None}


def plot(name: str, runs: dict[str, Series], budget: dict[str, int], path: Path) -> None:
    """Four panels over time for one scenario: one line per design in ``runs``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    panels = (
        ("Lambda concurrency (ours)", "concurrency", budget.get("lambda_concurrency")),
        ("VideoDB requests/s", "videodb_rps", budget.get("videodb_rps")),
        ("retry queue depth", "queue_depth", None),
        ("running executions", "executions", None),
    )
    figure, axes = pyplot.subplots(2, 2, figsize=(11, 7), sharex=True)
    for axis, (title, attribute, limit) in zip(axes.flat, panels, strict=True):
        for design, series in runs.items():
            hours = [t / 3600 for t in series.times]
            axis.plot(hours, getattr(series, attribute), label=design, linewidth=1)
        if limit:
            axis.axhline(limit, color="red", linestyle="--", linewidth=0.8, label="budget")
        axis.set_title(title)
        axis.set_xlabel("hours")
        axis.legend(fontsize=8)
    figure.suptitle(f"scenario {name}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    pyplot.close(figure)
