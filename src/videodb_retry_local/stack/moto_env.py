"""moto set up for the local run: fake credentials, the mock's configuration, AWS's limits
enforced (:mod:`videodb_retry_local.stack.aws_limits`) and DynamoDB writes made atomic as in AWS."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from moto import mock_aws
from moto.core.config import DefaultConfig

from videodb_retry_local.stack.aws_limits import strict_aws
from videodb_retry_local.stack.presets import LOCAL_RETRY_WAIT_SCALE

REGION = "us-east-1"
STACK_NAME = "videodb-retry-local"
# moto's configuration for the local run: state machines really execute; Lambda tasks reach
# LambdaSimpleBackend.invoke, which the stack routes to the real handler modules.
MOTO_CONFIG: DefaultConfig = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@contextlib.contextmanager
def local_aws(retry_wait_scale: float = LOCAL_RETRY_WAIT_SCALE) -> Iterator[None]:
    """Fake credentials and an active moto mock configured for the local run, with AWS's
    limits enforced on every call (:mod:`videodb_retry_local.stack.aws_limits`): a request real AWS
    would refuse is refused, and the run fails on leaving this context. The workflow's Retry
    waits are shrunk by ``retry_wait_scale`` (see presets.LOCAL_RETRY_WAIT_SCALE)."""
    with (
        mock.patch.dict(os.environ, FAKE_CREDENTIALS),
        mock_aws(config=MOTO_CONFIG),
        atomic_dynamodb_writes(),
        strict_aws(),
        scaled_retry_waits(retry_wait_scale),
    ):
        yield


@contextlib.contextmanager
def scaled_retry_waits(scale: float) -> Iterator[None]:
    """moto's Step Functions sleeps ``scale`` times each Retry interval (its order, counts and
    back-off are unchanged): the intervals are literals of the definition, not parameters."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    def sleep(seconds: float) -> None:
        time.sleep(seconds * scale)

    clock = types.SimpleNamespace(sleep=sleep, time=time.time, monotonic=time.monotonic)
    with mock.patch.object(retrier_decl, "time", clock):
        yield


# moto checks a DynamoDB condition and then writes, with no lock between: records of a batch
# run on several threads, so two copies of one message could both pass the idempotency
# ledger's condition there, which real DynamoDB never allows.
_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


@contextlib.contextmanager
def atomic_dynamodb_writes() -> Iterator[None]:
    """Serialise moto's DynamoDB item writes, so a conditional write is atomic as in AWS."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)

        return write

    with contextlib.ExitStack() as patches:
        for name in _DYNAMODB_WRITES:
            if hasattr(DynamoDBBackend, name):
                patches.enter_context(
                    mock.patch.object(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))
                )
        yield


@contextlib.contextmanager
def direct_http() -> Iterator[None]:
    """``requests`` straight to the socket while moto is active.

    moto's mock also routes every ``requests`` call through the ``responses`` library, matching
    its URL against every AWS pattern before passing it through; the functions' calls to the
    sandbox (and the benchmarks' bare baseline's) would pay that. Only boto3 is mocked
    meanwhile; :func:`videodb_retry_local.stack.network_guard.loopback_only` around the run still
    refuses anything but loopback.
    """
    from moto.core.models import responses_mock

    started = getattr(responses_mock, "_patcher", None) is not None
    if started:
        responses_mock.stop(allow_assert=False)
    try:
        yield
    finally:
        if started:
            responses_mock.start()
