"""The SAM stack emulated in-process with moto, running the project's real handlers.

:class:`EmulatedStack` creates every resource of template.yaml inside an active moto mock
(see :func:`local_aws`), with properties derived from the template only, and routes moto's
Lambda ``Invoke`` to ``functions/<name>/app.py``, so the Step Functions workflow really calls
the poll function. :class:`QueueConsumer` plays Lambda's SQS event source mapping for the
retry function. Two local-only helpers are added and named as such: an observer rule and
queue that capture every outcome event, and a record of every function invocation.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import secrets
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.models import botocore_stubber

from videodb_retry_local.aws_limits import strict_aws
from videodb_retry_local.iam_enforcement import acting_as
from videodb_retry_local.template import DEFAULT_TEMPLATE, Physical, PhysicalIds, Template, TemplateError

REGION = "us-east-1"
STACK_NAME = "videodb-retry-local"
# moto's configuration for the local run: state machines really execute; Lambda tasks reach
# LambdaSimpleBackend.invoke, which the stack routes to the real handler modules.
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
LAMBDA_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
STATES_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
# One handler runs at a time in this process: a Lambda execution environment serves one
# invocation at a time, and both functions share the layer package's module-level state.
_INVOKE_LOCK = threading.RLock()


@contextlib.contextmanager
def local_aws() -> Iterator[None]:
    """Fake credentials and an active moto mock configured for the local run, with AWS's
    limits enforced on every call (:mod:`videodb_retry_local.aws_limits`): a request real AWS
    would refuse is refused, and the run fails on leaving this context."""
    with (
        mock.patch.dict(os.environ, FAKE_CREDENTIALS),
        mock_aws(config=MOTO_CONFIG),  # type: ignore[arg-type]
        atomic_dynamodb_writes(),
        strict_aws(),
    ):
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


def _metric_queries(queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CloudFormation's alarm ``Metrics`` as PutMetricAlarm takes them (Period an integer)."""
    out = []
    for query in queries:
        query = dict(query)
        if "MetricStat" in query:
            query["MetricStat"] = {**query["MetricStat"], "Period": int(query["MetricStat"]["Period"])}
        if "ReturnData" in query:
            query["ReturnData"] = str(query["ReturnData"]).lower() == "true"
        out.append(query)
    return out


