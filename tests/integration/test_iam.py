"""Least privilege by execution (`make iam`): the template's roles allow every call the app
makes, and a copy of the template missing any one needed permission makes the pass fail,
naming the principal, the action and the resource."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from videodb_retry_local.commands import iam_pass
from videodb_retry_local.stack.template import PROJECT_ROOT, load_document

pytestmark = pytest.mark.integration


def policies(document: dict[str, Any], logical_id: str) -> list[Any]:
    return document["Resources"][logical_id]["Properties"]["Policies"]


def drop_template(logical_id: str, name: str, queue: str | None = None) -> Callable[[dict[str, Any]], None]:
    """Remove one SAM policy template (for SQSSendMessagePolicy, the one naming ``queue``)."""

    def remove(document: dict[str, Any]) -> None:
        kept = [
            p
            for p in policies(document, logical_id)
            if not (isinstance(p, dict) and name in p and (queue is None or queue in str(p[name])))
        ]
        assert len(kept) == len(policies(document, logical_id)) - 1, "the removal must remove one policy"
        document["Resources"][logical_id]["Properties"]["Policies"] = kept

    return remove


def drop_action(logical_id: str, action: str) -> Callable[[dict[str, Any]], None]:
    """Remove one action from the function's own statements."""

    def remove(document: dict[str, Any]) -> None:
        for policy in policies(document, logical_id):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                if action in actions:
                    statement["Action"] = [a for a in actions if a != action] or ["sqs:GetQueueUrl"]
                    return
        raise AssertionError(f"{logical_id} has no statement with {action}")

    return remove


def drop_kms_grant(logical_id: str) -> Callable[[dict[str, Any]], None]:
    """Remove the role's statements on KmsKeyArn (its Fn::If on UseCustomerKey)."""

    def remove(document: dict[str, Any]) -> None:
        kept = [p for p in policies(document, logical_id) if "UseCustomerKey" not in str(p)]
        assert len(kept) < len(policies(document, logical_id)), f"{logical_id} has no KmsKeyArn grant"
        document["Resources"][logical_id]["Properties"]["Policies"] = kept

    return remove


def breaker_switches_another_mapping(document: dict[str, Any]) -> None:
    """The breaker's grant names another mapping: not the retry queue's."""
    for policy in policies(document, "BreakerFunction"):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if "lambda:UpdateEventSourceMapping" in statement.get("Action", []):
                statement["Resource"] = {
                    "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}"
                    ":event-source-mapping:00000000-0000-0000-0000-000000000000"
                }
                return
    raise AssertionError("the breaker has no UpdateEventSourceMapping statement")


def other_source_rule(document: dict[str, Any]) -> None:
    """The queue policy lets another rule send, not the download-failed one."""
    statement = document["Resources"]["RetryQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    statement["Condition"]["ArnEquals"]["aws:SourceArn"] = {"Fn::Sub": "${DownloadFailedRule.Arn}-other"}


SQS = "arn:aws:sqs:us-east-1:123456789012:videodb-retry-local-"
DYNAMODB, STATES, SECRETS, EVENTS, LAMBDA = (
    f"arn:aws:{service}:us-east-1:123456789012:"
    for service in ("dynamodb", "states", "secretsmanager", "events", "lambda")
)
REMOVALS = {
    "retry: visibility change (tolerated by the code)": (
        drop_action("RetryFunction", "sqs:ChangeMessageVisibility"),
        f"RetryFunction may not sqs:ChangeMessageVisibility on {SQS}RetryQueue-",
    ),
    "retry: send to the DLQ": (
        drop_template("RetryFunction", "SQSSendMessagePolicy", "RetryDeadLetterQueue"),
        f"RetryFunction may not sqs:SendMessage on {SQS}RetryDeadLetterQueue-",
    ),
    "retry: idempotency update": (
        drop_action("RetryFunction", "dynamodb:UpdateItem"),
        f"RetryFunction may not dynamodb:UpdateItem on {DYNAMODB}table/",
    ),
    "retry: start the workflow": (
        drop_template("RetryFunction", "StepFunctionsExecutionPolicy"),
        f"RetryFunction may not states:StartExecution on {STATES}stateMachine:",
    ),
    "poll: read the secret": (
        drop_template("PollFunction", "AWSSecretsManagerGetSecretValuePolicy"),
        f"PollFunction may not secretsmanager:GetSecretValue on {SECRETS}secret:",
    ),
    "workflow: re-queue": (
        drop_template("RetryWorkflow", "SQSSendMessagePolicy", "'RetryQueue'"),
        f"RetryWorkflow may not sqs:SendMessage on {SQS}RetryQueue-",
    ),
    "workflow: last-resort dead letter": (
        drop_template("RetryWorkflow", "SQSSendMessagePolicy", "RetryDeadLetterQueue"),
        f"RetryWorkflow may not sqs:SendMessage on {SQS}RetryDeadLetterQueue-",
    ),
    "poll: take a request token": (
        drop_action("PollFunction", "dynamodb:UpdateItem"),
        f"PollFunction may not dynamodb:UpdateItem on {DYNAMODB}table/",
    ),
    "workflow: announce": (
        drop_template("RetryWorkflow", "EventBridgePutEventsPolicy"),
        f"RetryWorkflow may not events:PutEvents on {EVENTS}event-bus/default",
    ),
    "sweeper: claim a failure": (
        drop_action("SweeperFunction", "dynamodb:PutItem"),
        f"SweeperFunction may not dynamodb:PutItem on {DYNAMODB}table/",
    ),
    "breaker: switch the retry queue's mapping": (
        breaker_switches_another_mapping,
        f"BreakerFunction may not lambda:GetEventSourceMapping on {LAMBDA}event-source-mapping:",
    ),
    "queue policy: another rule's events": (
        other_source_rule,
        f"events.amazonaws.com may not sqs:SendMessage on {SQS}RetryQueue-",
    ),
}


def template_copy(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """template.yaml changed by ``change``, beside links to the code it names."""
    document = load_document()
    change(document)
    for folder in ("functions", "layers", "statemachine"):
        (tmp_path / folder).symlink_to(PROJECT_ROOT / folder)
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_the_template_allows_every_call_and_every_call_is_exercised():
    assert iam_pass.run_pass() == []


def test_with_a_customer_managed_key_every_call_and_its_key_use_is_allowed():
    # The key's policy is docs/operating.md's: AWS's default statement plus its service statements.
    assert iam_pass.run_pass(parameters={"KmsKeyArn": KEY}) == []


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ("RetryWorkflow", f"RetryWorkflow may not kms:GenerateDataKey on {KEY}"),
        ("RetryFunction", f"RetryFunction may not kms:Decrypt on {KEY}"),
    ],
)
def test_without_its_key_grant_a_role_cannot_use_the_encrypted_queue(principal, expected, tmp_path: Path):
    problems = iam_pass.run_pass(template_copy(tmp_path, drop_kms_grant(principal)), {"KmsKeyArn": KEY})
    assert any(p.startswith(f"denied: {expected}") for p in problems), problems


@pytest.mark.parametrize("removal", sorted(REMOVALS))
def test_a_missing_permission_fails_the_pass_naming_it(removal: str, tmp_path: Path):
    change, expected = REMOVALS[removal]
    problems = iam_pass.run_pass(template_copy(tmp_path, change))
    assert any(p.startswith(f"denied: {expected}") for p in problems), problems
