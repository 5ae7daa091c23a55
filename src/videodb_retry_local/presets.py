"""Template parameter presets of the local runs, in one place: each shrinks the template's
waits (or sizes) for one use, and says why."""

from __future__ import annotations

# Every wait is a template parameter, shrunk so that a workflow lasts seconds, not hours. Two
# attempts per download keep the "fails every time" and "never finishes" paths short while
# still re-queueing once; five receives (the template's minimum) bound a download whose API
# stays down.
SOAK_PARAMETERS: dict[str, str] = {
    "PollFirstWaitSeconds": "1",
    "PollBackoffFactor": "1",
    "PollMaxWaitSeconds": "1",
    "PollDeadlineSeconds": "3",
    "MaxRetryAttempts": "2",
    "RequeueDelaySeconds": "1",
    "MaxReceiveCount": "5",
    "RedeliveryFirstDelaySeconds": "1",
    "RedeliveryBackoffFactor": "2",
    "RedeliveryMaxDelaySeconds": "2",
    "LogLevel": "ERROR",
}
