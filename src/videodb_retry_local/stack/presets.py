"""Template parameter presets of the local runs, in one place: each shrinks the template's
waits (or sizes) for one use, and says why; and the ``--param NAME=VALUE`` option that
overrides them from a command line."""

from __future__ import annotations

import argparse

# The workflow's Retry waits (15 s growing x1.25 between polls; literals of the definition,
# not parameters) are slept this many times over in local runs, so a poll ladder that takes
# minutes in AWS takes seconds here, in the same order and counts (moto_env.local_aws).
LOCAL_RETRY_WAIT_SCALE = 1 / 15

# Budgets a local run never reaches (800 polls and 200 intake requests a second): the tests of
# other behaviour send bursts within one second, which the default budgets (5 polls and 2 POSTs
# a second) would spread out. Tests of the budgets themselves set their own.
BUDGETS_NEVER_BINDING: dict[str, str] = {"ConcurrencyBudget": "10000", "VideoDBRequestsPerSecond": "1000"}

# The demo and serve mode against the sandbox: short waits so the demo ends in well under a
# minute, and a served stack answers an operator's try within seconds.
SANDBOX_PARAMETERS: dict[str, str] = {
    **BUDGETS_NEVER_BINDING,
    "PollFirstWaitSeconds": "1",
    "PollDeadlineSeconds": "6",
    "RequeueDelaySeconds": "1",
    "MaxRetryAttempts": "3",
}

# The demo against a real API: one attempt per download, followed for up to 100 s (a real
# download takes longer than the sandbox's, and every extra attempt costs the account); the
# template's budgets, as a deployed stack would hold them against the real API.
REAL_API_PARAMETERS: dict[str, str] = {
    "PollFirstWaitSeconds": "2",
    "PollDeadlineSeconds": "100",
    "RequeueDelaySeconds": "5",
    "MaxRetryAttempts": "1",
}

# Every wait is a template parameter, shrunk so that a workflow lasts seconds, not hours. Two
# attempts per download keep the "fails every time" and "never finishes" paths short while
# still re-queueing once; five receives (the template's minimum) bound a download whose API
# stays down.
SOAK_PARAMETERS: dict[str, str] = {
    **BUDGETS_NEVER_BINDING,
    "PollFirstWaitSeconds": "1",
    "PollDeadlineSeconds": "3",
    "MaxRetryAttempts": "2",
    "RequeueDelaySeconds": "1",
    "MaxReceiveCount": "5",
    "RedeliveryFirstDelaySeconds": "1",
    "RedeliveryBackoffFactor": "2",
    "RedeliveryMaxDelaySeconds": "2",
    "LogLevel": "ERROR",
}

# The outage replay's timing in virtual seconds: the template's defaults, which the run
# divides by its --scale so the compressed run keeps their ratios.
OUTAGE_VIRTUAL_TIMING: dict[str, int] = {
    "PollFirstWaitSeconds": 15,
    "PollDeadlineSeconds": 7200,
    "RequeueDelaySeconds": 60,
    "RedeliveryFirstDelaySeconds": 30,
    "RedeliveryMaxDelaySeconds": 900,
    "BreakerWindowSeconds": 300,
}


def add_param_option(parser: argparse.ArgumentParser) -> None:
    """``--param NAME=VALUE`` (repeatable): a template parameter override; ``dict(args.param)``."""
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        type=_name_value,
        metavar="NAME=VALUE",
        help="template parameter override (repeatable)",
    )


def _name_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"--param takes NAME=VALUE, not {text!r}")
    return name, value
