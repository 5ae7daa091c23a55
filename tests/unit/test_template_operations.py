"""Operating the deployed app: alarms, the dashboard, log retention and the sweeper switch,
read from the real template.yaml."""

from __future__ import annotations

import json

import pytest

from tests.documentation import page
from videodb_retry_local.stack.template import PhysicalIds, Template, load_document

DOCUMENT = load_document()
RESOURCES = DOCUMENT["Resources"]


def alarms() -> dict[str, dict]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def watched(alarm: dict) -> list[dict]:
    """The metrics an alarm reads: its own, or those of its metric-math queries."""
    props = alarm["Properties"]
    if "Metrics" in props:
        return [q["MetricStat"]["Metric"] for q in props["Metrics"] if "MetricStat" in q]
    return [{k: props[k] for k in ("Namespace", "MetricName", "Dimensions") if k in props}]


@pytest.mark.parametrize(
    "namespace, metric",
    [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),  # DLQ depth
        ("AWS/States", "ExecutionsFailed"),  # workflow failures
        ("VideoDBRetry", "RetriesTimedOut"),  # timeouts
        ("VideoDBRetry", "AwsRefusals"),  # a refusal a function tolerated, never silent
        ("AWS/Lambda", "Errors"),  # function errors
    ],
)
def test_an_alarm_watches(namespace, metric):
    watching = [
        a
        for a in alarms().values()
        if any((m["Namespace"], m["MetricName"]) == (namespace, metric) for m in watched(a))
    ]
    assert watching, f"no alarm on {namespace} {metric}"
    for alarm in watching:
        assert alarm["Properties"]["Threshold"] == 0
        assert alarm["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"


def test_dlq_alarm_watches_the_dead_letter_queue():
    (dlq,) = [a for a in alarms().values() if a["Properties"].get("Namespace") == "AWS/SQS"]
    assert dlq["Properties"]["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["RetryDeadLetterQueue", "QueueName"]
    }


def test_every_function_has_an_errors_alarm():
    functions = {k for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
    watching = {
        m["Dimensions"][0]["Value"]["Ref"]
        for a in alarms().values()
        for m in watched(a)
        if m["MetricName"] == "Errors"
    }
    assert watching == functions


def test_poll_errors_alarm_leaves_out_the_still_running_answers():
    from videodb_retry.observability import Metric

    props = RESOURCES["PollFunctionErrorsAlarm"]["Properties"]
    names = {m["MetricName"] for m in watched(RESOURCES["PollFunctionErrorsAlarm"])}
    assert names == {"Errors", Metric.POLLS_STILL_RUNNING}
    (expression,) = [q for q in props["Metrics"] if q.get("ReturnData")]
    assert expression["Expression"] == "FILL(errors, 0) - FILL(stillrunning, 0)"


def test_alarms_notify_the_email_topic_only_when_an_address_is_given():
    for alarm in alarms().values():
        assert alarm["Properties"]["AlarmActions"] == {
            "Fn::If": ["NotifyByEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
        }
    assert Template.load().conditions["NotifyByEmail"] is False
    assert Template.load(overrides={"AlarmEmail": "ops@example.com"}).conditions["NotifyByEmail"] is True
    assert RESOURCES["AlarmTopic"]["Condition"] == "NotifyByEmail"


def test_dashboard_shows_what_operators_ask_for():
    body = RESOURCES["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    for metric in (
        "RetriesIssued",
        "RetriesSucceeded",
        "RetriesFailed",
        "RetriesTimedOut",
        "Polls",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
    ):
        assert metric in body
    # the body is JSON once ${...} placeholders are filled
    json.loads(
        body.replace("${AWS::Region}", "r")
        .replace("${AWS::StackName}", "s")
        .replace("${Queue}", "q")
        .replace("${DeadLetters}", "d")
        .replace("${RetryWorkflow}", "w")
    )


def test_every_log_group_has_the_retention_parameter_and_the_key():
    groups = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Logs::LogGroup"}
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert group["Properties"]["KmsKeyId"] == {
            "Fn::If": ["UseCustomerKey", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]
        }
    assert "RetryWorkflowLogGroup" in groups


def test_each_function_logs_json_to_the_stacks_own_group_created_before_it():
    # A group named /aws/lambda/<function> is created beside the function, which may log first
    # (the breaker ticks within a minute) and make Lambda create it: the deploy then fails
    # with "already exists". Lambda's LoggingConfig.LogGroup names the stack's own group
    # instead, and the reference makes CloudFormation create the group first
    # (Lambda docs "Configuring CloudWatch logs for Lambda functions", custom log groups).
    functions = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
    groups = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Logs::LogGroup"}
    for logical_id, function in functions.items():
        config = function["Properties"]["LoggingConfig"]
        group = config["LogGroup"]["Ref"]
        assert group == f"{logical_id}LogGroup" and group in groups
        assert groups[group].get("Condition") == function.get("Condition")
        assert config["LogFormat"] == "JSON"
        level = {"Fn::FindInMap": ["LambdaLogLevels", {"Ref": "LogLevel"}, "Level"]}
        assert config["ApplicationLogLevel"] == level
        assert config["SystemLogLevel"] == "INFO"  # keeps START/END/REPORT (duration, memory)
    for logical_id, group in groups.items():
        name = group["Properties"]["LogGroupName"]["Fn::Sub"]
        assert not {f for f in functions if "${" + f + "}" in name}, f"{logical_id} waits for its function"
    # The names docs/operating.md gives operators (its key policy matches /aws/lambda/STACK_NAME-*).
    operating = page("operating")
    assert "`/aws/lambda/<stack name>-<Function>`" in operating
    assert "`/aws/vendedlogs/states/<stack name>-retry-workflow`" in operating
    stack = Template.load(overrides={"SweeperEnabled": "true"})
    for logical_id in stack.resources_of_type("AWS::Logs::LogGroup"):
        name = stack.properties(logical_id, PhysicalIds(stack_name="s"))["LogGroupName"]
        function = logical_id.removesuffix("LogGroup")
        expected = (
            "/aws/vendedlogs/states/s-retry-workflow"
            if function == "RetryWorkflow"
            else f"/aws/lambda/s-{function}"
        )
        assert name == expected


@pytest.mark.parametrize("level", DOCUMENT["Parameters"]["LogLevel"]["AllowedValues"])
def test_log_level_reaches_lambda_and_powertools_alike(level, monkeypatch):
    # Lambda takes TRACE, DEBUG, INFO, WARN, ERROR, FATAL as ApplicationLogLevel and, with the
    # JSON format, sets AWS_LAMBDA_LOG_LEVEL to it; Powertools' Logger then takes that level
    # over POWERTOOLS_LOG_LEVEL and warns when they differ (Powertools docs, Logger, "AWS
    # Lambda Advanced Logging Controls (ALC)"). LogLevel keeps working when both agree.
    import logging
    import warnings

    from aws_lambda_powertools import Logger

    from tests.unit.test_template import fake_ids

    template = Template.load(overrides={"LogLevel": level})
    lambda_level = template.properties("RetryFunction", fake_ids())["LoggingConfig"]["ApplicationLogLevel"]
    assert lambda_level in {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", level)
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", lambda_level)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Powertools' mismatch warning fails the test
        logger = Logger(service=f"log-level-{level}")
    assert logger.log_level == logging.getLevelName(level)


def test_sweeper_is_off_by_default_and_scheduled_when_on():
    assert Template.load().conditions["SweeperOn"] is False
    assert "SweeperFunction" not in Template.load().resources()
    on = Template.load(overrides={"SweeperEnabled": "true", "SweepRateMinutes": 5})
    sweeper = on.resources()["SweeperFunction"]
    (event,) = sweeper["Properties"]["Events"].values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Fn::Sub": "rate(${SweepRateMinutes} minutes)"}


# Every parameter a condition reads, with a value that turns it off and one that turns it on.
CONDITION_PARAMETERS = {
    "KmsKeyArn": ["", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
    "AlarmEmail": ["", "ops@example.com"],
    "ExistingApiKeySecretArn": ["", "arn:aws:secretsmanager:us-east-1:123456789012:secret:key-AbCdEf"],
    "ExistingApiKeySecretKmsKeyArn": ["", "arn:aws:kms:us-east-1:123456789012:key/mrk-0123456789abcdef"],
    "SweeperEnabled": ["false", "true"],
    "BreakerEnabled": ["false", "true"],
}


def every_configuration() -> list[Template]:
    """The template under every combination of its conditions that its Rules accept."""
    import itertools

    from videodb_retry_local.stack.template import TemplateError

    chosen = []
    for values in itertools.product(*CONDITION_PARAMETERS.values()):
        try:
            chosen.append(Template.load(overrides=dict(zip(CONDITION_PARAMETERS, values, strict=True))))
        except TemplateError:
            continue  # refused by a Rule: never deployed
    return chosen


def test_condition_parameters_cover_every_condition():
    read = set()
    for condition in DOCUMENT["Conditions"].values():
        read |= {p for p in DOCUMENT["Parameters"] if f"'Ref': '{p}'" in str(condition)}
    assert read == set(CONDITION_PARAMETERS)


def test_the_alarm_topic_is_never_under_an_aws_managed_key():
    # CloudWatch alarms publish to an encrypted topic only if the key's policy lets
    # cloudwatch.amazonaws.com use it; an AWS managed key's (alias/aws/sns) cannot be edited
    # (AWS knowledge center "Why didn't I receive an SNS notification for my CloudWatch alarm
    # trigger?"; SNS docs "Enable compatibility between event sources from AWS services and
    # encrypted topics"). No key, or the customer key whose policy docs/operating.md gives.
    from tests.unit.test_template import fake_ids

    configurations = every_configuration()
    with_topic = [t for t in configurations if "AlarmTopic" in t.resources()]
    assert len(with_topic) >= 8 and len(with_topic) < len(configurations)
    for template in with_topic:
        key = template.properties("AlarmTopic", fake_ids()).get("KmsMasterKeyId")
        customer_key = template.parameters["KmsKeyArn"]
        assert key == (customer_key or None), (dict(template.parameters), key)


# What a stack's deletion (DeletionPolicy) and a replacement on update (UpdateReplacePolicy) do
# with each resource that holds state; the reasons are written beside each in template.yaml.
# The types are those cfn-lint's I3011 calls stateful (its StatefulResources.json), that the
# template could use.
STATEFUL_TYPES = {
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::Logs::LogGroup",
    "AWS::SecretsManager::Secret",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::Kinesis::Stream",
}
KEEP_OR_DELETE = {
    "RetryDeadLetterQueue": "Retain",  # downloads that need a person
    "ApiKeySecret": "Retain",  # the API key a person put in
    "RetryQueue": "Delete",
    "IdempotencyTable": "Delete",
    "RetryWorkflowLogGroup": "Delete",
    "RetryFunctionLogGroup": "Delete",
    "PollFunctionLogGroup": "Delete",
    "SweeperFunctionLogGroup": "Delete",
    "BreakerFunctionLogGroup": "Delete",
}


def test_every_stateful_resource_says_what_deletion_and_replacement_do_with_it():
    stateful = {k: v for k, v in RESOURCES.items() if v["Type"] in STATEFUL_TYPES}
    assert set(stateful) == set(KEEP_OR_DELETE)
    for logical_id, policy in KEEP_OR_DELETE.items():
        resource = stateful[logical_id]
        assert resource.get("DeletionPolicy") == policy, logical_id
        assert resource.get("UpdateReplacePolicy") == policy, logical_id


# Lambda's recursive loop detection stops a function invoked more than 16 times in one chain
# of requests through SQS, SNS, S3 or Lambda; the count travels in the X-Ray trace header's
# Lineage (SQS keeps it as the message's AWSTraceHeader). https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html
LOOP_DETECTION_THRESHOLD = 16


def test_the_retry_loop_stays_below_lambdas_recursive_loop_detection():
    # The loop: the retry function reads the retry queue and sends the next attempt to it
    # (and the workflow it starts re-queues there too). One download's chain invokes the
    # function once per attempt, so MaxRetryAttempts must stay below the threshold; the
    # detection stays on (no RecursiveLoop: Allow) as the net for a loop that is a bug.
    retry = RESOURCES["RetryFunction"]["Properties"]
    (event,) = retry["Events"].values()
    assert event["Type"] == "SQS" and event["Properties"]["Queue"] == {"Fn::GetAtt": ["RetryQueue", "Arn"]}
    assert {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["RetryQueue", "QueueName"]}}} in retry[
        "Policies"
    ]
    assert int(DOCUMENT["Parameters"]["MaxRetryAttempts"]["MaxValue"]) < LOOP_DETECTION_THRESHOLD
    for logical_id, resource in RESOURCES.items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert resource["Properties"].get("RecursiveLoop", "Terminate") == "Terminate", logical_id


def test_a_scheduled_function_is_never_retried_or_run_late_by_lambda():
    """EventBridge Scheduler invokes Lambda asynchronously: Lambda would retry a failed run twice
    and keep a throttled one for up to 6 hours, starting it beside the next scheduled run.
    Read as it deploys (the official SAM translation), every scheduled function has no
    asynchronous retry and an event age of a minute, its schedule no retry and no flexible
    window (the sweeper's runs end SCHEDULE_SLACK_SECONDS before the next starts on time)."""
    from videodb_retry_local.stack.iam.sam_translation import translate

    resources = translate(Template.load(overrides={"SweeperEnabled": "true"}))["Resources"]
    schedules = {
        properties["Target"]["Arn"]["Fn::GetAtt"][0]: properties
        for properties in (
            r["Properties"] for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"
        )
    }
    configs = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    assert set(schedules) == {"SweeperFunction", "BreakerFunction"}
    for function, schedule in schedules.items():
        assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}, function
        assert schedule["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 0}, function
        config = configs[function]
        assert config["MaximumRetryAttempts"] == 0, function
        assert config["MaximumEventAgeInSeconds"] == 60, function  # the least Lambda accepts
        assert config["Qualifier"] == "$LATEST", function  # the schedule targets the function itself
    sweeper = resources["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert sweeper["SWEEP_RATE_MINUTES"] == {"Ref": "SweepRateMinutes"}
