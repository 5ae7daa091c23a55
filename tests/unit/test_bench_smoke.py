"""Smoke test of the benchmarks (bench/): each figure runs at a minimal size and returns sane
numbers. No timing is asserted — only that the figures measure something and count right."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import (
    batch_latency,
    cold_start,
    package_size,
    polling_cost,
    polling_executions,
    record_overhead,
    run,
    secrets_calls,
)
from bench.common import Figure, Row, machine


def _rows_are_complete(figure: Figure) -> None:
    assert figure.rows
    for row in figure.rows:
        assert row.figure and row.measured and row.baseline and row.ratio and row.target
        assert row.met in (True, False, None)
        assert "python -m bench.run --only" in row.command


def test_machine_names_cpu_cores_and_python() -> None:
    info = machine()
    assert info["cpu"] and int(info["cores"]) >= 1 and "3." in info["python"]


def test_batch_latency_runs() -> None:
    figure = batch_latency.measure(batches=1, calls=1, moto_batches=0)
    _rows_are_complete(figure)
    assert figure.data["one_call_s"] > 0 and figure.data["batch_s"] > 0
    assert figure.data["batch_one_by_one_s"] > 0


def test_record_overhead_runs() -> None:
    figure = record_overhead.measure(rounds=1, records_per_round=10, profile=False)
    _rows_are_complete(figure)
    assert figure.data["handler_records_per_s"] > 0 and figure.data["bare_posts_per_s"] > 0
    # Idempotency of the issue step (put + update) and the workflow start, which needs no
    # ledger entry of its own (its deterministic name makes it idempotent); the request budget's
    # token (one UpdateItem per POST); plus one UpdateItem per batch of 10 for the circuit
    # breaker's counts.
    assert figure.data["aws_calls_per_record"] == pytest.approx(4.1)


def test_cold_start_runs() -> None:
    figure = cold_start.measure(runs=1, importtime_runs=1)
    _rows_are_complete(figure)
    assert len(figure.rows) == len(cold_start.FUNCTIONS)  # one row per handler
    assert all(value > 0 for value in figure.data["medians_s"].values())
    for profile in figure.data["importtime"].values():
        assert profile["packages"] and profile["total_s"] > 0


def test_secret_reads_are_counted() -> None:
    figure = secrets_calls.measure(invocations=2, batch_size=1, spread_seconds=600)
    _rows_are_complete(figure)
    assert figure.data["calls_real_time"] == 1  # one read, then the cache
    assert figure.data["calls_virtual_hour"] == 2  # 600 s apart: the 300 s TTL expired between
    assert figure.data["calls_no_cache"] == 2  # TTL 0: one read per API call
    assert figure.rows[0].met is True


def test_polling_counts_transitions_of_real_executions() -> None:
    figure = polling_cost.measure(jobs={"10 s": 10})
    _rows_are_complete(figure)
    ours, baseline = figure.data["ours"]["10 s"], figure.data["baseline"]["10 s"]
    # Ours: a Wait, one poll invocation (one request, 15 s after the retry, nothing slept in
    # Lambda), then route and announce; the baseline: wait, poll, route per poll, then its end.
    assert ours["transitions"] == 4 and ours["polls"] == 1
    (first,) = ours["poll_offsets_s"]
    assert len(ours["poll_invocation_s"]) == 1 and first >= 15
    assert ours["slept_in_function_s"] == 0
    assert baseline["transitions"] == 3 * baseline["polls"] + 1
    assert baseline["polls"] == 1 and baseline["detection_s"] >= 0 and ours["detection_s"] >= 0


def test_package_check_finds_dev_packages(tmp_path: Path) -> None:
    layer = tmp_path / "SharedLayer" / "python"
    (layer / "requests").mkdir(parents=True)
    (layer / "requests" / "__init__.py").write_text("x = 1\n")
    (layer / "pytest").mkdir()
    (layer / "pytest" / "__init__.py").write_text("")
    (layer / "moto-5.2.5.dist-info").mkdir()
    (layer / "cache.whl").write_bytes(b"zip")
    (tmp_path / "RetryFunction").mkdir()
    (tmp_path / "RetryFunction" / "app.py").write_text("def lambda_handler(e, c): ...\n")
    artifacts = package_size.analyze(tmp_path)
    assert artifacts["SharedLayer"]["kind"] == "layer" and artifacts["RetryFunction"]["kind"] == "function"
    assert artifacts["SharedLayer"]["forbidden"] == ["moto", "pytest"]
    assert artifacts["SharedLayer"]["wheel_files"] == ["python/cache.whl"]
    assert artifacts["RetryFunction"]["forbidden"] == [] and artifacts["RetryFunction"]["bytes"] > 0
    figure = package_size.measure(build_dir=tmp_path)
    _rows_are_complete(figure)
    assert [row.met for row in figure.rows] == [False, False]  # the function deploys with the layer


def test_render_has_machine_line_and_table() -> None:
    figure = Figure("x", "X", rows=[Row("f", "1 ms", "2 ms", "0.50x", "≤ 1x", True, "`cmd`")], notes=["n"])
    text = run.render([figure], {"cpu": "CPU", "cores": "2", "python": "CPython 3.13.0", "os": "Linux"}, 1.0)
    assert "**Machine:** CPU, 2 cores, CPython 3.13.0" in text
    assert "| figure | measured | baseline | ratio | target | met? | command |" in text
    assert "| machine | CPU, 2 cores, CPython 3.13.0 |" in text
    assert "| f | 1 ms | 2 ms | 0.50x | ≤ 1x | yes | `cmd` |" in text


def test_billed_transitions_count_every_task_retry() -> None:
    # A Task entered once, retried twice (three TaskScheduled), then a Choice and a Succeed.
    history = [
        {"type": t}
        for t in (
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskFailed",
            "TaskScheduled",
            "TaskFailed",
            "TaskScheduled",
            "TaskSucceeded",
            "TaskStateExited",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "SucceedStateEntered",
            "ExecutionSucceeded",
        )
    ]
    assert polling_executions.billed_transitions(history) == 3 + 2
