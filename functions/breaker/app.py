"""Breaker function: the retry queue's circuit breaker.

On its schedule (every minute) it opens the breaker when most recent retries failed
transiently (disabling the retry queue's event source mapping), probes VideoDB while open,
and resumes with a ramp when VideoDB answers. Invoked with ``{"action": "open" | "close" |
"status", "reason": "..."}`` it is the operator's switch (``videodb-retry breaker``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from videodb_retry.adapters.breaker_aws import DynamoDBBreakerStore, MappingSwitch, PauseAnnouncer
from videodb_retry.adapters.request_gate_aws import DynamoDBRequestGate
from videodb_retry.adapters.videodb_on_first_use import VideoDBOnFirstUse
from videodb_retry.observability import logger, metrics
from videodb_retry.rules.budgets import RequestKind
from videodb_retry.settings import current
from videodb_retry.steps.breaker_control import Breaker, probe_answered, thresholds_from_env
from videodb_retry.steps.gated_videodb import GatedVideoDB

settings = current()
# Only a probe (breaker open) calls VideoDB: requests and the key's Parameters load then. The
# probe takes an intake token from the shared request budget, and does not wait for one.
videodb = GatedVideoDB(
    VideoDBOnFirstUse(settings),
    DynamoDBRequestGate(settings.idempotency_table_name, settings.budgets),
    now=time.time,
    sleep=time.sleep,
    list_kind=RequestKind.PROBE,
)
MAX_REASON_CHARS = 500


def probe() -> bool:
    """One cheap, read-only call (the first download of the list): did VideoDB answer?"""
    return probe_answered(videodb)


breaker = Breaker(
    thresholds=thresholds_from_env(),
    store=DynamoDBBreakerStore(settings.idempotency_table_name),
    # The retry queue's event source mapping, by the id the template gives (its Ref).
    switch=MappingSwitch(os.environ["RETRY_QUEUE_MAPPING_ID"]),
    announcer=PauseAnnouncer(settings.event_bus_name, settings.outcome_event_source),
    probe=probe,
    clock=time.time,
)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A scheduled tick, or an operator's ``open`` / ``close`` / ``status``."""
    action = event.get("action", "tick") if isinstance(event, dict) else "tick"
    reason = (
        str(event.get("reason") or "no reason given")[:MAX_REASON_CHARS] if isinstance(event, dict) else ""
    )
    if action == "open":
        report = breaker.open_by_hand(reason)
    elif action == "close":
        report = breaker.close_by_hand(reason)
    elif action == "status":
        report = breaker.status()
    elif action == "tick":
        report = breaker.tick()
    else:
        raise ValueError(f"unknown action {action!r}: tick, open, close or status")
    answer = report.to_dict()  # the typed report's JSON form, only here at the edge
    logger.info("breaker", extra={"action": action, **answer})
    return answer
