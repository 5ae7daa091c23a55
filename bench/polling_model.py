"""The cost model of figure 5: what a month of retried downloads costs in Step Functions,
Lambda and Secrets Manager (us-east-1 list prices, no free tier), from measured runs."""

from __future__ import annotations

from typing import Any

# Cost model (us-east-1 list prices).
DOWNLOADS_PER_MONTH = 100_000
MIX = {10: 0.50, 60: 0.30, 600: 0.15, 3600: 0.05}  # share of retried jobs by how long they run
SFN_PER_TRANSITION = 0.025 / 1000
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = 0.0000166667
SECRETS_PER_CALL = 0.05 / 10_000
ASSUMED_API_LATENCY_S = 0.1  # added to each measured invocation: one VideoDB call each
WARM_CONTAINERS = 2  # assumed: one retry and one poll container warm all month
SECONDS_PER_MONTH = 30 * 24 * 3600


def monthly_cost(
    runs: dict[float, dict[str, Any]], retry_s: float, retry_gb: float, memory_gb: float, ttl: int
) -> dict[str, float]:
    """Monthly cost of retrying DOWNLOADS_PER_MONTH downloads with the MIX of job durations.

    ``runs`` holds one measured run per duration: its billed transitions, its poll invocations'
    measured seconds (each plus ASSUMED_API_LATENCY_S per poll made) and the seconds it slept
    inside the poll function (billed as Lambda duration like any other).
    """

    def mean(value: Any) -> float:
        return sum(MIX[d] * value(runs[d]) for d in MIX)

    mean_transitions = mean(lambda r: r["transitions"])
    mean_polls = mean(lambda r: r["polls"])
    mean_invocations = mean(lambda r: len(r["poll_invocation_s"]))
    mean_poll_s = mean(
        lambda r: sum(r["poll_invocation_s"]) + r["polls"] * ASSUMED_API_LATENCY_S + r["slept_in_function_s"]
    )
    step_functions = DOWNLOADS_PER_MONTH * mean_transitions * SFN_PER_TRANSITION
    # One retry invocation per download (batches of one at this traffic), plus the polls'.
    lambda_requests = DOWNLOADS_PER_MONTH * (1 + mean_invocations) * LAMBDA_PER_REQUEST
    gb_seconds = DOWNLOADS_PER_MONTH * (retry_s * retry_gb + mean_poll_s * memory_gb)
    lambda_duration = gb_seconds * LAMBDA_PER_GB_SECOND
    secret_calls = WARM_CONTAINERS * SECONDS_PER_MONTH / max(ttl, 1)
    secrets = secret_calls * SECRETS_PER_CALL
    return {
        "mean_transitions": mean_transitions,
        "mean_polls": mean_polls,
        "mean_poll_invocations": mean_invocations,
        "mean_poll_seconds": mean_poll_s,
        "step_functions": step_functions,
        "lambda_requests": lambda_requests,
        "lambda_duration": lambda_duration,
        "secrets_manager": secrets,
        "secret_calls": secret_calls,
        "total": step_functions + lambda_requests + lambda_duration + secrets,
    }


def cost_sum(cost: dict[str, float]) -> str:
    """One design's monthly cost, service by service."""
    lambda_total = cost["lambda_requests"] + cost["lambda_duration"]
    return (
        f"SFN ${cost['step_functions']:.2f} + Lambda ${lambda_total:.2f} "
        f"+ Secrets ${cost['secrets_manager']:.2f} = ${cost['total']:.2f}"
    )
