"""`make iam`: least privilege proven by execution.

Creates the emulated stack from a template (the sweeper on), enforces IAM on it
(:mod:`videodb_retry_local.iam_enforcement`: each function and the workflow acting under its
own role from the official SAM translation), and drives every AWS call the app makes through
the real handlers and the executing workflow: the demo's mix of downloads (retry, poll,
re-queue, outcome events, DLQ for poison and refused ids, visibility backoff after a 503,
idempotency records, the secret), then a sweep. It also checks the calls AWS services make on
the app's behalf: the schedule invoking the sweeper, the event source mapping's queue access,
EventBridge delivering failure events to the queue under the queue policy.

It fails, naming principal, action and resource, when any call was denied, and when a call
it must exercise was not made (so the pass cannot quietly shrink).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from videodb_retry_local import demo
from videodb_retry_local.iam_enforcement import Denial, Enforcement, acting_as
from videodb_retry_local.iam_requests import RequestContext
from videodb_retry_local.sam_translation import execution_roles, translate
from videodb_retry_local.sandbox import SandboxServer
from videodb_retry_local.stack import EmulatedStack, FunctionError, QueueConsumer, local_aws
from videodb_retry_local.template import DEFAULT_TEMPLATE

TIMEOUT_SECONDS = 90
SWEPT_ID = "dl-iam-swept"
# The demo's mix but its never-ending download: a timed-out attempt makes no call that a
# failed one does not, and waiting for its deadline would only slow the pass down.
CASES = [case for case in demo.CASES if case.download_id != "dl-demo-stuck"]
# (principal, action) pairs the pass must see allowed at least once: every kind of AWS call
# the functions, the workflow and the services acting for them make.
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
    ("RetryWorkflow", "lambda:InvokeFunction"),
    ("RetryWorkflow", "sqs:SendMessage"),
    ("RetryWorkflow", "events:PutEvents"),
    ("SweeperFunction", "secretsmanager:GetSecretValue"),
    ("SweeperFunction", "dynamodb:PutItem"),
    ("SweeperFunction", "events:PutEvents"),
    ("SweeperFunctionSweep", "lambda:InvokeFunction"),
    ("events.amazonaws.com", "sqs:SendMessage"),
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
            **demo.SANDBOX_PARAMETERS,
            "SweeperEnabled": "true",
            "LogLevel": "ERROR",
            **(parameters or {}),
            "VideoDBApiBaseUrl": sandbox.base_url,
        }
        with local_aws(), EmulatedStack(demo.SANDBOX_KEY, overrides, template_path=template_path) as stack:
            roles = execution_roles(translate(stack.template), stack.template, stack.ids)
            context = RequestContext(
                region=stack.ids.region, account_id=stack.ids.account_id, secret_arns=_secret_arns(stack)
            )
            with Enforcement(roles, context, workflow="RetryWorkflow") as enforcement:
                _check_service_calls(stack, enforcement)
                unfinished = _drive(stack, sandbox, enforcement)
                if not enforcement.denials:
                    _sweep(stack, sandbox)
                problems = [f"denied: {d}" for d in _unique(enforcement.denials)]
                if problems:  # the pass stopped at the first denial: the rest says nothing
                    return problems
                problems += [
                    f"not exercised: {principal} {action}"
                    for principal, action in sorted(MUST_EXERCISE - enforcement.authorized)
                ]
                problems += [f"did not end: {k}" for k in unfinished]
    return problems


def _drive(stack: EmulatedStack, sandbox: SandboxServer, enforcement: Enforcement) -> list[str]:
    """Send the cases in and run the queue until all have ended or a call was denied;
    the ids that did not end."""
    consumer = QueueConsumer(stack)
    for case in CASES:
        demo.send(stack, case)

    def ended() -> bool:
        endings = demo.collect(stack, consumer, sandbox, CASES)
        return bool(enforcement.denials) or all(e.final for e in endings.values())

    consumer.run(until=ended, timeout=TIMEOUT_SECONDS)
    endings = demo.collect(stack, consumer, sandbox, CASES)
    return [k for k, e in endings.items() if not e.final]


def _check_service_calls(stack: EmulatedStack, enforcement: Enforcement) -> None:
    """What AWS services do for the app, authorized as AWS authorizes them."""
    queue_arn = stack.ids.resources["RetryQueue"].attributes["Arn"]
    # Lambda checks the execution role's access to the queue when it creates the mapping.
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        enforcement.check("RetryFunction", action, queue_arn, "CreateEventSourceMapping")
    sweeper_arn = stack.ids.resources["SweeperFunction"].attributes["Arn"]
    enforcement.check("SweeperFunctionSweep", "lambda:InvokeFunction", sweeper_arn, "Scheduler:Invoke")
    policy = stack.template.properties("RetryQueuePolicy", stack.ids)["PolicyDocument"]
    rule_arn = stack.ids.resources["DownloadFailedRule"].attributes["Arn"]
    enforcement.check_service(
        "events.amazonaws.com", "sqs:SendMessage", queue_arn, policy, {"aws:SourceArn": rule_arn}
    )


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


def _secret_arns(stack: EmulatedStack) -> dict[str, str]:
    secrets = stack.client("secretsmanager").list_secrets()["SecretList"]
    return {s["Name"]: s["ARN"] for s in secrets}


def _unique(denials: list[Denial]) -> list[Denial]:
    return list(dict.fromkeys(denials))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pass; exit 1 and name each problem when least privilege does not hold."""
    parser = argparse.ArgumentParser(
        prog="python -m videodb_retry_local.iam_pass", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--template", default=str(DEFAULT_TEMPLATE), help="the SAM template (default: template.yaml)"
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="parameter override"
    )
    args = parser.parse_args(argv)
    demo.quiet_logs(verbose=False)
    problems = run_pass(args.template, dict(p.split("=", 1) for p in args.param if "=" in p))
    for problem in problems:
        print(f"iam: {problem}", file=sys.stderr)
    verdict = (
        f"FAILED, {len(problems)} problem(s)" if problems else "every call allowed, every call exercised"
    )
    print(f"iam: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
