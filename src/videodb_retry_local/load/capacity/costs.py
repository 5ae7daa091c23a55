"""What a run costs on AWS, at the prices of ``aws_quotas.PRICES`` (no free tier).

Lambda: GB-seconds (every invocation's held duration at the function's memory) and requests
(throttled invocations are not billed); Step Functions: billed transitions; SQS: requests (sends,
receives, deletes, visibility changes; the mapping's empty long polls are left out); DynamoDB:
one write per ledger step and per counting or gate update, and as many reads (on-demand);
EventBridge: entries put; Secrets Manager: one read per execution environment created, again
every ``SecretCacheTtlSeconds`` while the run lasts (an upper bound: environments also go idle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from videodb_retry_local.load.capacity.aws_quotas import price

if TYPE_CHECKING:
    from videodb_retry_local.load.capacity.stack import Stack


def cost_usd(stack: Stack, simulated_seconds: float) -> float:
    """The run's cost in USD."""
    functions = stack.account.functions.values()
    lambda_cost = sum(
        f.gb_seconds * price("lambda_gb_second") + f.invocations * price("lambda_request") for f in functions
    )
    sfn = stack.executions.transitions * price("sfn_transition")
    sqs = stack.queue.requests * price("sqs_request")
    ddb = stack.hot.total_writes * (price("ddb_write") + price("ddb_read"))
    events = stack.record.puts * price("events_put")
    ttl = max(1, stack.deployed.retry.settings.secret_cache_ttl_seconds)
    reads = sum(f.environments for f in functions) * max(1.0, simulated_seconds / ttl)
    secrets = reads * price("secrets_call")
    return lambda_cost + sfn + sqs + ddb + events + secrets
