"""IAM enforced in the local run: every AWS call a function or the workflow makes is
authorized against its own execution role, as AWS would, and refused when AWS would refuse it.

moto answers every call. Here each botocore call is first given a principal — the function
whose invocation makes it (:func:`acting_as`; a thread pool the function starts inherits it),
or the state machine for the calls Step Functions' own task integrations make — then turned
into the IAM action and resource ARN AWS would authorize (:mod:`videodb_retry_local.stack.iam.iam_requests`),
and evaluated by ``@cloud-copilot/iam-simulate`` (AWS's policy evaluation logic, run by
``scripts/iam/evaluate.mjs``) against that principal's policies from the official SAM
translation (:mod:`videodb_retry_local.stack.iam.sam_translation`). A denied call raises the
``AccessDenied`` error AWS returns, and every denial is kept in :attr:`Enforcement.denials`,
including those the code would tolerate (a visibility change, for instance).

Calls made by the local harness itself (creating resources, reading the DLQ in a test) have no
principal and are not checked.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.client
from botocore.exceptions import ClientError

from videodb_retry_local.stack.iam.iam_requests import Request, RequestContext, requests_for
from videodb_retry_local.stack.iam.sam_translation import ExecutionRole
from videodb_retry_local.stack.template import PROJECT_ROOT

EVALUATOR_DIR = PROJECT_ROOT / "scripts" / "iam"
_ACTING = threading.local()
_STEP_FUNCTIONS_ACCESS_KEY = "ak"  # moto.stepfunctions.parser.asl.utils.boto_client


class EvaluatorMissing(RuntimeError):
    """The policy evaluator is not installed (``make iam-deps``) or node is missing."""


@dataclass(frozen=True)
class Denial:
    """One call AWS would refuse: who asked, for what, on which resource, and why."""

    principal: str
    action: str
    resource: str
    decision: str
    operation: str

    def __str__(self) -> str:
        return (
            f"{self.principal} may not {self.action} on {self.resource} ({self.decision}; {self.operation})"
        )


@contextlib.contextmanager
def acting_as(principal: str) -> Iterator[None]:
    """Calls made by this thread (and pools it starts) inside the block are ``principal``'s."""
    stack = _principal_stack()
    stack.append(principal)
    try:
        yield
    finally:
        stack.pop()


def current_principal() -> str | None:
    """The principal the calling thread acts as, if any."""
    stack = _principal_stack()
    return stack[-1] if stack else None


def _principal_stack() -> list[str]:
    if not hasattr(_ACTING, "stack"):
        _ACTING.stack = []
    stack: list[str] = _ACTING.stack
    return stack


