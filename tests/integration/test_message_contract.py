"""The message contract's edge cases through the emulated queue, function and DLQ."""

from __future__ import annotations

import pytest

from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.sqs_event_source import QueueConsumer

pytestmark = pytest.mark.integration

POISON_BODIES = [
    "  \t bad id with spaces \r\n",
    "\u00a0download-1",  # a no-break space around an id is not ignored
    "download-1\u2003",
    "dównload-1",
    '"download-1"',
    '  {"download_id": "a/../b"}  \n',
    "x" * 300,
]


def test_poison_bodies_reach_the_dlq_byte_for_byte(stack: EmulatedStack, consumer: QueueConsumer, sandbox):
    for body in POISON_BODIES:
        stack.send_to_queue(body)
    assert consumer.run(until=lambda: len(stack.dead_letters()) == len(POISON_BODIES), timeout=20)
    letters = stack.dead_letters()
    assert sorted(d["body"] for d in letters) == sorted(POISON_BODIES)
    assert {d["attributes"]["error_code"] for d in letters} == {"poison"}
    assert [r for r in sandbox.requests if r.method == "POST"] == []


def test_json_whitespace_is_ignored_and_digits_or_null_are_ids(stack: EmulatedStack, consumer, sandbox):
    for download_id in ("null", "12345"):
        sandbox.script(download_id, answer_done_at_once=True)
    for body in ("\t null \r\n", "12345\n"):
        stack.send_to_queue(body)
    assert consumer.run(until=lambda: len(stack.outcome_events()) == 2, timeout=20)
    posted = sorted(r.path for r in sandbox.requests if r.method == "POST")
    assert posted == ["/download/12345", "/download/null"]
    assert stack.dead_letters() == []
