"""`make soak`: a bounded soak run of the whole retry pipeline, with exact accounting at the end.

Thousands of failed-download messages go through the real retry handler (the emulated stack's
:class:`~videodb_retry_local.stack.sqs_event_source.QueueConsumer` invoking ``functions/retry/app.py``), a
thousand or more of them through the Step Functions workflow executing in moto and its poll
function, against the sandbox VideoDB API on 127.0.0.1. On top of a scripted mix of downloads
(done or failed at once, processing then done, failing every attempt, never finishing, unknown
to VideoDB, refused, VideoDB down for good, poison bodies, attempts beyond the limit) it injects

- transient API faults at random: one 500/503/429 on the retry POST, one 5xx on a poll, slow
  answers;
- duplicate deliveries at the queue: the same body sent twice side by side, and the same
  "download failed" reported again late (an event whose ``time`` is the original's, as when
  EventBridge delivers an event twice), while or after the id's retry sequence runs.

At the end every id sent is accounted for: done (a Succeeded event), failed with a reason (a
final Failed / Timed Out event with ``will_retry`` false and an error) or in the DLQ with a
reason attribute. An id with none of these is *lost*. A retry POST that VideoDB carried out
more often than the download had attempts is a *duplicate retry*. The exit status is 0 only
when nothing is lost, nothing is retried twice and every id ended exactly as its script
predicts (its outcome events, workflows, retry POSTs and dead letters).

moto's in-process SQS and Step Functions are the bottleneck, and one Python process uses one
core, so the ids are split across ``--shards`` processes (by default one per core, at most two),
each with its own sandbox and emulated stack. Every loop is bounded by ``--timeout``.

    python -m videodb_retry_local.load.soak [--messages N] [--workflows M] [--fault-rate 0.05]
        [--duplicate-rate R] [--seed S] [--timeout SECONDS] [--shards K]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from videodb_retry_local.load.soak_accounting import Report, account
from videodb_retry_local.load.soak_plan import (
    DEFAULT_DUPLICATE_RATE,
    DEFAULT_FAULT_RATE,
    DEFAULT_MESSAGES,
    DEFAULT_SEED,
    DEFAULT_TIMEOUT,
    DEFAULT_WORKFLOWS,
    KINDS,
    MAX_TIMEOUT,
    Case,
    expect,
    make_plan,
)
from videodb_retry_local.load.soak_runner import run_shards
from videodb_retry_local.load.soak_shard import OVERTIME_FACTOR, SHARD_GRACE_SECONDS, ShardRun
from videodb_retry_local.stack.presets import SOAK_PARAMETERS, add_param_option
from videodb_retry_local.stack.template import Template, TemplateError

# -- entry points ---------------------------------------------------------------------------


# The soak's front door: its parts are reached through it (`soak.make_plan`, `soak.account`...).
__all__ = [
    "DEFAULT_DUPLICATE_RATE",
    "DEFAULT_FAULT_RATE",
    "KINDS",
    "OVERTIME_FACTOR",
    "SHARD_GRACE_SECONDS",
    "Case",
    "Report",
    "ShardRun",
    "SoakConfig",
    "account",
    "expect",
    "main",
    "make_plan",
    "run_soak",
]


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
        prog="python -m videodb_retry_local.load.soak", description=__doc__.split("\n")[0]
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
    add_param_option(parser)
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
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; exit status 0 only when the accounting is exact."""
    args = parse_args(argv)
    parameters = {**SOAK_PARAMETERS, **dict(args.param)}
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
    from videodb_retry_local.load.soak import main as _main

    sys.exit(_main())
