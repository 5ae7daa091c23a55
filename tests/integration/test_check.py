"""`videodb-retry check` against the emulated stack, as `videodb-retry local --serve` builds it
(EmulatedStack plus its CloudFormation record), with each failure it must name."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from videodb_retry_cli.main import main
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.lambda_runtime import FunctionError
from videodb_retry_local.stack.moto_server import create_record_stack
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

from .conftest import API_KEY

CHECKS = ["api key", "retry queue mapping", "breaker", "alarm e-mail", "dead-letter queue", "sweeper"]


@pytest.fixture
def deployed(make_stack: Callable[..., EmulatedStack]) -> EmulatedStack:
    """A stack with the sweeper on and an alarm e-mail, recorded as CloudFormation outputs."""
    stack = make_stack(SweeperEnabled="true", AlarmEmail="ops@example.com")
    create_record_stack(stack)
    return stack


def check(
    capsys: pytest.CaptureFixture[str], stack: EmulatedStack
) -> tuple[int, dict[str, tuple[bool, str]]]:
    """Run the check (--json); the exit status and each line by name. The key is never printed."""
    code = main(["--stack-name", stack.ids.stack_name, "check", "--json"])
    out, err = capsys.readouterr()
    assert API_KEY not in out + err
    rows = json.loads(out)
    assert [row["check"] for row in rows] == CHECKS
    return code, {row["check"]: (row["ok"], row["detail"]) for row in rows}


def failing(lines: dict[str, tuple[bool, str]]) -> set[str]:
    return {name for name, (ok, _) in lines.items() if not ok}


def test_all_hold_after_a_sweep_and_each_line_says_so(capsys, deployed):
    code, lines = check(capsys, deployed)
    assert (code, failing(lines)) == (1, {"sweeper"})  # deployed, never swept yet
    assert "no sweep yet" in lines["sweeper"][1]

    deployed.invoke("SweeperFunction", {})
    code, lines = check(capsys, deployed)
    assert (code, failing(lines)) == (0, set())
    assert lines["sweeper"][1].startswith("last run ") and "stopped: end" in lines["sweeper"][1]

    # The plain form: one line per check, ok first.
    assert main(["--stack-name", deployed.ids.stack_name, "check"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()] == [f"ok   {name}" for name in CHECKS]
    assert API_KEY not in out


def test_a_key_videodb_refuses(capsys, deployed, sandbox: SandboxServer):
    deployed.invoke("SweeperFunction", {})
    sandbox.rotate_key("sk-rotated-elsewhere")
    code, lines = check(capsys, deployed)
    assert (code, failing(lines)) == (1, {"api key"})
    assert "refused the secret's key (401)" in lines["api key"][1]
    assert "Putting the API key in the secret" in lines["api key"][1]


def test_a_disabled_mapping(capsys, deployed):
    deployed.invoke("SweeperFunction", {})
    awslambda = deployed.client("lambda")
    queue_arn = deployed.outputs["RetryQueueArn"]
    (found,) = awslambda.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"]
    awslambda.update_event_source_mapping(UUID=found["UUID"], Enabled=False)
    code, lines = check(capsys, deployed)
    assert (code, failing(lines)) == (1, {"retry queue mapping"})
    assert f"--uuid {found['UUID']} --enabled" in lines["retry queue mapping"][1]


def test_an_open_breaker(capsys, deployed):
    deployed.invoke("SweeperFunction", {})
    deployed.invoke("BreakerFunction", {"action": "open", "reason": "VideoDB incident 7"})
    code, lines = check(capsys, deployed)
    # Opening pauses the mapping too: both say so.
    assert (code, failing(lines)) == (1, {"breaker", "retry queue mapping"})
    assert "VideoDB incident 7" in lines["breaker"][1] and "breaker close" in lines["breaker"][1]


def test_no_confirmed_subscription(capsys, deployed):
    deployed.invoke("SweeperFunction", {})
    sns = deployed.client("sns")
    topic = deployed.outputs["AlarmTopicArn"]
    for subscription in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    code, lines = check(capsys, deployed)
    assert (code, failing(lines)) == (1, {"alarm e-mail"})
    assert "no confirmed subscription" in lines["alarm e-mail"][1]


def test_no_alarm_email_at_all(capsys, make_stack):
    stack = make_stack()  # no AlarmEmail, no sweeper
    create_record_stack(stack)
    code, lines = check(capsys, stack)
    assert (code, failing(lines)) == (1, {"alarm e-mail"})
    assert "AlarmEmail=ADDRESS" in lines["alarm e-mail"][1]
    assert lines["sweeper"] == (True, "off (SweeperEnabled=false)")


def test_messages_in_the_dead_letter_queue(capsys, deployed):
    deployed.invoke("SweeperFunction", {})
    sqs = deployed.client("sqs")
    sqs.send_message(QueueUrl=deployed.outputs["DeadLetterQueueUrl"], MessageBody="dl-stuck")
    code, lines = check(capsys, deployed)
    assert (code, failing(lines)) == (1, {"dead-letter queue"})
    assert "~1 message(s) waiting" in lines["dead-letter queue"][1]
    assert "redrive --dry-run" in lines["dead-letter queue"][1]


def test_an_empty_secret_names_what_is_wrong_not_the_value(capsys, deployed):
    deployed.invoke("SweeperFunction", {})
    secrets = deployed.client("secretsmanager")
    secrets.put_secret_value(SecretId=deployed.outputs["ApiKeySecretArn"], SecretString='{"api_key": ""}')
    code, lines = check(capsys, deployed)
    assert (code, failing(lines)) == (1, {"api key"})
    assert lines["api key"][1].startswith("the API key secret is empty")


def test_videodb_down_fails_the_key_line_and_the_sweep_that_met_it(capsys, deployed, sandbox: SandboxServer):
    sandbox.set_outage(lambda method, path: 503)
    with pytest.raises(FunctionError):
        deployed.invoke("SweeperFunction", {})
    code, lines = check(capsys, deployed)
    assert (code, failing(lines)) == (1, {"api key", "sweeper"})
    assert lines["api key"][1].startswith(f"GET {sandbox.base_url}/download failed:")
    assert "failed: see the sweeper function's log" in lines["sweeper"][1]


def test_no_such_stack_is_one_line_not_six(capsys, make_stack):
    make_stack()
    code = main(["--stack-name", "no-such-stack", "check"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == "videodb-retry: stack 'no-such-stack' not found in us-east-1\n"
