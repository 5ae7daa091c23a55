"""IAM in template.yaml is least privilege: no '*' action anywhere, and a '*' resource only
where AWS requires it (each such place is listed here with the reason)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from videodb_retry_local.stack.template import load_document

DOCUMENT = load_document()

# (resource, actions): places where AWS accepts no narrower resource, and why.
STAR_RESOURCE_ALLOWED = {
    (
        "RetryWorkflow",
        frozenset(
            {
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            }
        ),
    ): "Step Functions log delivery: these CloudWatch Logs APIs do not support resource-level permissions",
}


def policies(resource: dict[str, Any]) -> Iterator[Any]:
    """A resource's SAM Policies, each branch of a conditional (Fn::If) policy on its own."""
    listed = resource.get("Properties", {}).get("Policies", [])
    for policy in listed if isinstance(listed, list) else []:
        if isinstance(policy, dict) and set(policy) == {"Fn::If"}:
            _, when_true, when_false = policy["Fn::If"]
            yield from (p for p in (when_true, when_false) if p != {"Ref": "AWS::NoValue"})
        else:
            yield policy


def statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every inline policy statement of the template, with the resource that holds it."""
    for logical_id, resource in DOCUMENT["Resources"].items():
        properties = resource.get("Properties", {})
        for policy in policies(resource):
            if isinstance(policy, dict) and "Statement" in policy:
                for statement in policy["Statement"]:
                    yield logical_id, statement
        if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::SQS::QueuePolicy"):
            document = properties.get("PolicyDocument") or {}
            for statement in document.get("Statement", []):
                yield logical_id, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_there_are_statements_to_check():
    assert len(list(statements())) >= 5


def test_no_action_is_a_wildcard():
    for logical_id, statement in statements():
        for action in as_list(statement.get("Action", [])):
            assert action != "*" and not str(action).endswith(":*"), f"{logical_id}: {action}"


def test_a_star_resource_only_where_aws_requires_it():
    stars = set()
    for logical_id, statement in statements():
        if "*" in as_list(statement.get("Resource", [])):
            stars.add((logical_id, frozenset(as_list(statement["Action"]))))
    assert stars == set(STAR_RESOURCE_ALLOWED)


def test_only_the_failure_rule_may_send_to_the_queue():
    (statement,) = DOCUMENT["Resources"]["RetryQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["DownloadFailedRule", "Arn"]}}
    }


def test_functions_use_scoped_policy_templates():
    scoped = {
        "AWSSecretsManagerGetSecretValuePolicy",
        "SQSSendMessagePolicy",
        "StepFunctionsExecutionPolicy",
        "EventBridgePutEventsPolicy",
        "LambdaInvokePolicy",
    }
    for logical_id, resource in DOCUMENT["Resources"].items():
        for policy in policies(resource):
            if isinstance(policy, str):
                raise AssertionError(f"{logical_id} attaches a managed policy {policy}")
            names = set(policy) - {"Statement"}
            assert names <= scoped, f"{logical_id}: {names - scoped}"


def test_the_breaker_reads_and_switches_the_retry_queues_mapping_only():
    # The template knows the mapping: SAM makes "RetryFunctionRetryQueueRecords" of the retry
    # function's SQS event, and its Ref is the UUID. The breaker gets it in its environment and
    # may Get/Update that one mapping (an event-source-mapping ARN, partition-aware), nothing
    # else of Lambda: no ListEventSourceMappings on "*".
    from videodb_retry_local.stack.iam.sam_translation import translate
    from videodb_retry_local.stack.template import Template

    translated = translate(Template.load())["Resources"]
    mapping = translated["RetryFunctionRetryQueueRecords"]
    assert mapping["Type"] == "AWS::Lambda::EventSourceMapping"
    assert mapping["Properties"]["FunctionName"] == {"Ref": "RetryFunction"}
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["RetryQueue", "Arn"]}
    breaker = translated["BreakerFunction"]["Properties"]
    assert breaker["Environment"]["Variables"]["RETRY_QUEUE_MAPPING_ID"] == {
        "Ref": "RetryFunctionRetryQueueRecords"
    }
    role = translated[breaker["Role"]["Fn::GetAtt"][0]]["Properties"]
    lambda_statements = [
        statement
        for policy in role["Policies"]
        for statement in as_list(policy.get("PolicyDocument", {}).get("Statement", []))
        if any(str(a).startswith("lambda:") for a in as_list(statement.get("Action", [])))
    ]
    assert lambda_statements == [
        {
            "Effect": "Allow",
            "Action": ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
            "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}"
                ":event-source-mapping:${RetryFunctionRetryQueueRecords}"
            },
        }
    ]
