"""What the strict AWS layer found in the pipeline, each as a run through the emulated stack
with the layer on (``local_aws``): every one of these failed before its fix."""

from __future__ import annotations

import pytest
from videodb_retry.rules.sanitise import clean_text

from videodb_retry_local.stack import aws_limits
from videodb_retry_local.stack.aws_limits import LimitExceeded
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox import sandbox_downloads as sandbox_module

from .conftest import dead_letters_of


def violations() -> list[aws_limits.Violation]:
    layer = aws_limits.active()
    assert layer is not None, "the integration tests run with the strict layer on"
    return list(layer.violations)


CONTROL_TEXTS = [
    "not found\x00",
    "\x1b[31mgone\x1b[0m",
    "bad\x0bid\x0c",
    "half \ud800 surrogate",
    "x" * 5000 + "\x07",
]


@pytest.mark.parametrize("text", CONTROL_TEXTS)
def test_a_404_whose_message_holds_refused_characters_is_dead_lettered_with_it(
    stack, consumer, sandbox, monkeypatch, text
):
    # VideoDB's message goes into the dead letter's reason attribute; real SQS refuses these
    # characters, so before the fix the DLQ send failed and the record was retried until
    # transient_exhausted.
    original = sandbox_module.scripted_error

    def scripted(status, script, what):
        answer = original(status, script, what)
        answer.body["message"] = text
        return answer

    monkeypatch.setattr(sandbox_module, "scripted_error", scripted)
    sandbox.script("dl-control", retry_status=404)
    stack.send_to_queue("dl-control")
    assert consumer.run(until=lambda: bool(stack.dead_letters()), timeout=20)
    (letter,) = dead_letters_of(stack, download_id="dl-control")
    assert letter["attributes"]["error_code"] == "http_404"
    reason = letter["attributes"]["reason"]
    assert not aws_limits._SQS_REFUSED_CHARS.search(reason) and len(reason) <= 1024
    assert clean_text(text)[:40] in reason  # VideoDB's message, refused characters replaced
    assert violations() == []
    assert len(sandbox.retry_calls("dl-control")) == 1  # dead-lettered at once, not retried


def test_a_retry_after_beyond_12_hours_is_capped_within_12_hours_of_the_receive(make_stack, sandbox):
    # 43,200 s from the call is always refused: SQS counts 12 h from the receive. Before the
    # fix the refusal was swallowed and the record came back after the queue's 360 s.
    stack = make_stack()
    consumer = QueueConsumer(stack, redelivery_seconds=None)  # leave the function's own visibility
    sandbox.script("dl-later", retry_status=429, retry_after=86_400)
    stack.send_to_queue("dl-later")
    consumer.poll_once()
    assert [d.failed for d in consumer.deliveries] == [True]
    assert violations() == []
    counts = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.retry_queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_a_visibility_refused_by_aws_is_logged_counted_and_fails_the_run(
    make_stack, sandbox, caplog, monkeypatch
):
    from videodb_retry.steps import record_delivery as delivery

    counted: list[str] = []
    monkeypatch.setattr(delivery, "count", lambda name, value=1: counted.append(name))
    stack = make_stack(LogLevel="INFO")
    consumer = QueueConsumer(stack, redelivery_seconds=None)
    layer = aws_limits.active()
    assert layer is not None
    sandbox.script("dl-blip", retry_status=503)
    stack.send_to_queue("dl-blip")
    layer.visibility_left = lambda handle: 0.0  # type: ignore[method-assign]  # as if 12 h had passed
    try:
        consumer.poll_once()
    finally:
        del layer.visibility_left
    found = layer.take_violations()  # taken: this test provokes the refusal on purpose
    assert [v.operation for v in found] == ["ChangeMessageVisibility"]
    assert "within 12 h of the receive" in found[0].limit
    refusals = [r for r in caplog.records if r.getMessage() == "AWS refused the record's visibility change"]
    assert refusals and "InvalidParameterValue" in refusals[0].__dict__["error"]  # the reason
    assert "AwsRefusals" in counted


def test_the_layer_refuses_what_moto_would_accept(stack):
    with pytest.raises(LimitExceeded, match="DelaySeconds 0-900"):
        stack.client("sqs").send_message(QueueUrl=stack.retry_queue_url, MessageBody="x", DelaySeconds=901)
    assert [v.limit for v in aws_limits.active().take_violations()] == ["DelaySeconds 0-900"]  # type: ignore[union-attr]


def test_same_id_twice_in_one_concurrent_batch_is_posted_once(make_stack, sandbox):
    # With atomic conditional writes (as DynamoDB's), the ledger lets one copy through.
    stack = make_stack(RetryBatchConcurrency=4)
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    for run in range(6):
        download_id = f"dl-twin-{run}"
        sandbox.script(download_id, delay_seconds=0.2, answer_done_at_once=True)
        stack.client("sqs").send_message_batch(
            QueueUrl=stack.retry_queue_url,
            Entries=[{"Id": str(i), "MessageBody": download_id} for i in range(2)],
        )
        assert consumer.run(until=lambda: not _backlog(stack), timeout=20)
        assert len(sandbox.retry_calls(download_id)) == 1, f"run {run}: POSTed twice"


def _backlog(stack) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.retry_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())