class PolicyEvaluator:
    """A long-lived ``node scripts/iam/evaluate.mjs``: one JSON question and answer a line."""

    def __init__(self, directory: Path = EVALUATOR_DIR) -> None:
        node = shutil.which("node")
        if node is None or not (directory / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
            raise EvaluatorMissing(
                f"the IAM evaluator is not installed: run `make iam-deps` (npm ci in {directory})"
            )
        self._process = subprocess.Popen(  # noqa: S603 - a fixed script of this repository
            [node, str(directory / "evaluate.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=directory,
        )
        self._lock = threading.Lock()
        self._asked = 0

    def decide(self, question: Mapping[str, Any]) -> str:
        """``Allowed``, ``ImplicitlyDenied`` or ``ExplicitlyDenied`` (``Error`` raises)."""
        with self._lock:
            self._asked += 1
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps({"id": self._asked, **question}) + "\n")
            self._process.stdin.flush()
            answer = json.loads(self._process.stdout.readline() or "{}")
        if answer.get("decision") not in ("Allowed", "ImplicitlyDenied", "ExplicitlyDenied"):
            raise RuntimeError(f"the IAM evaluator could not evaluate {question['action']}: {answer}")
        return str(answer["decision"])

    def close(self) -> None:
        """End the node process."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)


@dataclass
class Enforcement:
    """Authorize every principal's AWS calls while active (a context manager)."""

    roles: Mapping[str, ExecutionRole]
    context: RequestContext
    workflow: str  # the logical id of the state machine (principal of Step Functions' tasks)
    evaluator: PolicyEvaluator = field(default_factory=PolicyEvaluator)
    denials: list[Denial] = field(default_factory=list)
    authorized: set[tuple[str, str]] = field(default_factory=set)  # (principal, action) allowed
    _cache: dict[tuple[str, Request], str] = field(default_factory=dict)

    def role_arn(self, principal: str) -> str:
        """The ARN a principal's calls are made as (its role, as in AWS)."""
        role = self.roles[principal].role_logical_id
        return f"arn:aws:iam::{self.context.account_id}:role/{role}"

    def check(self, principal: str, request: Request, operation: str) -> Denial | None:
        """Evaluate one request; record and return the denial if AWS would refuse it."""
        if principal not in self.roles:
            raise KeyError(f"{principal} has no execution role in the translated template")
        key = (principal, request)
        if key not in self._cache:
            self._cache[key] = self.evaluator.decide(
                {
                    "principal": self.role_arn(principal),
                    "action": request.action,
                    "resource": request.resource,
                    "account": self.context.account_id,
                    "identityPolicies": [{"name": n, "policy": p} for n, p in self.roles[principal].policies],
                    # A KMS key is usable only as far as its key policy lets IAM policies grant it.
                    "resourcePolicy": self.context.key_policies.get(request.resource),
                    "context": dict(request.condition_keys),
                }
            )
        decision = self._cache[key]
        if decision == "Allowed":
            self.authorized.add((principal, request.action))
            return None
        denial = Denial(principal, request.action, request.resource, decision, operation)
        self.denials.append(denial)
        return denial

    def check_service(
        self, service: str, action: str, resource: str, policy: Mapping[str, Any], context: Mapping[str, str]
    ) -> Denial | None:
        """Evaluate a call an AWS service makes for the app, allowed only by a resource policy."""
        decision = self.evaluator.decide(
            {
                "principal": service,
                "action": action,
                "resource": resource,
                "account": self.context.account_id,
                "resourcePolicy": policy,
                "context": dict(context),
            }
        )
        if decision == "Allowed":
            self.authorized.add((service, action))
            return None
        denial = Denial(service, action, resource, decision, "service delivery")
        self.denials.append(denial)
        return denial

    def __enter__(self) -> Enforcement:
        self._patches = contextlib.ExitStack()
        self._patches.enter_context(
            mock.patch.object(botocore.client.BaseClient, "_make_api_call", self._wrap_calls())
        )
        self._patches.enter_context(
            mock.patch.object(concurrent.futures.ThreadPoolExecutor, "submit", _inheriting_submit())
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._patches.close()
        self.evaluator.close()

    def _wrap_calls(self) -> Callable[..., Any]:
        original = botocore.client.BaseClient._make_api_call
        enforcement = self

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            principal = _step_functions_principal(client, enforcement.workflow) or current_principal()
            if principal is not None:
                for request in requests_for(client, operation, params, enforcement.context):
                    if enforcement.context.is_other_stack(request.resource):
                        continue  # a late call of a stack closed before this one (moto threads)
                    denial = enforcement.check(principal, request, operation)
                    if denial is not None:
                        raise _access_denied(enforcement.role_arn(principal), denial, operation)
            return original(client, operation, params)

        return make_api_call


def _inheriting_submit() -> Callable[..., Any]:
    original = concurrent.futures.ThreadPoolExecutor.submit

    def submit(executor: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        principal = current_principal()
        if principal is None:
            return original(executor, fn, *args, **kwargs)

        def as_principal(*inner_args: Any, **inner_kwargs: Any) -> Any:
            with acting_as(principal):
                return fn(*inner_args, **inner_kwargs)

        return original(executor, as_principal, *args, **kwargs)

    return submit


def _step_functions_principal(client: Any, workflow: str) -> str | None:
    """The state machine, for a client Step Functions' task integrations made: moto builds
    those (``boto_client_for``) with the fixed access key ``ak``, which nothing else uses."""
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    return workflow if getattr(credentials, "access_key", None) == _STEP_FUNCTIONS_ACCESS_KEY else None


def _access_denied(principal_arn: str, denial: Denial, operation: str) -> ClientError:
    # AWS's wording for a call no identity-based policy allows.
    message = (
        f"User: {principal_arn} is not authorized to perform: {denial.action} on resource: "
        f"{denial.resource} because no identity-based policy allows the {denial.action} action"
    )
    code = "AccessDenied" if denial.action.startswith("sqs:") else "AccessDeniedException"
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)
