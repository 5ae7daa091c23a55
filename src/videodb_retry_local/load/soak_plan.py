"""The soak's plan: the scripted mix of downloads, the faults and duplicates injected into
it, and what each case is predicted to end as."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

API_KEY = "sk-soak-sandbox"
DEFAULT_MESSAGES = 10_000
DEFAULT_WORKFLOWS = 1_000
DEFAULT_FAULT_RATE = 0.05
DEFAULT_DUPLICATE_RATE = 0.05
DEFAULT_SEED = 20_240_601
DEFAULT_TIMEOUT = 900.0
MAX_TIMEOUT = 3600.0

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
    cases = _scripted_cases(kinds, rng, attempts)
    _inject_faults(cases, rng, round(fault_rate * messages))
    _inject_duplicates(cases, rng, round(duplicate_rate * messages))
    return cases


def _scripted_cases(kinds: list[str], rng: random.Random, attempts: int) -> list[Case]:
    """One case per kind drawn: its id, how it enters the pipeline, its body and script."""
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
            # download; the sandbox refuses it by default (docs/contract.md, "VideoDB answers").
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
    return cases


def _inject_faults(cases: list[Case], rng: random.Random, count: int) -> None:
    """Give ``count`` of the ids that call the API one transient fault each (in place)."""
    faultable = [i for i, c in enumerate(cases) if KINDS[c.kind].fault_types]
    for i in rng.sample(faultable, min(len(faultable), count)):
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


def _inject_duplicates(cases: list[Case], rng: random.Random, count: int) -> None:
    """Deliver ``count`` ids twice (in place)."""
    # Half the duplicates are late: a new failure event for an id whose retry is still in
    # flight, so they go to ids that stay in flight (a workflow, a re-queued attempt, an API
    # that stays down); the other half are twins, of any id.
    duplicates = min(len(cases), count)
    lasting = [i for i, c in enumerate(cases) if c.kind in LASTING]
    late = set(rng.sample(lasting, min(len(lasting), duplicates // 2)))
    others = [i for i in range(len(cases)) if i not in late]
    twins = set(rng.sample(others, duplicates - len(late)))
    for i in late | twins:
        case = cases[i]
        how = "late" if i in late else "twin"
        cases[i] = Case(case.key, case.kind, case.entry, case.body, case.script, case.fault, how)
