"""`make iam`: least privilege proven by execution.

Creates the emulated stack from a template (the sweeper on), enforces IAM on it
(:mod:`videodb_retry_local.stack.iam.iam_enforcement`: each function and the workflow acting under its
own role from the official SAM translation), and drives every AWS call the app makes through
the real handlers and the executing workflow: the demo's mix of downloads (retry, poll,
re-queue, outcome events, DLQ for poison and refused ids, visibility backoff after a 503,
idempotency records, the secret, the request budget's counts), then the workflow's last resort
(a poll function that cannot run: the workflow dead-letters and announces by itself), then a
sweep and the breaker's ticks. It also checks the calls AWS services make on
the app's behalf: the schedule invoking the sweeper, the event source mapping's queue access,
EventBridge delivering failure events to the queue under the queue policy.

It fails, naming principal, action and resource, when any call was denied, and when a call
it must exercise was not made (so the pass cannot quietly shrink).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError

from videodb_retry_local.commands import demo
from videodb_retry_local.load import demo_cases
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.iam.iam_enforcement import Denial, Enforcement, acting_as
from videodb_retry_local.stack.iam.iam_requests import Request, RequestContext
from videodb_retry_local.stack.iam.sam_translation import execution_roles, translate
from videodb_retry_local.stack.lambda_runtime import FunctionError
from videodb_retry_local.stack.moto_env import local_aws
from videodb_retry_local.stack.presets import SANDBOX_PARAMETERS, add_param_option
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.stack.template import DEFAULT_TEMPLATE, PROJECT_ROOT, TemplateError
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

TIMEOUT_SECONDS = 90
SWEPT_ID = "dl-iam-swept"
UNSETTLED_ID = "dl-iam-unsettled"
# The demo's mix but its never-ending download: a timed-out attempt makes no call that a
# failed one does not, and waiting for its deadline would only slow the pass down.
CASES = [case for case in demo_cases.CASES if case.download_id != "dl-demo-stuck"]
# (principal, action) pairs the pass must see allowed at least once: every kind of AWS call
# the functions, the workflow and the services acting for them make.
FUNCTIONS = ("RetryFunction", "PollFunction", "SweeperFunction", "BreakerFunction")
MUST_EXERCISE = {
    ("RetryFunction", "sqs:ReceiveMessage"),
    ("RetryFunction", "sqs:DeleteMessage"),
    ("RetryFunction", "sqs:GetQueueAttributes"),
    ("RetryFunction", "sqs:ChangeMessageVisibility"),
    ("RetryFunction", "sqs:SendMessage"),
    ("RetryFunction", "secretsmanager:GetSecretValue"),
    ("RetryFunction", "dynamodb:PutItem"),
    ("RetryFunction", "dynamodb:UpdateItem"),
    ("RetryFunction", "states:StartExecution"),
    ("PollFunction", "secretsmanager:GetSecretValue"),
    ("PollFunction", "dynamodb:UpdateItem"),
    ("RetryWorkflow", "lambda:InvokeFunction"),
    ("RetryWorkflow", "sqs:SendMessage"),
    ("RetryWorkflow", "events:PutEvents"),
    ("SweeperFunction", "secretsmanager:GetSecretValue"),
    ("SweeperFunction", "dynamodb:GetItem"),
    ("SweeperFunction", "dynamodb:PutItem"),
    ("SweeperFunction", "dynamodb:UpdateItem"),
    ("SweeperFunction", "events:PutEvents"),
    ("SweeperFunctionSweep", "lambda:InvokeFunction"),
    ("RetryFunction", "dynamodb:UpdateItem"),
    ("BreakerFunction", "lambda:GetEventSourceMapping"),
    ("BreakerFunction", "lambda:UpdateEventSourceMapping"),
    ("BreakerFunction", "dynamodb:GetItem"),
    ("BreakerFunction", "dynamodb:PutItem"),
    ("BreakerFunction", "dynamodb:BatchGetItem"),
    ("BreakerFunction", "dynamodb:UpdateItem"),
    ("BreakerFunction", "events:PutEvents"),
    ("BreakerFunction", "secretsmanager:GetSecretValue"),
    ("BreakerFunctionTick", "lambda:InvokeFunction"),
    ("events.amazonaws.com", "sqs:SendMessage"),
    # Lambda writes each function's logs to its LoggingConfig group under the function's role.
    *((f, action) for f in FUNCTIONS for action in ("logs:CreateLogStream", "logs:PutLogEvents")),
}

# With KmsKeyArn set: the key permissions each sender and receiver of the queues needs, and
# what reading the secret created with the key needs.
MUST_EXERCISE_WITH_A_KEY = {
    ("RetryFunction", "kms:Decrypt"),
    ("RetryFunction", "kms:GenerateDataKey"),
    ("RetryWorkflow", "kms:GenerateDataKey"),
    ("PollFunction", "kms:Decrypt"),
    ("events.amazonaws.com", "kms:GenerateDataKey"),
}


def run_pass(
    template_path: Path | str = DEFAULT_TEMPLATE, parameters: dict[str, str] | None = None
) -> list[str]:
    """Run the pass on ``template_path``; the problems found (empty: least privilege holds)."""
    with SandboxServer(api_key=demo.SANDBOX_KEY, host="127.0.0.1") as sandbox:
        for case in CASES:
            if case.script is not None:
                sandbox.script(case.download_id, **case.script)
        overrides = {
            **SANDBOX_PARAMETERS,
            "SweeperEnabled": "true",
            # The demo's one 503 is enough to open the breaker, and it may probe at once.
            "BreakerMinAttempts": "1",
            "BreakerFailureRatio": "0.1",
            "BreakerProbeIntervalSeconds": "0",
            "LogLevel": "ERROR",
            **(parameters or {}),
            "VideoDBApiBaseUrl": sandbox.base_url,
        }
        with local_aws(), EmulatedStack(demo.SANDBOX_KEY, overrides, template_path=template_path) as stack:
            roles = execution_roles(translate(stack.template), stack.template, stack.ids)
            context = RequestContext(
                region=stack.ids.region,
                account_id=stack.ids.account_id,
                secret_arns=_secret_arns(stack),
                mapping_functions=_mapping_functions(stack),
                kms_keys=_customer_keys(stack),
                stack_name=stack.ids.stack_name,
                suffix=stack.resource_suffix,
            )
            context.key_policies = {key: key_policy(stack) for key in set(context.kms_keys.values())}
            with Enforcement(roles, context, workflow="RetryWorkflow") as enforcement:
                _check_service_calls(stack, enforcement)
                unfinished = _drive(stack, sandbox, enforcement)
                if not enforcement.denials:
                    unfinished += _settle_without_the_poll_function(stack, sandbox, enforcement)
                if not enforcement.denials:
                    _sweep(stack, sandbox)
                if not enforcement.denials:
                    _trip_the_breaker(stack)
                problems = [f"denied: {d}" for d in _unique(enforcement.denials)]
                if problems:  # the pass stopped at the first denial: the rest says nothing
                    return problems
                must = MUST_EXERCISE | (MUST_EXERCISE_WITH_A_KEY if context.kms_keys else set())
                problems += [
                    f"not exercised: {principal} {action}"
                    for principal, action in sorted(must - enforcement.authorized)
                ]
                problems += [f"did not end: {k}" for k in unfinished]
    return problems


def _drive(stack: EmulatedStack, sandbox: SandboxServer, enforcement: Enforcement) -> list[str]:
    """Send the cases in and run the queue until all have ended or a call was denied;
    the ids that did not end."""
    consumer = QueueConsumer(stack)
    for case in CASES:
        demo_cases.send(stack, case)

    def ended() -> bool:
        endings = demo_cases.collect(stack, consumer, sandbox, CASES)
        return bool(enforcement.denials) or all(e.final for e in endings.values())

    with contextlib.suppress(ClientError):  # the mapping's own receive denied: recorded already
        consumer.run(until=ended, timeout=TIMEOUT_SECONDS)
    endings = demo_cases.collect(stack, consumer, sandbox, CASES)
    return [k for k, e in endings.items() if not e.final]


def _settle_without_the_poll_function(
    stack: EmulatedStack, sandbox: SandboxServer, enforcement: Enforcement
) -> list[str]:
    """The workflow's last resort, with its own role: the poll function fails every invocation
    for one download (as a function that keeps crashing would), so the workflow sends the DLQ
    message and the Failed event itself. [UNSETTLED_ID] if it did not end so."""
    sandbox.script(UNSETTLED_ID, never_finishes=True)
    run = stack.invoke

    def crashing(logical_id: str, event: Any) -> Any:
        if logical_id == "PollFunction" and UNSETTLED_ID in json.dumps(event):
            crash = {"errorType": "Runtime.ExitError", "errorMessage": "exited", "requestId": "-"}
            raise FunctionError({**crash, "stackTrace": []})
        return run(logical_id, event)

    def dead_lettered() -> bool:
        letters = stack.dead_letters()
        return bool(enforcement.denials) or any(UNSETTLED_ID in m["body"] for m in letters)

    consumer = QueueConsumer(stack)
    with mock.patch.object(stack, "invoke", crashing), contextlib.suppress(ClientError):
        stack.send_to_queue(UNSETTLED_ID)
        consumer.run(until=dead_lettered, timeout=TIMEOUT_SECONDS)
    return [] if dead_lettered() else [UNSETTLED_ID]


def _check_service_calls(stack: EmulatedStack, enforcement: Enforcement) -> None:
    """What AWS services do for the app, authorized as AWS authorizes them."""
    queue_arn = stack.ids.resources["RetryQueue"].attributes["Arn"]
    # Lambda checks the execution role's access to the queue when it creates the mapping.
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        enforcement.check("RetryFunction", Request(action, queue_arn), "CreateEventSourceMapping")
    sweeper_arn = stack.ids.resources["SweeperFunction"].attributes["Arn"]
    breaker_arn = stack.ids.resources["BreakerFunction"].attributes["Arn"]
    for schedule, function in (("SweeperFunctionSweep", sweeper_arn), ("BreakerFunctionTick", breaker_arn)):
        enforcement.check(schedule, Request("lambda:InvokeFunction", function), "Scheduler:Invoke")
    _check_log_writes(stack, enforcement)
    policy = stack.template.properties("RetryQueuePolicy", stack.ids)["PolicyDocument"]
    rule_arn = stack.ids.resources["DownloadFailedRule"].attributes["Arn"]
    enforcement.check_service(
        "events.amazonaws.com", "sqs:SendMessage", queue_arn, policy, {"aws:SourceArn": rule_arn}
    )
    key = enforcement.context.kms_keys.get(queue_arn)
    if key:  # EventBridge encrypts with its own identity: only the key policy can let it
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            enforcement.check_service(
                "events.amazonaws.com",
                action,
                key,
                enforcement.context.key_policies[key],
                {
                    "aws:SourceAccount": stack.ids.account_id,
                    "kms:ViaService": f"sqs.{stack.ids.region}.amazonaws.com",
                },
            )


def _check_log_writes(stack: EmulatedStack, enforcement: Enforcement) -> None:
    """Lambda sends a function's logs to the group its LoggingConfig names, as the function's
    execution role (Lambda docs "Sending Lambda function logs to CloudWatch Logs")."""
    for function in FUNCTIONS:
        group = stack.template.properties(function, stack.ids)["LoggingConfig"]["LogGroup"]
        group_arn = f"arn:aws:logs:{stack.ids.region}:{stack.ids.account_id}:log-group:{group}"
        stream = f"{group_arn}:log-stream:2026/01/01/[$LATEST]0123456789abcdef"
        # Both are authorized on the log stream (Service Authorization Reference, CloudWatch Logs).
        enforcement.check(function, Request("logs:CreateLogStream", stream), "Lambda:Logs")
        enforcement.check(function, Request("logs:PutLogEvents", stream), "Lambda:Logs")


def _sweep(stack: EmulatedStack, sandbox: SandboxServer) -> None:
    """One sweep finding one failed download, whose event then goes through the pipeline."""
    sandbox.add_download(SWEPT_ID, status="error", created_at=datetime.now(UTC))
    try:
        stack.invoke("SweeperFunction", {})
    except FunctionError:
        return  # a denied call: recorded by the enforcement, reported by the pass
    consumer = QueueConsumer(stack)
    consumer.run(until=lambda: any(SWEPT_ID in d.body for d in consumer.deliveries), timeout=20)
    with acting_as("RetryFunction"):  # the mapping reads the queue's attributes too
        stack.client("sqs").get_queue_attributes(QueueUrl=stack.retry_queue_url, AttributeNames=["All"])


def _trip_the_breaker(stack: EmulatedStack) -> None:
    """Ticks that open the breaker (the demo's 503) and probe, then an operator's open and
    close: every call the breaker makes."""
    events = [{"action": "tick"}, {"action": "tick"}]
    events += [{"action": action, "reason": "iam pass"} for action in ("open", "close")]
    for event in events:
        try:
            stack.invoke("BreakerFunction", event)
        except FunctionError:
            return  # a denied call: recorded by the enforcement, reported by the pass


def _customer_keys(stack: EmulatedStack) -> dict[str, str]:
    """Resource ARN -> the customer-managed key (by ARN) encrypting it: the queues, the secret."""
    keys = {}
    for logical_id, key_property in (
        ("AWS::SQS::Queue", "KmsMasterKeyId"),
        ("AWS::SecretsManager::Secret", "KmsKeyId"),
    ):
        for resource in stack.template.resources_of_type(logical_id):
            key = stack.template.properties(resource, stack.ids).get(key_property, "")
            if str(key).startswith("arn:"):  # an AWS managed key (alias/aws/...) needs no grant
                physical = stack.ids.resources[resource]
                keys[physical.attributes.get("Arn") or physical.ref] = str(key)
    return keys


def readme_key_policy() -> list[dict[str, Any]]:
    """The key-policy statements docs/operating.md tells users to add for a customer-managed key."""
    text = (PROJECT_ROOT / "docs" / "operating.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- kms-key-policy -->\s*```json\n(.*?)```", text, re.DOTALL)
    if match is None:
        raise TemplateError("docs/operating.md lacks the key policy (<!-- kms-key-policy --> then json)")
    statements: list[dict[str, Any]] = json.loads(match.group(1))["Statement"]
    return statements


def key_policy(stack: EmulatedStack) -> dict[str, Any]:
    """A customer-managed key's policy as docs/operating.md asks for it: AWS's default statement
    (the account's IAM policies may grant use of the key) plus that page's statements."""
    account, region = stack.ids.account_id, stack.ids.region
    default = {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    text = json.dumps(readme_key_policy())
    for placeholder, value in (
        ("ACCOUNT_ID", account),
        ("REGION", region),
        ("STACK_NAME", stack.ids.stack_name),
    ):
        text = text.replace(placeholder, value)
    return {"Version": "2012-10-17", "Statement": [default, *json.loads(text)]}


def _mapping_functions(stack: EmulatedStack) -> dict[str, str]:
    mappings = stack.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    return {m["UUID"]: m["FunctionArn"] for m in mappings}


def _secret_arns(stack: EmulatedStack) -> dict[str, str]:
    secrets = stack.client("secretsmanager").list_secrets()["SecretList"]
    return {s["Name"]: s["ARN"] for s in secrets}


def _unique(denials: list[Denial]) -> list[Denial]:
    return list(dict.fromkeys(denials))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pass; exit 1 and name each problem when least privilege does not hold."""
    parser = argparse.ArgumentParser(
        prog="python -m videodb_retry_local.commands.iam_pass", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--template", default=str(DEFAULT_TEMPLATE), help="the SAM template (default: template.yaml)"
    )
    add_param_option(parser)
    args = parser.parse_args(argv)
    demo.quiet_logs(verbose=False)
    problems = run_pass(args.template, dict(args.param))
    for problem in problems:
        print(f"iam: {problem}", file=sys.stderr)
    verdict = (
        f"FAILED, {len(problems)} problem(s)" if problems else "every call allowed, every call exercised"
    )
    print(f"iam: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
