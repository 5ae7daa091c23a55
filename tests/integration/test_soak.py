"""The soak run (`make soak`) at a small size: every id sent is accounted for, none is lost,
no attempt is sent to VideoDB twice, and each ends as its script predicts.

The same code as the full run (src/videodb_retry_local/load/soak.py), in this process, with the
same fault and duplicate rates and a fixed seed; and the accounting itself is checked to
notice a lost id and a duplicate retry, so a passing soak means something.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from videodb_retry_local.load import soak
from videodb_retry_local.stack.sqs_event_source import Delivery

SMALL = soak.SoakConfig(
    messages=300,
    workflows=30,
    fault_rate=soak.DEFAULT_FAULT_RATE,
    duplicate_rate=soak.DEFAULT_DUPLICATE_RATE,
    seed=7,
    timeout=90,
    shards=1,
)
# A loaded machine may take the soak into its overtime (up to OVERTIME_FACTOR x timeout):
# the test must not be cut off before the soak itself would stop.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(int(SMALL.timeout * soak.OVERTIME_FACTOR + soak.SHARD_GRACE_SECONDS)),
]


def test_small_soak_accounts_for_every_id(capsys):
    report = soak.run_soak(SMALL)

    assert report.lost == 0, report.text
    assert report.duplicate_retries == 0, report.text
    assert report.not_as_predicted == [], report.text
    assert report.ok
    # Every id is in exactly one row of the table, and in the row its script predicts.
    assert sum(ids for _, _, ids, _ in report.rows) == SMALL.messages
    assert all(
        predicted == ids == matching for final, predicted, ids, matching in report.rows if final != "lost"
    )
    totals = report.totals
    assert totals["timed_out_shards"] == 0 and totals["crashed_shards"] == 0
    assert totals["workflows"] >= SMALL.workflows  # the state machine ran for each of them
    assert totals["duplicates_injected"] == round(SMALL.duplicate_rate * SMALL.messages)
    assert totals["faults_injected"] == round(SMALL.fault_rate * SMALL.messages)
    assert totals["messages_sent"] == SMALL.messages + totals["duplicates_injected"]
    assert totals["unattributed"] == 0
    assert totals["posts"] > totals["issued"] > 0  # injected errors were answered, then retried
    assert "PASS: lost 0, duplicate retries 0" in report.text
    # The functions' logs and metrics stay out of the output.
    out = capsys.readouterr().out
    assert '"level"' not in out and "_aws" not in out


def test_plan_is_deterministic_and_covers_every_kind():
    def plan(seed: int) -> list[soak.Case]:
        return soak.make_plan(1000, 100, 0.05, 0.05, seed, attempts=2)

    first = plan(3)
    assert first == plan(3) and first != plan(4)
    assert len({case.key for case in first}) == 1000
    assert {case.kind for case in first} == set(soak.KINDS)
    assert sum(soak.KINDS[case.kind].workflow for case in first) == 100
    assert sum(case.fault is not None for case in first) == 50
    assert sum(case.duplicate is not None for case in first) == 50
    # Poison bodies are unique, so each dead letter leads back to its case.
    poison = [case.body for case in first if case.kind == "poison"]
    assert len(poison) == len(set(poison))


def _as_predicted(cases: list[soak.Case]) -> dict[str, Any]:
    """A shard result in which every case ended exactly as predicted."""
    seen = {}
    for case in cases:
        expected = soak.expect(case, attempts=2, receives=5)
        code = expected.final.removeprefix("dlq:")
        seen[case.key] = {
            "events": [
                {
                    "status": status,
                    "attempt": attempt,
                    "will_retry": will_retry,
                    **({} if status == "done" else {"error": "it failed"}),
                }
                for status, attempt, will_retry in expected.events
            ],
            "letters": [{"reason": "why", "error_code": code}] * expected.letters[0],
            "executions": ["SUCCEEDED" for _ in expected.events] if expected.workflows else [],
            "posts": expected.posts[0],
            "deliveries": 1,
            "redeliveries": 0,
            "trail": [],
        }
    totals = {
        "sent": {"original": len(cases)},
        "deliveries": len(cases),
        "redeliveries": 0,
        "failed_deliveries": 0,
        "executions": {},
        "outcome_events": 0,
        "dead_letters": 0,
        "polls": 0,
        "unattributed": {},
        "leftover": {},
        "timed_out": False,
        "seconds": 1.0,
    }
    return {"seen": seen, "totals": totals}


def _account(cases: list[soak.Case], result: dict[str, Any] | None) -> soak.Report:
    return soak.account(cases, [result], [cases], attempts=2, receives=5, seconds=1.0, header="test")


def test_accounting_notices_a_lost_id_and_a_duplicate_retry():
    cases = soak.make_plan(200, 20, 0.05, 0.05, seed=5, attempts=2)
    perfect = _as_predicted(cases)
    assert _account(cases, perfect).ok

    lost = copy.deepcopy(perfect)
    victim = next(c for c in cases if c.kind == "wf_retry")
    lost["seen"][victim.key].update(events=lost["seen"][victim.key]["events"][:1])  # attempt 2 never ended
    report = _account(cases, lost)
    assert report.lost == 1 and not report.ok
    assert any(line.startswith(victim.key) for line in report.not_as_predicted)

    twice = copy.deepcopy(perfect)
    target = next(c for c in cases if c.kind == "now_done" and c.fault is None)
    twice["seen"][target.key]["posts"] = 2  # VideoDB retried attempt 1 twice
    report = _account(cases, twice)
    assert report.duplicate_retries == 1 and report.lost == 0 and not report.ok

    unreasoned = copy.deepcopy(perfect)
    refused = next(c for c in cases if c.kind == "missing")
    unreasoned["seen"][refused.key]["letters"] = [{"error_code": "http_404"}]  # moved by redrive
    assert _account(cases, unreasoned).lost == 1

    # A shard that crashed hands in nothing: its ids are lost.
    assert _account(cases, None).lost == len(cases)


def test_a_workflow_still_running_at_the_end_is_unfinished_not_lost():
    cases = soak.make_plan(200, 20, 0.05, 0.05, seed=5, attempts=2)
    result = _as_predicted(cases)
    slow = next(c for c in cases if c.kind == "wf_done")
    result["seen"][slow.key].update(events=[], executions=["RUNNING"])
    report = _account(cases, result)
    assert report.lost == 0 and not report.ok  # not as predicted: the run did not finish
    assert "UNFINISHED (workflow still running at the end)" in report.text


class _SlowShard(soak.ShardRun):
    """A shard whose every poll is slow but keeps making progress (no stack needed)."""

    def __init__(self, steps: int) -> None:
        self.steps, self.polls = steps, 0
        self.timed_out = False
        self.final: set[str] = set()
        self.consumer = type("C", (), {"deliveries": []})()

    def _top_up(self) -> None: ...
    def _send_due_late(self, now: float) -> None: ...
    def _note_deliveries(self) -> None: ...
    def _drain(self) -> None: ...
    def _progress(self, elapsed: float) -> str:
        return ""

    def _queue_counts(self) -> dict[str, int]:
        return {}

    def _running(self) -> int:
        return 0

    def _finished(self) -> bool:
        return self.polls >= self.steps

    def log(self, line: str) -> None: ...

    def _poll(self) -> int:
        self.polls += 1
        # progress: a record was delivered
        self.consumer.deliveries.append(Delivery(f"m-{self.polls}", "dl-slow", 1, failed=False))
        return 1


def test_a_slow_shard_that_keeps_progressing_runs_past_its_deadline_and_finishes(monkeypatch):
    import time

    shard = _SlowShard(steps=5)
    monkeypatch.setattr(shard, "consumer", type("C", (), {"deliveries": [], "poll_once": shard._poll})())
    now = time.time()
    shard.run(deadline=now, ceiling=now + 30)  # the deadline has already passed
    assert shard.polls >= 5 and not shard.timed_out  # finished, though past its deadline


def test_a_shard_stops_at_its_ceiling_even_while_progressing():
    import time

    shard = _SlowShard(steps=10**9)
    shard.consumer = type("C", (), {"deliveries": [], "poll_once": shard._poll})()
    now = time.time()
    shard.run(deadline=now, ceiling=now + 0.5)
    assert shard.timed_out and shard.polls > 1
