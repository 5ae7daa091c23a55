"""Poll function: one step of the retry workflow's wait/poll loop.

Step Functions invokes it with the workflow state; it polls the job once and returns the
next state (keep waiting, or finished with the outcome to announce).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from videodb_retry.api_key import ApiKeyProvider
from videodb_retry.client import VideoDBClient
from videodb_retry.observability import Metric, count, logger, metrics
from videodb_retry.poll import poll_step
from videodb_retry.settings import current

settings = current()
ENDING_METRICS = {
    "done": Metric.RETRIES_SUCCEEDED,
    "failed": Metric.RETRIES_FAILED,
    "timed_out": Metric.RETRIES_TIMED_OUT,
}
videodb = VideoDBClient(settings, ApiKeyProvider(settings))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Poll the job in ``event`` once; return the workflow's next state."""
    logger.append_keys(download_id=event.get("download_id"), job_id=event.get("job_id"))
    state = poll_step(event, videodb, settings, now=time.time())
    count(Metric.POLLS)
    if state["status"] in ENDING_METRICS:
        count(ENDING_METRICS[state["status"]])
    logger.info("polled", extra={"status": state["status"], "polls": state["polls"]})
    return state
