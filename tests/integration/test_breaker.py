"""The circuit breaker through the emulated stack: the real retry and breaker functions, the
event source mapping's State honoured by the queue consumer, the sandbox down or flapping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from videodb_retry_local.load.outage import OutageConfig, run_outage
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

# Small thresholds: 5 records in a 2 s window, a probe on every tick.
BREAKER = {
    "BreakerWindowSeconds": 2,
    "BreakerMinAttempts": 5,
    "BreakerFailureRatio": "0.8",
    "BreakerProbeIntervalSeconds": 0,
    "RedeliveryFirstDelaySeconds": 1,
    "RedeliveryMaxDelaySeconds": 1,
    "RetryMaxConcurrency": 5,  # room for the ramp to double (the default is 2)
}


def down(method: str, path: str) -> int | None:
    return 503


@pytest.fixture
def stack(make_stack: Callable[..., EmulatedStack]) -> EmulatedStack:
    return make_stack(**BREAKER)


@pytest.fixture
def consumer(stack: EmulatedStack) -> QueueConsumer:
    return QueueConsumer(stack, redelivery_seconds=None)


def tick(stack: EmulatedStack, **event: Any) -> dict[str, Any]:
    return stack.invoke("BreakerFunction", {"action": "tick", **event})


def mapping(stack: EmulatedStack, consumer: QueueConsumer) -> dict[str, Any]:
    return stack.client("lambda").get_event_source_mapping(UUID=consumer.mapping_uuid)


def breaker_events(stack: EmulatedStack) -> list[str]:
    return [e["detail-type"] for e in stack.outcome_events() if e["detail-type"].startswith("Retry ")]


def enqueue(
    stack: EmulatedStack, sandbox: SandboxServer, count: int, prefix: str = "download-b"
) -> list[str]:
    ids = [f"{prefix}{i:03d}" for i in range(count)]
    for download_id in ids:
        sandbox.script(download_id, answer_done_at_once=True)
        stack.send_to_queue(json.dumps({"download_id": download_id}))
    return ids


def succeeded(stack: EmulatedStack) -> set[str]:
    return {
        e["detail"]["download_id"]
        for e in stack.outcome_events()
        if e["detail-type"] == "Download Retry Succeeded"
    }


def consume_for(consumer: QueueConsumer, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not consumer.poll_once():
            time.sleep(0.05)


def open_breaker(stack: EmulatedStack, sandbox: SandboxServer, consumer: QueueConsumer) -> list[str]:
    """VideoDB down, 10 downloads failing: the tick after the failures opens the breaker."""
    sandbox.set_outage(down)
    ids = enqueue(stack, sandbox, 10)
    consume_for(consumer, 1.5)
    report = tick(stack)
    assert report["mode"] == "open", report
    assert "failed transiently" in report["reason"]
    return ids


def test_open_pauses_the_queue_and_receive_counts_stop_growing(stack, sandbox, consumer):
    ids = open_breaker(stack, sandbox, consumer)
    assert mapping(stack, consumer)["State"] == "Disabled"
    assert breaker_events(stack) == ["Retry Paused"]
    paused = next(e for e in stack.outcome_events() if e["detail-type"] == "Retry Paused")
    assert paused["source"] == "videodb-retry" and paused["detail"]["state"] == "open"
    assert paused["detail"]["reason"] and paused["detail"]["since"] > 0
    receives = len(consumer.deliveries)
    consume_for(consumer, 2.5)
    assert len(consumer.deliveries) == receives, "a disabled mapping must receive nothing"
    sqs = stack.client("sqs")
    waiting = sqs.get_queue_attributes(QueueUrl=stack.retry_queue_url, AttributeNames=["All"])["Attributes"]
    assert int(waiting["ApproximateNumberOfMessages"]) + int(
        waiting["ApproximateNumberOfMessagesNotVisible"]
    ) == len(ids)
    assert not stack.dead_letters()


def test_probes_while_open_are_one_cheap_call_per_tick(stack, sandbox, consumer):
    open_breaker(stack, sandbox, consumer)
    before = len(sandbox.requests)
    for _ in range(3):
        report = tick(stack)
        assert report["mode"] == "open" and report["probed"]
    probes = sandbox.requests[before:]
    assert [(r.method, r.path, r.query.get("count")) for r in probes] == [("GET", "/download", "1")] * 3
    assert report["probes"] == 3


def test_close_resumes_with_a_ramp_and_every_download_succeeds(stack, sandbox, consumer):
    ids = open_breaker(stack, sandbox, consumer)
    sandbox.set_outage(None)
    report = tick(stack)
    assert report["mode"] == "closed" and report["announced"] == "Retry Resumed"
    first = mapping(stack, consumer)
    assert first["State"] == "Enabled" and first["ScalingConfig"]["MaximumConcurrency"] == 2
    ramp = [tick(stack)["concurrency"] for _ in range(3)]
    assert ramp == [4, 5, 5]  # doubling, up to RetryMaxConcurrency (5)
    assert mapping(stack, consumer)["ScalingConfig"]["MaximumConcurrency"] == 5
    assert consumer.run(lambda: succeeded(stack) >= set(ids), timeout=30)
    assert not stack.dead_letters()
    assert breaker_events(stack) == ["Retry Paused", "Retry Resumed"]


def test_opened_by_hand_stays_open_without_probes_until_closed_by_hand(stack, sandbox, consumer):
    report = stack.invoke("BreakerFunction", {"action": "open", "reason": "VideoDB maintenance 02:00"})
    assert report["mode"] == "open" and report["manual"]
    assert report["reason"] == "opened by hand: VideoDB maintenance 02:00"
    assert mapping(stack, consumer)["State"] == "Disabled"
    ids = enqueue(stack, sandbox, 3, "download-m")
    before = len(sandbox.requests)
    for _ in range(3):
        assert tick(stack)["mode"] == "open"
    consume_for(consumer, 1.0)
    assert len(sandbox.requests) == before, "no probe, no retry while paused by hand"
    report = stack.invoke("BreakerFunction", {"action": "close", "reason": "maintenance over"})
    assert report["mode"] == "closed" and not report["manual"]
    assert consumer.run(lambda: succeeded(stack) >= set(ids), timeout=30)
    assert breaker_events(stack) == ["Retry Paused", "Retry Resumed"]
    assert stack.invoke("BreakerFunction", {"action": "status"})["mode"] == "closed"


def test_an_unknown_action_fails_the_invocation(stack):
    from videodb_retry_local.stack.lambda_runtime import FunctionError

    with pytest.raises(FunctionError, match="unknown action"):
        stack.invoke("BreakerFunction", {"action": "explode"})


def test_a_refused_mapping_switch_fails_the_tick_and_is_not_stored(stack, sandbox, consumer, monkeypatch):
    from videodb_retry_local.stack.lambda_runtime import FunctionError

    sandbox.set_outage(down)
    enqueue(stack, sandbox, 10)
    consume_for(consumer, 1.5)
    module = stack.functions["BreakerFunction"].module

    def refuse(*args: Any, **kwargs: Any) -> bool:
        from videodb_retry.adapters.breaker_aws import SwitchRefused

        raise SwitchRefused("UpdateEventSourceMapping refused: AccessDeniedException: not allowed")

    monkeypatch.setattr(module.breaker._switch, "apply", refuse)
    with pytest.raises(FunctionError, match="AccessDenied"):
        tick(stack)
    assert stack.invoke("BreakerFunction", {"action": "status"})["mode"] == "closed"
    assert breaker_events(stack) == []


def test_flapping_api_loses_nothing_and_dead_letters_nothing():
    # Down 10 virtual minutes, up 5, for an hour; 60 downloads at once, a few workflows polling.
    config = OutageConfig(
        downloads=60,
        outage_hours=1.0,
        scale=120.0,
        in_flight=2,
        workflow_share=0.2,
        timeout_seconds=240.0,
        flapping=(600.0, 300.0),
    )
    result = run_outage(config, breaker=True)
    assert result.lost == 0 and result.unfinished == 0, result.line()
    assert result.transient_exhausted == 0 and result.other_dead_letters == 0, result.line()
    assert result.succeeded == result.downloads
    assert result.paused >= 1 and result.resumed >= 1


def test_make_outage_small_shows_the_goal_and_the_contrast():
    """A small `make outage`: 3 virtual hours down. With the breaker nothing is lost or
    exhausted, messages are received a few times only and VideoDB hears about one probe a
    minute; without it every message keeps being received (how many reach the DLQ within the
    outage depends on how fast this machine runs the consumer, so that is not asserted)."""
    config = OutageConfig(
        downloads=40, outage_hours=3.0, scale=240.0, in_flight=2, workflow_share=0.1, timeout_seconds=300.0
    )
    with_breaker = run_outage(config, breaker=True)
    assert (with_breaker.lost, with_breaker.transient_exhausted, with_breaker.unfinished) == (0, 0, 0), (
        with_breaker.line()
    )
    assert with_breaker.other_dead_letters == 0 and with_breaker.succeeded == with_breaker.downloads
    assert with_breaker.paused >= 1 and with_breaker.resumed >= 1
    minutes_down = config.outage_hours * 60
    assert 0 < with_breaker.calls_while_down["probes"] <= minutes_down + 1
    assert with_breaker.max_receive_count <= 4, with_breaker.line()
    without = run_outage(config, breaker=False)
    assert without.lost == 0 and without.paused == 0, without.line()
    assert without.max_receive_count > with_breaker.max_receive_count + 2, without.line()
    assert without.calls_while_down["retries"] > 2 * with_breaker.calls_while_down["retries"], without.line()
