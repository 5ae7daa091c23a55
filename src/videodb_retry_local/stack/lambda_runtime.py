"""The Lambda runtime, emulated in-process: the context object, loading a function's real
handler module with its environment, one invocation at a time, and moto's Lambda ``Invoke``
routed to those handlers (so the Step Functions workflow really calls the poll function)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from moto.awslambda_simple.models import LambdaSimpleBackend

from videodb_retry_local.stack.iam.iam_enforcement import acting_as
from videodb_retry_local.stack.template import PhysicalIds, TemplateError

# One handler runs at a time in this process: a Lambda execution environment serves one
# invocation at a time, and both functions share the layer package's module-level state.
_INVOKE_LOCK = threading.RLock()


@dataclass
class LocalLambdaContext:
    """A stand-in for the Lambda context object handlers receive."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def log_group_name(self) -> str:
        """The log group Lambda would write to."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A log stream name in Lambda's format."""
        return f"{time.strftime('%Y/%m/%d')}/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's configured timeout."""
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


@dataclass
class Invocation:
    """One call of a function handler (local-only record for tests and the demo)."""

    function: str
    request_id: str
    seconds: float
    error_type: str | None = None
    error_message: str | None = None


class FunctionError(Exception):
    """A handler raised: what Lambda reports as an ``Unhandled`` function error."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload['errorType']}: {payload['errorMessage']}")
        self.payload = payload


@dataclass
class LocalFunction:
    """A function of the template, loaded from its real handler module."""

    logical_id: str
    name: str
    arn: str
    handler: Callable[[Any, Any], Any]
    module: ModuleType
    memory_mb: int
    timeout_seconds: int
    # Powertools Parameters' providers (and so the cached secret) of this function's own
    # execution environment: in AWS each function caches the key apart.
    parameter_providers: dict[str, Any] = field(default_factory=dict)


class HandlerRouting:
    """Routes moto's Lambda ``Invoke`` to the loaded handlers and runs them as Lambda would
    (mixed into :class:`~videodb_retry_local.stack.emulated_stack.EmulatedStack`)."""

    ids: PhysicalIds
    functions: dict[str, LocalFunction]
    invocations: list[Invocation]
    _suffix: str
    _saved_env: dict[str, str] | None
    _patch: Any

    def _route_lambda_invokes(self) -> None:
        original = LambdaSimpleBackend.invoke
        stack = self

        def invoke(
            backend: Any,
            function_name: str,
            qualifier: Any,
            body: Any,
            headers: Any,
            response_headers: dict[str, str],
        ) -> Any:
            function = stack._function_by_name(function_name)
            if function is None:
                return original(backend, function_name, qualifier, body, headers, response_headers)
            event = json.loads(body) if body else {}
            try:
                result = stack.invoke(function.logical_id, event)
            except FunctionError as exc:
                # How Lambda reports an unhandled error; Step Functions takes errorType as the
                # error name its Retry and Catch match.
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(exc.payload).encode()
            return json.dumps(result).encode()

        self._patch = mock.patch.object(LambdaSimpleBackend, "invoke", invoke)
        self._patch.start()

    def _function_by_name(self, name_or_arn: str) -> LocalFunction | None:
        name = name_or_arn.split(":function:")[-1].split(":")[0]
        return next((f for f in self.functions.values() if f.name == name), None)

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Run a function's handler with ``event``; raise :class:`FunctionError` if it raises."""
        function = self.functions[logical_id]
        context = LocalLambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
        )
        record = Invocation(function=logical_id, request_id=context.aws_request_id, seconds=0.0)
        started = time.monotonic()
        try:
            # Its AWS calls are made as its execution role (checked when IAM is enforced).
            with _INVOKE_LOCK, acting_as(logical_id), _own_parameter_cache(function):
                return function.handler(event, context)
        except Exception as exc:
            record.error_type, record.error_message = type(exc).__name__, str(exc)
            raise FunctionError(
                {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                }
            ) from exc
        finally:
            record.seconds = time.monotonic() - started
            self.invocations.append(record)

    def _load_handler(
        self, logical_id: str, code_dir: Path, handler: str, environment: dict[str, str]
    ) -> tuple[ModuleType, Callable[[Any, Any], Any]]:
        """Import ``code_dir/<module>.py`` fresh, with the function's environment in place."""
        module_file, _, attribute = handler.rpartition(".")
        assert self._saved_env is not None
        os.environ.clear()
        os.environ.update(self._saved_env)
        # What the Lambda runtime adds; AWS_SAM_LOCAL as `sam local` sets it (tracing stays off).
        os.environ.update(
            {"AWS_REGION": self.ids.region, "AWS_DEFAULT_REGION": self.ids.region, "AWS_SAM_LOCAL": "true"}
        )
        os.environ.update(environment)
        self._reset_caches()  # settings and clients are read at import: from this environment
        name = f"videodb_retry_local_function_{logical_id}_{self._suffix}"
        spec = importlib.util.spec_from_file_location(name, code_dir / f"{module_file}.py")
        if spec is None or spec.loader is None:
            raise TemplateError(f"{logical_id}: cannot load handler {handler} from {code_dir}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _configure_observability(environment)
        return module, getattr(module, attribute)

    @staticmethod
    def _reset_caches() -> None:
        from aws_lambda_powertools.utilities import parameters
        from videodb_retry import settings
        from videodb_retry.adapters import aws_clients, request_gate_aws

        settings.current.cache_clear()
        aws_clients.client.cache_clear()
        request_gate_aws.gate_client.cache_clear()
        parameters.clear_caches()


@contextlib.contextmanager
def _own_parameter_cache(function: LocalFunction) -> Iterator[None]:
    """Give the invocation its function's own Powertools Parameters providers (one handler
    runs at a time, so swapping the module-level ones is safe)."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    others = dict(DEFAULT_PROVIDERS)
    DEFAULT_PROVIDERS.clear()
    DEFAULT_PROVIDERS.update(function.parameter_providers)
    try:
        yield
    finally:
        function.parameter_providers = dict(DEFAULT_PROVIDERS)
        DEFAULT_PROVIDERS.clear()
        DEFAULT_PROVIDERS.update(others)


def _configure_observability(environment: dict[str, str]) -> None:
    """Apply the function's Powertools settings to the shared logger and metrics.

    The layer's observability objects may have been created before this environment was in
    place (one process holds both functions); their level and namespace follow it here.
    """
    observability = sys.modules.get("videodb_retry.observability")
    if observability is None:
        return
    if "POWERTOOLS_LOG_LEVEL" in environment:
        observability.logger.setLevel(environment["POWERTOOLS_LOG_LEVEL"])
    if environment.get("POWERTOOLS_METRICS_NAMESPACE"):
        observability.metrics.namespace = environment["POWERTOOLS_METRICS_NAMESPACE"]


def zip_dir(directory: Path, prefix: str = "") -> bytes:
    """A deployment package of ``directory`` (sources only) as zip bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
                archive.write(path, str(Path(prefix) / path.relative_to(directory)))
    return buffer.getvalue()
