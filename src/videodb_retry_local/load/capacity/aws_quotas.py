"""Every AWS behaviour, quota and price the capacity model relies on: one table, one source each.

Each :class:`Quota` row names the value the model uses, what it does with it, and the page it
comes from (title and URL, checked 2026-12). A row marked ``assumed`` is a value the pages do
not state as a number (the model's choice, said so in the README and ``spec/NOTES.md``).
``QUOTAS`` and ``PRICES`` are read by name (:func:`value`, :func:`price`): the model never
writes one of these numbers anywhere else. ``python -m videodb_retry_local.load.capacity --quotas``
prints the table (the README links to it).
"""

from __future__ import annotations

from dataclasses import dataclass

LAMBDA_QUOTAS = ("Lambda quotas", "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html")
LAMBDA_SCALING = (
    "Lambda scaling behavior",
    "https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html",
)
LAMBDA_RESERVED = (
    "Configuring reserved concurrency for a function",
    "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html",
)
LAMBDA_SQS = (
    "Using Lambda with Amazon SQS (scaling, maximum concurrency)",
    "https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html",
)
SFN_LAMBDA = (
    "Handling errors in Step Functions workflows (Lambda.TooManyRequestsException)",
    "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html",
)
SFN_QUOTAS = (
    "Step Functions service quotas",
    "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html",
)
SCHEDULER_RETRY = (
    "EventBridge Scheduler: configuring a retry policy",
    "https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-retry-policy.html",
)
SQS_QUOTAS = (
    "Amazon SQS standard queue quotas",
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html",
)
SQS_VISIBILITY = (
    "Amazon SQS visibility timeout",
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html",
)
SQS_DLQ = (
    "Using dead-letter queues in Amazon SQS (maxReceiveCount)",
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html",
)
EVENTS_QUOTAS = (
    "Amazon EventBridge quotas",
    "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html",
)
DDB_PARTITIONS = (
    "DynamoDB: partitions and data distribution (per-partition throughput)",
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.Partitions.html",
)
SECRETS_QUOTAS = (
    "AWS Secrets Manager quotas",
    "https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html",
)
PRICING = {
    "lambda": ("AWS Lambda pricing", "https://aws.amazon.com/lambda/pricing/"),
    "sfn": ("AWS Step Functions pricing", "https://aws.amazon.com/step-functions/pricing/"),
    "sqs": ("Amazon SQS pricing", "https://aws.amazon.com/sqs/pricing/"),
    "ddb": ("Amazon DynamoDB pricing (on-demand)", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "events": ("Amazon EventBridge pricing", "https://aws.amazon.com/eventbridge/pricing/"),
    "secrets": ("AWS Secrets Manager pricing", "https://aws.amazon.com/secrets-manager/pricing/"),
}


@dataclass(frozen=True)
class Quota:
    """One behaviour or quota: the value used, what the model does with it, and its page."""

    name: str
    value: float
    unit: str
    behaviour: str
    source: tuple[str, str]
    assumed: bool = False


QUOTAS: tuple[Quota, ...] = (
    Quota(
        "lambda_account_concurrency",
        1000,
        "executions",
        "all functions of the account and Region share it; an invoke beyond it is throttled (429)",
        LAMBDA_QUOTAS,
    ),
    Quota(
        "lambda_new_account_concurrency",
        10,
        "executions",
        "new accounts have 'reduced concurrency' (the page gives no number); 10 is the least reported",
        LAMBDA_QUOTAS,
        assumed=True,
    ),
    Quota(
        "lambda_unreserved_minimum",
        100,
        "executions",
        "reserved concurrency may leave no less than 100 unreserved: a deploy that would is refused",
        LAMBDA_RESERVED,
    ),
    Quota(
        "lambda_scaling_per_10s",
        1000,
        "instances",
        "a function adds at most 1,000 environments per 10 s (refilled continuously); beyond, throttled",
        LAMBDA_SCALING,
    ),
    Quota(
        "esm_max_concurrency_min",
        2,
        "invocations",
        "MaximumConcurrency is 2..1,000; the mapping never invokes beyond it",
        LAMBDA_SQS,
    ),
    Quota(
        "esm_throttle_visibility",
        1,
        "flag",
        "a batch the account throttles stays in flight until its visibility timeout; its receive is spent",
        LAMBDA_SQS,
    ),
    Quota(
        "sfn_lambda_throttle",
        1,
        "flag",
        "a throttled lambda:invoke raises Lambda.TooManyRequestsException into the Task's Retry/Catch",
        SFN_LAMBDA,
    ),
    Quota(
        "scheduler_retry_attempts",
        185,
        "attempts",
        "Scheduler retries a throttled target by its retry policy (default 185; the breaker's: 0)",
        SCHEDULER_RETRY,
    ),
    Quota(
        "sqs_inflight_standard",
        120000,
        "messages",
        "a standard queue holds about 120,000 messages in flight; beyond, receives get nothing",
        SQS_QUOTAS,
    ),
    Quota("sqs_max_delay", 900, "seconds", "DelaySeconds is at most 15 min", SQS_QUOTAS),
    Quota(
        "sqs_max_visibility",
        43200,
        "seconds",
        "a visibility timeout ends at most 12 h after the receive",
        SQS_VISIBILITY,
    ),
    Quota(
        "redrive",
        1,
        "flag",
        "a message past maxReceiveCount receives moves to the DLQ on its next receive (no reason)",
        SQS_DLQ,
    ),
    Quota(
        "sfn_start_bucket",
        1300,
        "requests",
        "StartExecution token bucket size (us-east-1); a start beyond it is throttled",
        SFN_QUOTAS,
    ),
    Quota("sfn_start_refill", 300, "requests/s", "StartExecution refill rate (us-east-1)", SFN_QUOTAS),
    Quota(
        "sfn_transition_bucket",
        5000,
        "transitions",
        "state-transition token bucket (Standard, us-east-1); beyond it transitions are delayed",
        SFN_QUOTAS,
    ),
    Quota(
        "sfn_transition_refill",
        5000,
        "transitions/s",
        "state-transition refill rate (Standard, us-east-1)",
        SFN_QUOTAS,
    ),
    Quota(
        "sfn_open_executions",
        1000000,
        "executions",
        "open Standard executions per account and Region",
        SFN_QUOTAS,
    ),
    Quota(
        "events_put_rate",
        10000,
        "entries/s",
        "PutEvents throughput (us-east-1; lower in other Regions)",
        EVENTS_QUOTAS,
    ),
    Quota(
        "ddb_partition_wcu",
        1000,
        "writes/s",
        "one partition (one hot key) takes at most 1,000 write units per second; beyond it, throttled",
        DDB_PARTITIONS,
    ),
    Quota(
        "ddb_partition_rcu",
        3000,
        "reads/s",
        "one partition takes at most 3,000 read units per second",
        DDB_PARTITIONS,
    ),
    Quota(
        "secrets_get_rate", 10000, "requests/s", "GetSecretValue and DescribeSecret together", SECRETS_QUOTAS
    ),
)

PRICES: dict[str, tuple[float, str, tuple[str, str]]] = {
    "lambda_gb_second": (0.0000166667, "USD per GB-second (x86)", PRICING["lambda"]),
    "lambda_request": (0.20 / 1e6, "USD per request", PRICING["lambda"]),
    "sfn_transition": (0.025 / 1000, "USD per state transition (Standard)", PRICING["sfn"]),
    "sqs_request": (0.40 / 1e6, "USD per request (standard queue)", PRICING["sqs"]),
    "ddb_write": (0.625 / 1e6, "USD per write request unit (on-demand)", PRICING["ddb"]),
    "ddb_read": (0.125 / 1e6, "USD per read request unit (on-demand)", PRICING["ddb"]),
    "events_put": (1.00 / 1e6, "USD per custom event put", PRICING["events"]),
    "secrets_call": (0.05 / 10000, "USD per API call", PRICING["secrets"]),
}
_BY_NAME = {quota.name: quota for quota in QUOTAS}


def value(name: str) -> float:
    """The value of the quota ``name`` (KeyError for a name the table does not have)."""
    return _BY_NAME[name].value


def price(name: str) -> float:
    """The price ``name`` in USD per unit (no free tier counted)."""
    return PRICES[name][0]


def table_markdown() -> str:
    """The table as Markdown: name, value, what the model does, source page."""
    lines = ["| Quota / behaviour | Value | What the model does | Source |", "|---|---|---|---|"]
    for quota in QUOTAS:
        mark = " (assumed)" if quota.assumed else ""
        title, url = quota.source
        lines.append(
            f"| `{quota.name}` | {quota.value:g} {quota.unit}{mark} | {quota.behaviour} | [{title}]({url}) |"
        )
    for name, (amount, unit, (title, url)) in PRICES.items():
        lines.append(f"| `{name}` | {amount:.10g} | {unit} | [{title}]({url}) |")
    return "\n".join(lines)
