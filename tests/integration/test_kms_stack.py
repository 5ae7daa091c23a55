"""The emulated stack built with a customer-managed key (KmsKeyArn): the Conditions and Fn::If
that choose the encryption resolve, the queues carry the key instead of SQS-managed SSE, and a
retry still runs end to end. (moto does not enforce KMS: the IAM side is checked on the SAM
translation in tests/unit/test_template_kms.py.)"""

from __future__ import annotations

import pytest

from videodb_retry_local.stack.sqs_event_source import QueueConsumer

from .conftest import final_outcome, outcomes_of

pytestmark = pytest.mark.integration

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_with_a_customer_key_the_queues_use_it_and_a_retry_succeeds(make_stack, sandbox):
    stack = make_stack(KmsKeyArn=KEY)
    sqs = stack.client("sqs")
    for url in (stack.retry_queue_url, stack.dead_letter_queue_url):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        # (moto reports SqsManagedSseEnabled "true" for any queue; the template leaves it out
        # with a key, which the SAM-translation test checks.)
        assert attributes["KmsMasterKeyId"] == KEY
    sandbox.script("dl-kms", processing_seconds=1)
    stack.send_failure_event("dl-kms", error="stream timed out")
    consumer = QueueConsumer(stack, redelivery_seconds=1)
    assert consumer.run(until=final_outcome(stack, "dl-kms"), timeout=20)
    (event,) = outcomes_of(stack, "dl-kms")
    assert event["detail"]["status"] == "done"
