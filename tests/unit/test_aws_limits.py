"""The strict AWS layer: each limit refuses what AWS refuses and lets through what it accepts."""

from __future__ import annotations

import contextlib
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from videodb_retry_local.stack import aws_limits
from videodb_retry_local.stack.aws_limits import LimitExceeded, LimitsViolated, StrictAws, strict_aws

ALLOWED = st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\ufffe\uffff").filter(
    lambda c: c in "\t\n\r" or ord(c) >= 0x20
)
REFUSED = st.sampled_from([chr(c) for c in (*range(0, 9), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF)])


def check(operation: str, params: dict) -> list[aws_limits.Violation]:
    """What the layer finds in one request (no call made)."""
    strict = StrictAws()
    with contextlib.suppress(LimitExceeded):
        strict.before(operation, params)
    return strict.take_violations()


@given(st.text(ALLOWED, min_size=1, max_size=50))
def test_sqs_accepts_every_allowed_character(text):
    assert (
        check(
            "SendMessage",
            {"MessageBody": text, "MessageAttributes": {"a": {"DataType": "String", "StringValue": text}}},
        )
        == []
    )


@given(st.text(ALLOWED, max_size=20), REFUSED, st.text(ALLOWED, max_size=20), st.booleans())
def test_sqs_refuses_a_character_outside_the_xml_set_in_body_or_attribute(before, bad, after, in_body):
    text = before + bad + after
    params = (
        {"MessageBody": text}
        if in_body
        else {
            "MessageBody": "ok",
            "MessageAttributes": {"reason": {"DataType": "String", "StringValue": text}},
        }
    )
    (found,) = check("SendMessage", params)
    assert "#x9 #xA #xD" in found.limit and f"U+{ord(bad):04X}" in found.value
    assert found.source.endswith("quotas-messages.html")


def test_sqs_refuses_more_than_ten_attributes_and_a_message_over_256_kib():
    attrs = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}
    assert [v.limit for v in check("SendMessage", {"MessageBody": "x", "MessageAttributes": attrs})] == [
        "at most 10 message attributes"
    ]
    # The attributes count too: a body just under 256 KiB plus one attribute is over.
    body = "x" * (256 * 1024 - 10)
    big = {
        "MessageBody": body,
        "MessageAttributes": {"reason": {"DataType": "String", "StringValue": "y" * 20}},
    }
    (found,) = check("SendMessage", big)
    assert "262144 bytes" in found.limit
    assert check("SendMessage", {"MessageBody": "x" * (256 * 1024)}) == []


@pytest.mark.parametrize(("delay", "refused"), [(0, False), (900, False), (901, True), (-1, True)])
def test_sqs_delay_seconds_is_at_most_900(delay, refused):
    assert bool(check("SendMessage", {"MessageBody": "x", "DelaySeconds": delay})) is refused
    batch = {"Entries": [{"Id": "1", "MessageBody": "x", "DelaySeconds": delay}]}
    assert bool(check("SendMessageBatch", batch)) is refused


def test_visibility_is_counted_from_the_receive():
    now = [1000.0]
    strict = StrictAws(clock=lambda: now[0])
    strict.after("ReceiveMessage", {}, {"Messages": [{"ReceiptHandle": "h1"}]})
    now[0] += 100
    strict.before("ChangeMessageVisibility", {"ReceiptHandle": "h1", "VisibilityTimeout": 43_100})
    with pytest.raises(LimitExceeded) as refused:
        strict.before("ChangeMessageVisibility", {"ReceiptHandle": "h1", "VisibilityTimeout": 43_101})
    assert "12 h of the receive (43100 s left)" in str(refused.value)
    # 43,200 exactly is always refused: some time has passed since the receive.
    with pytest.raises(LimitExceeded):
        strict.before("ChangeMessageVisibility", {"ReceiptHandle": "h1", "VisibilityTimeout": 43_200})


@given(st.text(st.characters(codec="ascii"), min_size=0, max_size=100))
def test_execution_names_are_1_to_80_characters_of_the_allowed_set(name):
    allowed = 1 <= len(name) <= 80 and not any(
        c in ' <>{}[]?*"#%\\^|~`$&,;:/' or ord(c) < 0x20 or c.isspace() or ord(c) == 0x7F for c in name
    )
    assert (check("StartExecution", {"stateMachineArn": "arn", "name": name}) == []) is allowed


def test_execution_input_is_at_most_256_kib():
    assert check("StartExecution", {"input": json.dumps({"a": "x" * (256 * 1024 - 8)})})
    assert check("StartExecution", {"input": json.dumps({"a": "x" * 1000})}) == []


@pytest.mark.parametrize(
    ("detail", "limit"),
    [
        ("[1, 2]", "Detail must be a JSON object"),
        ("not json", "Detail must be a JSON object"),
        (json.dumps({"a": "x" * (256 * 1024)}), "entry at most 262144 bytes"),
    ],
)
def test_eventbridge_entries_are_json_objects_of_at_most_256_kb(detail, limit):
    entry = {"Source": "s", "DetailType": "d", "Detail": detail}
    assert [v.limit for v in check("PutEvents", {"Entries": [entry]})] == [limit]
    assert check("PutEvents", {"Entries": [{**entry, "Detail": "{}"}]}) == []


def test_dynamodb_items_are_at_most_400_kb():
    assert check("PutItem", {"Item": {"id": {"S": "k"}, "data": {"S": "x" * (400 * 1024)}}})
    assert (
        check(
            "PutItem",
            {"Item": {"id": {"S": "k"}, "data": {"M": {"n": {"N": "12.5"}, "l": {"L": [{"BOOL": True}]}}}}},
        )
        == []
    )


def test_the_layer_reaches_every_client_and_fails_the_run_even_if_the_refusal_was_caught():
    with pytest.raises(LimitsViolated, match="DelaySeconds 0-900"), mock_aws(), strict_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")  # made after install, as moto's are
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        with pytest.raises(LimitExceeded):
            sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=901)
        # caught here, as code may catch AWS's refusal: the run still fails on exit


def test_a_tolerated_refusal_by_moto_fails_the_run():
    with (
        pytest.raises(LimitsViolated, match="ChangeMessageVisibility: refused by AWS"),
        mock_aws(),
        strict_aws(),
    ):
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        with pytest.raises(ClientError):
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="not-a-handle", VisibilityTimeout=5)


@settings(max_examples=25, deadline=None)
@given(st.text(ALLOWED, min_size=1, max_size=30))
def test_a_run_within_the_limits_leaves_no_violation(body):
    with mock_aws(), strict_aws() as strict:
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=body, DelaySeconds=900 if len(body) % 2 else 0)
        sqs.send_message(QueueUrl=url, MessageBody=body)
        (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=43_000
        )
    assert strict.violations == []