class EmulatedStack:
    """Every resource of template.yaml, created in moto; use inside :func:`local_aws`.

    ``api_key`` is put into the created secret as JSON ``{"api_key": ...}`` or, with
    ``api_key_format="plain"``, as the bare key (``None`` leaves the template's empty value).
    ``overrides`` are template parameter overrides (e.g. short waits for tests and the demo).
    """

    def __init__(
        self,
        api_key: str | None,
        overrides: Mapping[str, Any] | None = None,
        template_path: Path | str = DEFAULT_TEMPLATE,
        api_key_format: str = "json",
        stack_name: str = STACK_NAME,
        region: str = REGION,
    ) -> None:
        self.template = Template.load(template_path, overrides)
        self.ids = PhysicalIds(stack_name=stack_name, region=region)
        self.functions: dict[str, LocalFunction] = {}
        self.invocations: list[Invocation] = []
        self.outputs: dict[str, Any] = {}
        self.observer_queue_url = ""
        self._api_key = api_key
        self._api_key_format = api_key_format
        self._suffix = secrets.token_hex(4).upper()
        self._saved_env: dict[str, str] | None = None
        self._clients: dict[str, Any] = {}
        self._patch: Any = None
        self._outcomes: list[dict[str, Any]] = []
        self._dead_letters: list[dict[str, Any]] = []

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> EmulatedStack:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create(self) -> EmulatedStack:
        """Create every resource in dependency order, then the local-only observer."""
        self._saved_env = dict(os.environ)
        self._reset_caches()
        creators = {
            "AWS::SecretsManager::Secret": self._create_secret,
            "AWS::Serverless::LayerVersion": self._create_layer,
            "AWS::SQS::Queue": self._create_queue,
            "AWS::Events::Rule": self._create_rule,
            "AWS::SQS::QueuePolicy": self._create_queue_policy,
            "AWS::Logs::LogGroup": self._create_log_group,
            "AWS::Serverless::Function": self._create_function,
            "AWS::Serverless::StateMachine": self._create_state_machine,
            "AWS::DynamoDB::Table": self._create_table,
            "AWS::Serverless::SimpleTable": self._create_table,
            "AWS::SNS::Topic": self._create_topic,
            "AWS::CloudWatch::Alarm": self._create_alarm,
            "AWS::CloudWatch::Dashboard": self._create_dashboard,
        }
        try:
            self._route_lambda_invokes()
            resources = self.template.resources()
            for logical_id in self.template.creation_order():
                kind = resources[logical_id]["Type"]
                if kind not in creators:
                    raise TemplateError(f"{logical_id}: the local run cannot create a {kind}")
                creators[kind](logical_id)
            self.outputs = self.template.outputs(self.ids)
            self._create_outcome_observer()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop running executions, unroute Lambda invokes and restore the environment."""
        workflow = self.ids.resources.get(self._logical_of("AWS::Serverless::StateMachine") or "")
        # Only while moto intercepts: after the mock ends a client call would go to AWS.
        if workflow is not None and self._patch is not None and botocore_stubber.enabled:
            sfn = self.client("stepfunctions")
            # Executions run in moto's threads; stopped here, none outlives the mock.
            running = sfn.list_executions(stateMachineArn=workflow.ref, statusFilter="RUNNING")
            for execution in running["executions"]:
                with contextlib.suppress(Exception):
                    sfn.stop_execution(executionArn=execution["executionArn"], error="LocalRunClosed")
        if self._patch is not None:
            self._patch.stop()
            self._patch = None
        for function in self.functions.values():
            sys.modules.pop(function.module.__name__, None)
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None
        self._clients.clear()
        self._reset_caches()

    @property
    def resource_suffix(self) -> str:
        """The suffix every created resource's name carries (CloudFormation's random part)."""
        return self._suffix

    def client(self, service: str) -> Any:
        """A boto3 client in the stack's region (inside the mock: moto), one per service:
        building a client is costly and the consumer asks for some on every batch."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.ids.region)  # type: ignore[call-overload]
        return self._clients[service]

    # -- resources ----------------------------------------------------------------------

    def _name(self, logical_id: str) -> str:
        # CloudFormation's generated-name shape: stack-LogicalId-SUFFIX.
        return f"{self.ids.stack_name}-{logical_id}-{self._suffix}"

    def _logical_of(self, resource_type: str) -> str | None:
        found = self.template.resources_of_type(resource_type)
        return next(iter(found), None)

    def _create_secret(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        sm = self.client("secretsmanager")
        arn = sm.create_secret(
            Name=properties.get("Name", self._name(logical_id)),
            Description=" ".join(str(properties.get("Description", "")).split()),
            SecretString=properties.get("SecretString", ""),
        )["ARN"]
        self.ids.resources[logical_id] = Physical(ref=arn, attributes={"Id": arn})
        if self._api_key is not None:
            # What an operator does after deploying: fill in the key.
            self.put_api_key(self._api_key, self._api_key_format)

    def _create_layer(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        answer = self.client("lambda").publish_layer_version(
            LayerName=properties.get("LayerName", self._name(logical_id)),
            Description=properties.get("Description", ""),
            Content={"ZipFile": _zip_dir(self.template.base_dir / properties["ContentUri"], "python")},
            CompatibleRuntimes=properties.get("CompatibleRuntimes", []),
            CompatibleArchitectures=properties.get("CompatibleArchitectures", []),
        )
        self.ids.resources[logical_id] = Physical(ref=answer["LayerVersionArn"])

    def _create_queue(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        sqs = self.client("sqs")
        url = sqs.create_queue(
            QueueName=properties.get("QueueName", self._name(logical_id)),
            Attributes=self.template.queue_attributes(logical_id, self.ids),
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.ids.resources[logical_id] = Physical(
            ref=url, attributes={"Arn": arn, "QueueName": arn.rsplit(":", 1)[1], "QueueUrl": url}
        )

    def _create_rule(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        events = self.client("events")
        bus = properties.get("EventBusName", "default")
        if bus != "default" and not any(b["Name"] == bus for b in events.list_event_buses()["EventBuses"]):
            # The template expects the bus to exist already; locally it is made here.
            events.create_event_bus(Name=bus)
        name = properties.get("Name", self._name(logical_id))
        arn = events.put_rule(
            Name=name,
            EventBusName=bus,
            EventPattern=json.dumps(properties["EventPattern"]),
            Description=properties.get("Description", ""),
            State=properties.get("State", "ENABLED"),
        )["RuleArn"]
        events.put_targets(Rule=name, EventBusName=bus, Targets=properties.get("Targets", []))
        ref = name if bus == "default" else f"{bus}|{name}"
        self.ids.resources[logical_id] = Physical(ref=ref, attributes={"Arn": arn})

    def _create_queue_policy(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        for url in properties["Queues"]:
            self.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(properties["PolicyDocument"])}
            )
        self.ids.resources[logical_id] = Physical(ref=self._name(logical_id))

    def _create_log_group(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        logs = self.client("logs")
        name = properties.get("LogGroupName", self._name(logical_id))
        logs.create_log_group(logGroupName=name)
        if "RetentionInDays" in properties:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(properties["RetentionInDays"]))
        arn = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["arn"]
        self.ids.resources[logical_id] = Physical(ref=name, attributes={"Arn": arn})

    def _create_table(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        name = properties.get("TableName", self._name(logical_id))
        if "PrimaryKey" in properties or "KeySchema" not in properties:  # SimpleTable's shape
            key = properties.get("PrimaryKey", {"Name": "id", "Type": "String"})
            kind = {"String": "S", "Number": "N", "Binary": "B"}[key["Type"]]
            properties = {
                "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": kind}],
            }
        dynamodb = self.client("dynamodb")
        table = dynamodb.create_table(
            TableName=name,
            KeySchema=properties["KeySchema"],
            AttributeDefinitions=properties["AttributeDefinitions"],
            BillingMode=properties.get("BillingMode", "PAY_PER_REQUEST"),
            **(
                {"ProvisionedThroughput": properties["ProvisionedThroughput"]}
                if "ProvisionedThroughput" in properties
                else {}
            ),
        )["TableDescription"]
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        self.ids.resources[logical_id] = Physical(ref=name, attributes={"Arn": table["TableArn"]})

    def _create_topic(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        sns = self.client("sns")
        arn = sns.create_topic(Name=properties.get("TopicName", self._name(logical_id)))["TopicArn"]
        for subscription in properties.get("Subscription", []):
            sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        self.ids.resources[logical_id] = Physical(ref=arn, attributes={"TopicArn": arn})

    def _create_alarm(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        name = properties.get("AlarmName", self._name(logical_id))
        if "Metrics" in properties:  # a metric-math alarm
            metric: dict[str, Any] = {"Metrics": _metric_queries(properties["Metrics"])}
        else:
            metric = {
                "Namespace": properties["Namespace"],
                "MetricName": properties["MetricName"],
                "Dimensions": properties.get("Dimensions", []),
                "Statistic": properties["Statistic"],
                "Period": int(properties["Period"]),
            }
        self.client("cloudwatch").put_metric_alarm(
            AlarmName=name,
            AlarmDescription=properties.get("AlarmDescription", ""),
            **metric,
            EvaluationPeriods=int(properties["EvaluationPeriods"]),
            Threshold=float(properties["Threshold"]),
            ComparisonOperator=properties["ComparisonOperator"],
            TreatMissingData=properties.get("TreatMissingData", "missing"),
            AlarmActions=properties.get("AlarmActions", []),
        )
        self.ids.resources[logical_id] = Physical(ref=name, attributes={})

    def _create_dashboard(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        name = properties.get("DashboardName", self._name(logical_id))
        self.client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=properties["DashboardBody"])
        self.ids.resources[logical_id] = Physical(ref=name, attributes={})

    def _role(self, logical_id: str, trust: dict[str, Any]) -> str:
        # SAM generates one role per function/state machine from its Policies; moto does not
        # enforce IAM, so the local roles only carry the trust policy.
        return self.client("iam").create_role(
            RoleName=f"{self._name(logical_id)}-Role"[:64], AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]

    def _create_function(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        environment = self.template.function_environment(logical_id, self.ids)
        name = properties.get("FunctionName", self._name(logical_id))[:64]
        code_dir = self.template.base_dir / properties["CodeUri"]
        answer = self.client("lambda").create_function(
            FunctionName=name,
            Description=properties.get("Description", ""),
            Runtime=properties["Runtime"],
            Handler=properties["Handler"],
            Role=self._role(logical_id, LAMBDA_TRUST_POLICY),
            Code={"ZipFile": _zip_dir(code_dir)},
            Timeout=int(properties.get("Timeout", 3)),
            MemorySize=int(properties.get("MemorySize", 128)),
            Architectures=properties.get("Architectures", ["x86_64"]),
            Layers=properties.get("Layers", []),
            TracingConfig={"Mode": properties.get("Tracing", "PassThrough")},
            Environment={"Variables": environment},
        )
        module, handler = self._load_handler(logical_id, code_dir, properties["Handler"], environment)
        self.functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            name=name,
            arn=answer["FunctionArn"],
            handler=handler,
            module=module,
            memory_mb=int(properties.get("MemorySize", 128)),
            timeout_seconds=int(properties.get("Timeout", 3)),
        )
        self.ids.resources[logical_id] = Physical(ref=name, attributes={"Arn": answer["FunctionArn"]})
        self._create_event_source_mappings(logical_id, name)

    def _create_event_source_mappings(self, logical_id: str, function_name: str) -> None:
        """The AWS::Lambda::EventSourceMapping SAM makes of each SQS event (logical id
        ``<Function><Event>``). The :class:`QueueConsumer` plays it and honours its State;
        moto's own delivery on SendMessage is detached, or it would consume the queue too."""
        from moto.sqs.models import sqs_backends

        events = self.template.properties(logical_id, self.ids).get("Events", {})
        for event_name, event in events.items():
            if event.get("Type") != "SQS":
                continue
            source = event["Properties"]
            mapping = self.client("lambda").create_event_source_mapping(
                FunctionName=function_name,
                EventSourceArn=source["Queue"],
                BatchSize=int(source.get("BatchSize", 10)),
                Enabled=bool(source.get("Enabled", True)),
                FunctionResponseTypes=source.get("FunctionResponseTypes", []),
                **_scaling_config(source),
            )
            account = source["Queue"].split(":")[4]  # arn:aws:sqs:region:account:name
            for queue in sqs_backends[account][self.ids.region].queues.values():
                if queue.queue_arn == source["Queue"]:
                    queue.lambda_event_source_mappings.pop(mapping["FunctionArn"], None)
            self.ids.resources[f"{logical_id}{event_name}"] = Physical(ref=mapping["UUID"])

    def _create_state_machine(self, logical_id: str) -> None:
        properties = self.template.properties(logical_id, self.ids)
        name = properties.get("Name", self._name(logical_id))
        logging_config = properties.get("Logging", {})
        arn = self.client("stepfunctions").create_state_machine(
            name=name,
            definition=self.template.state_machine_definition(logical_id, self.ids),
            roleArn=self._role(logical_id, STATES_TRUST_POLICY),
            type=properties.get("Type", "STANDARD"),
            loggingConfiguration={
                "level": logging_config.get("Level", "OFF"),
                "includeExecutionData": bool(logging_config.get("IncludeExecutionData", False)),
                "destinations": [
                    {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
                    for d in logging_config.get("Destinations", [])
                ],
            },
            tracingConfiguration={"enabled": bool(properties.get("Tracing", {}).get("Enabled", False))},
        )["stateMachineArn"]
        self.ids.resources[logical_id] = Physical(ref=arn, attributes={"Name": name, "Arn": arn})

    def _create_outcome_observer(self) -> None:
        """Local only: a rule catching every outcome event into a queue callers can read."""
        sources = sorted(self.outcome_event_sources())
        sqs, events = self.client("sqs"), self.client("events")
        name = f"{self.ids.stack_name}-local-outcome-observer"
        self.observer_queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.observer_queue_url, AttributeNames=["QueueArn"])
        bus = self.event_bus_name
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": sources}))
        events.put_targets(
            Rule=name,
            EventBusName=bus,
            Targets=[{"Id": "observer", "Arn": queue_arn["Attributes"]["QueueArn"]}],
        )

    # -- routing Lambda invokes to the handlers -----------------------------------------

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
        from videodb_retry import aws_clients, settings

        settings.current.cache_clear()
        aws_clients.client.cache_clear()
        parameters.clear_caches()

    # -- what callers use ---------------------------------------------------------------

    def ref(self, logical_id: str) -> str:
        """What ``Ref`` of a created resource gives (queue URL, function name, ...)."""
        return self.ids.resources[logical_id].ref

    @property
    def retry_queue_url(self) -> str:
        """URL of the retry queue (the stack output)."""
        return self.outputs["RetryQueueUrl"]

    @property
    def dead_letter_queue_url(self) -> str:
        """URL of the dead-letter queue (the stack output)."""
        return self.outputs["DeadLetterQueueUrl"]

    @property
    def state_machine_arn(self) -> str:
        """ARN of the retry workflow (the stack output)."""
        return self.outputs["RetryWorkflowArn"]

    @property
    def secret_arn(self) -> str:
        """ARN of the API key secret (the stack output)."""
        return self.outputs["ApiKeySecretArn"]

    @property
    def event_bus_name(self) -> str:
        """The event bus carrying failure events in and outcome events out."""
        return self.template.parameters["EventBusName"]

    def outcome_event_sources(self) -> set[str]:
        """Sources outcome events are sent with (by the functions and by the workflow)."""
        sources = {
            env["OUTCOME_EVENT_SOURCE"]
            for env in (self.template.function_environment(f, self.ids) for f in self.functions)
            if "OUTCOME_EVENT_SOURCE" in env
        }
        for logical_id in self.template.resources_of_type("AWS::Serverless::StateMachine"):
            substitutions = self.template.properties(logical_id, self.ids).get("DefinitionSubstitutions", {})
            if "OutcomeEventSource" in substitutions:
                sources.add(substitutions["OutcomeEventSource"])
        return sources

    def put_api_key(self, key: str, api_key_format: str = "json") -> None:
        """Store ``key`` in the secret, as JSON ``{"api_key": ...}`` or plain (key rotation)."""
        if api_key_format not in ("json", "plain"):
            raise ValueError("api_key_format is 'json' or 'plain'")
        value = json.dumps({"api_key": key}) if api_key_format == "json" else key
        self.client("secretsmanager").put_secret_value(
            SecretId=self._created_secret_arn(), SecretString=value
        )

    def _created_secret_arn(self) -> str:
        # Also needed while the stack is being created, before its outputs exist.
        logical_id = self._logical_of("AWS::SecretsManager::Secret")
        if logical_id is None or logical_id not in self.ids.resources:
            raise TemplateError("the stack created no secret (ExistingApiKeySecretArn is set)")
        return self.ids.resources[logical_id].ref

    def send_failure_event(self, download_id: Any, **detail: Any) -> None:
        """Put a "download failed" event on the bus, shaped as the template's rule expects."""
        answer = self.client("events").put_events(
            Entries=[
                {
                    "Source": self.template.parameters["FailureEventSource"],
                    "DetailType": self.template.parameters["FailureEventDetailType"],
                    "Detail": json.dumps({"download_id": download_id, **detail}),
                    "EventBusName": self.event_bus_name,
                }
            ]
        )
        if answer["FailedEntryCount"]:
            raise RuntimeError(f"event not accepted: {answer['Entries']}")

    def send_to_queue(self, body: str, delay_seconds: int = 0) -> str:
        """Send a raw body to the retry queue; returns the SQS message id."""
        return self.client("sqs").send_message(
            QueueUrl=self.retry_queue_url, MessageBody=body, DelaySeconds=delay_seconds
        )["MessageId"]

    def outcome_events(self) -> list[dict[str, Any]]:
        """Every outcome event seen so far (drains the local observer queue into a list)."""
        self._outcomes.extend(json.loads(m["Body"]) for m in self._drain(self.observer_queue_url))
        return list(self._outcomes)

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead-letter message seen so far: ``body`` and ``attributes`` (name -> value)."""
        for message in self._drain(self.dead_letter_queue_url):
            attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
            self._dead_letters.append(
                {"message_id": message["MessageId"], "body": message["Body"], "attributes": attributes}
            )
        return list(self._dead_letters)

    def _drain(self, url: str) -> list[dict[str, Any]]:
        sqs, drained = self.client("sqs"), []
        while True:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return drained
            drained.extend(messages)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def executions(self) -> list[dict[str, Any]]:
        """The workflow's executions (name, status, input and output when finished)."""
        sfn = self.client("stepfunctions")
        found = []
        for summary in sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]:
            found.append(sfn.describe_execution(executionArn=summary["executionArn"]))
        return found

    def running_executions(self) -> int:
        """How many workflow executions are still running."""
        sfn = self.client("stepfunctions")
        return len(
            sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")["executions"]
        )


@dataclass
class Delivery:
    """One record handed to the retry function by the :class:`QueueConsumer`."""

    message_id: str
    body: str
    receive_count: int
    failed: bool


class QueueConsumer:
    """Lambda's SQS event source mapping, emulated: receive a batch, invoke, delete the rest.

    Records the function reports in ``batchItemFailures`` (or every record, when the whole
    invocation fails) stay on the queue and are received again; moto applies the queue's
    RedrivePolicy (maxReceiveCount) on receive, as SQS does.
    """

    def __init__(
        self, stack: EmulatedStack, function: str = "RetryFunction", redelivery_seconds: int | None = 1
    ) -> None:
        sources = stack.template.sqs_event_sources(function, stack.ids)
        if len(sources) != 1:
            raise TemplateError(f"{function} has {len(sources)} SQS event sources; one is expected")
        source = sources[0]
        self.stack = stack
        self.function = function
        self.queue_arn = source["Queue"]
        self.queue_url = next(
            p.ref for p in stack.ids.resources.values() if p.attributes.get("Arn") == source["Queue"]
        )
        self.batch_size = int(source.get("BatchSize", 10))
        self.reports_item_failures = "ReportBatchItemFailures" in source.get("FunctionResponseTypes", [])
        # In AWS a failed record stays invisible for the queue's VisibilityTimeout (360 s here)
        # or what the function set; locally it comes back after this many seconds so runs are
        # quick. None leaves it as AWS would (e.g. to watch a function's own backoff).
        self.redelivery_seconds = redelivery_seconds
        self.deliveries: list[Delivery] = []
        self.mapping_uuid = stack.ref(f"{function}{next(iter(self._sqs_event_names(stack, function)))}")

    @staticmethod
    def _sqs_event_names(stack: EmulatedStack, function: str) -> list[str]:
        events = stack.template.properties(function, stack.ids).get("Events", {})
        return [name for name, event in events.items() if event.get("Type") == "SQS"]

    def enabled(self) -> bool:
        """The mapping's State as Lambda reports it: a disabled mapping receives nothing."""
        mapping = self.stack.client("lambda").get_event_source_mapping(UUID=self.mapping_uuid)
        return mapping["State"] == "Enabled"

    def poll_once(self) -> int:
        """Receive one batch (if any) and hand it to the function; returns the record count.
        Nothing is received while the event source mapping is disabled (the circuit breaker)."""
        if not self.enabled():
            return 0
        with acting_as(self.function):  # the mapping polls with the function's execution role
            messages = self._receive()
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        try:
            result = self.stack.invoke(self.function, event)
            failed = self._failed_ids(result, messages)
        except FunctionError:
            failed = {m["MessageId"] for m in messages}  # the whole batch comes back
        sqs = self.stack.client("sqs")
        for message in messages:
            is_failed = message["MessageId"] in failed
            self.deliveries.append(
                Delivery(
                    message["MessageId"],
                    message["Body"],
                    int(message["Attributes"]["ApproximateReceiveCount"]),
                    is_failed,
                )
            )
            if is_failed and self.redelivery_seconds is not None:
                sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.redelivery_seconds,
                )
            elif not is_failed:
                with acting_as(self.function):
                    sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def run(self, until: Callable[[], bool], timeout: float, idle_sleep: float = 0.2) -> bool:
        """Poll until ``until()`` is true or ``timeout`` seconds pass; returns ``until()``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until():
                return True
            if not self.poll_once():
                time.sleep(idle_sleep)
        return until()

    def _receive(self) -> list[dict[str, Any]]:
        sqs, messages = self.stack.client("sqs"), []
        while len(messages) < self.batch_size:  # SQS hands out at most 10 per call
            got = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        return messages

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        """An SQS record as Lambda delivers it (the `sam local generate-event sqs` shape)."""
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value["DataType"],
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.stack.ids.region,
        }

    def _failed_ids(self, result: Any, messages: list[dict[str, Any]]) -> set[str]:
        if not self.reports_item_failures:
            return set()
        failures = (result or {}).get("batchItemFailures", []) if isinstance(result, dict) else []
        ids = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
        known = {m["MessageId"] for m in messages}
        # Lambda treats an unknown or empty identifier as a failure of the whole batch.
        return known if ids - known else ids  # type: ignore[return-value]


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
def _scaling_config(source: dict[str, Any]) -> dict[str, Any]:
    """The SQS event's ScalingConfig as CreateEventSourceMapping takes it (an int)."""
    scaling = source.get("ScalingConfig", {})
    if "MaximumConcurrency" not in scaling:
        return {}
    return {"ScalingConfig": {"MaximumConcurrency": int(scaling["MaximumConcurrency"])}}


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


def _zip_dir(directory: Path, prefix: str = "") -> bytes:
    """A deployment package of ``directory`` (sources only) as zip bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
                archive.write(path, str(Path(prefix) / path.relative_to(directory)))
    return buffer.getvalue()
