"""What the emulated stack created is what template.yaml declares (nothing copied by hand)."""

from __future__ import annotations

import json

import pytest

from videodb_retry_local.stack.template import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_queues_carry_the_template_attributes(stack):
    sqs = stack.client("sqs")
    retry = sqs.get_queue_attributes(QueueUrl=stack.retry_queue_url, AttributeNames=["All"])["Attributes"]
    dead = sqs.get_queue_attributes(QueueUrl=stack.dead_letter_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert retry["VisibilityTimeout"] == "360" and retry["MessageRetentionPeriod"] == "345600"
    assert retry["SqsManagedSseEnabled"] == "true" and dead["SqsManagedSseEnabled"] == "true"
    assert json.loads(retry["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead["QueueArn"],
        "maxReceiveCount": 10,  # MaxReceiveCount default
    }
    assert dead["MessageRetentionPeriod"] == "1209600"
    statement = json.loads(retry["Policy"])["Statement"][0]
    rule_arn = stack.client("events").describe_rule(Name=stack.ref("DownloadFailedRule"))["Arn"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == rule_arn


def test_rule_routes_failure_events_to_the_retry_queue(stack):
    events = stack.client("events")
    rule = events.describe_rule(Name=stack.ref("DownloadFailedRule"))
    assert json.loads(rule["EventPattern"]) == {
        "source": ["videodb"],
        "detail-type": ["Download Failed"],
        "detail": {"download_id": [{"exists": True}]},
    }
    (target,) = events.list_targets_by_rule(Rule=stack.ref("DownloadFailedRule"))["Targets"]
    assert target["Arn"] == stack.outputs["RetryQueueArn"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 185


def test_state_machine_runs_the_definition_file_with_substitutions(stack):
    described = stack.client("stepfunctions").describe_state_machine(stateMachineArn=stack.state_machine_arn)
    definition = json.loads(described["definition"])
    on_disk = json.loads((PROJECT_ROOT / "statemachine/retry_workflow.asl.json").read_text())
    assert definition.keys() == on_disk.keys() and definition["States"].keys() == on_disk["States"].keys()
    poll_arn = stack.functions["PollFunction"].arn
    assert definition["States"]["PollJob"]["Parameters"]["FunctionName"] == poll_arn
    assert definition["States"]["RequeueDownload"]["Parameters"]["QueueUrl"] == stack.retry_queue_url
    assert "${" not in described["definition"]


def test_functions_get_the_template_environment_with_overrides(stack, sandbox):
    lam = stack.client("lambda")
    retry = lam.get_function_configuration(FunctionName=stack.ref("RetryFunction"))
    poll = lam.get_function_configuration(FunctionName=stack.ref("PollFunction"))
    assert retry["Runtime"] == poll["Runtime"] == "python3.13"
    assert retry["Timeout"] == 60 and poll["Timeout"] == 8
    env = retry["Environment"]["Variables"]
    assert env["VIDEODB_API_BASE_URL"] == sandbox.base_url
    assert env["POLL_FIRST_WAIT_SECONDS"] == "1" and env["MAX_RETRY_ATTEMPTS"] == "3"
    assert env["RETRY_QUEUE_URL"] == stack.retry_queue_url
    assert env["STATE_MACHINE_ARN"] == stack.state_machine_arn
    assert env["API_KEY_SECRET_ID"] == stack.secret_arn
    assert "RETRY_QUEUE_URL" not in poll["Environment"]["Variables"]
    # The loaded handler modules read the same values at import.
    assert stack.functions["RetryFunction"].module.settings.retry_queue_url == stack.retry_queue_url
    assert stack.functions["PollFunction"].module.settings.poll_deadline_seconds == 3
    # The budgets reach every function; the poll function's request fits its 8 s time limit.
    poll_settings = stack.functions["PollFunction"].module.settings
    assert poll_settings.budgets == stack.functions["RetryFunction"].module.settings.budgets
    assert poll_settings.connect_timeout_seconds + poll_settings.read_timeout_seconds == 6


def test_consumer_uses_the_event_source_batch_size(make_stack):
    from videodb_retry_local.stack.sqs_event_source import QueueConsumer

    consumer = QueueConsumer(make_stack(RetryBatchSize=2))
    assert consumer.batch_size == 2 and consumer.reports_item_failures
    for n in range(3):
        consumer.stack.send_to_queue(f"{{bad json {n}")  # poison: quick to process
    assert consumer.poll_once() == 2 and consumer.poll_once() == 1


def test_handler_exception_becomes_a_lambda_function_error(stack):
    answer = stack.client("lambda").invoke(FunctionName=stack.functions["PollFunction"].arn, Payload=b"{}")
    assert answer["FunctionError"] == "Unhandled"
    payload = json.loads(answer["Payload"].read())
    assert payload["errorType"] == "InvalidPollState" and "missing" in payload["errorMessage"]
