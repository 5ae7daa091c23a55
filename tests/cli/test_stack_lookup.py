"""Finding the queues and the workflow: stack outputs (CloudFormation), samconfig.toml, and
one-line errors when there is no such stack, output or credentials."""

from __future__ import annotations

import json
import socket
from typing import Any

import boto3
import pytest

from tests.cli.conftest import REGION, drain

# The template's outputs, on the fewest resources that produce them.
TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "RetryDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
        "RetryQueue": {"Type": "AWS::SQS::Queue"},
        "RetryWorkflow": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "DefinitionString": json.dumps(
                    {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
                ),
                "RoleArn": "arn:aws:iam::123456789012:role/workflow",
            },
        },
    },
    "Outputs": {
        "RetryQueueUrl": {"Value": {"Ref": "RetryQueue"}},
        "RetryQueueArn": {"Value": {"Fn::GetAtt": ["RetryQueue", "Arn"]}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "RetryDeadLetterQueue"}},
        "RetryWorkflowArn": {"Value": {"Ref": "RetryWorkflow"}},
    },
}


def create_stack(name: str, region: str = REGION, template: dict[str, Any] = TEMPLATE) -> dict[str, str]:
    cfn = boto3.client("cloudformation", region_name=region)
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    outputs = cfn.describe_stacks(StackName=name)["Stacks"][0].get("Outputs", [])
    return {o["OutputKey"]: o["OutputValue"] for o in outputs}


@pytest.fixture
def stack(aws: None) -> dict[str, str]:
    return create_stack("videodb-retry-test")


def test_enqueue_to_the_stacks_queue(cli: Any, stack: dict[str, str]) -> None:
    result = cli("enqueue", "--stack-name", "videodb-retry-test", "download-1")
    assert result.code == 0, result.err
    sqs = boto3.client("sqs", region_name=REGION)
    assert [m["Body"] for m in drain(sqs, stack["RetryQueueUrl"])] == ["download-1"]


def test_global_options_before_the_command(cli: Any, stack: dict[str, str]) -> None:
    result = cli("--stack-name", "videodb-retry-test", "--region", REGION, "enqueue", "download-1")
    assert result.code == 0, result.err
    assert stack["RetryQueueUrl"] in result.out


def test_redrive_and_status_use_the_stacks_outputs(cli: Any, stack: dict[str, str]) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=stack["DeadLetterQueueUrl"], MessageBody="x")
    result = cli("redrive", "--dry-run", "--stack-name", "videodb-retry-test")
    assert result.code == 0, result.err
    assert f"dead-letter queue: {stack['DeadLetterQueueUrl']}" in result.out

    result = cli("status", "--stack-name", "videodb-retry-test")
    assert result.code == 0, result.err
    assert result.out.strip() == f"no retries found in {stack['RetryWorkflowArn']}"


def test_stack_name_from_samconfig(cli: Any, aws: None, tmp_path: Any) -> None:
    create_stack("from-default")
    prod = create_stack("from-prod")
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "from-default"\n'
        '[prod.global.parameters]\nstack_name = "from-prod"\n'
    )
    result = cli("enqueue", "download-1")
    assert result.code == 0, result.err
    assert "from-default" in result.out
    result = cli("--config-env", "prod", "enqueue", "download-2")
    assert result.code == 0, result.err
    assert prod["RetryQueueUrl"] in result.out


def test_region_from_samconfig_when_none_is_configured(
    cli: Any, aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = create_stack("far-away", region="eu-west-1")
    (tmp_path / "samconfig.toml").write_text(
        '[default.global.parameters]\nstack_name = "far-away"\n'
        '[default.deploy.parameters]\nregion = "eu-west-1"\n'
    )
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    result = cli("enqueue", "download-1")
    assert result.code == 0, result.err
    assert outputs["RetryQueueUrl"] in result.out


def test_unknown_stack_is_one_line(cli: Any, aws: None) -> None:
    result = cli("enqueue", "--stack-name", "no-such-stack", "a")
    assert result.code == 1
    assert result.err_lines == [f"videodb-retry: stack 'no-such-stack' not found in {REGION}"]


def test_no_stack_anywhere_is_one_line(cli: Any, aws: None) -> None:
    result = cli("enqueue", "a")
    assert result.code == 1
    assert len(result.err_lines) == 1
    assert result.err.startswith("videodb-retry: which stack? use --stack-name")


def test_stack_without_the_output_is_one_line(cli: Any, aws: None) -> None:
    create_stack("other-app", template={"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}})
    result = cli("status", "--stack-name", "other-app")
    assert result.code == 1
    assert result.err_lines == [
        "videodb-retry: stack 'other-app' has no output RetryWorkflowArn: "
        "is it a videodb-retry stack, fully deployed?"
    ]


def test_broken_samconfig_is_one_line(cli: Any, aws: None, tmp_path: Any) -> None:
    (tmp_path / "samconfig.toml").write_text("[default\n")
    result = cli("status")
    assert result.code == 1
    assert len(result.err_lines) == 1 and result.err.startswith("videodb-retry: cannot read samconfig.toml")


def test_no_credentials_is_one_line(cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    # Signing fails before any connection; the loopback endpoint is there in case it did not.
    result = cli("--endpoint-url", "http://127.0.0.1:9", "status", "--state-machine-arn", "arn:x")
    assert result.code == 1
    assert result.err_lines == [
        "videodb-retry: no AWS credentials found: use --profile, or set AWS_PROFILE or AWS_ACCESS_KEY_ID"
    ]


def test_unknown_profile_is_one_line(cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = cli("--profile", "nobody", "status", "--state-machine-arn", "arn:x")
    assert result.code == 1
    assert result.err_lines == ["videodb-retry: AWS profile not found: nobody"]


def test_unreachable_endpoint_is_one_line(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the operator's setting is honoured; no retry waits here
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("--endpoint-url", f"http://127.0.0.1:{port}", "enqueue", "--queue-url", "http://q", "a")
    assert result.code == 1
    assert result.err_lines == [f"videodb-retry: cannot reach http://127.0.0.1:{port}/: is the endpoint up?"]
