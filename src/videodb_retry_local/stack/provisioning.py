"""Provisioning from the template: each resource of template.yaml created in moto with
properties derived from the template only (mixed into
:class:`~videodb_retry_local.stack.emulated_stack.EmulatedStack`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from videodb_retry_local.stack.lambda_runtime import HandlerRouting, LocalFunction, zip_dir
from videodb_retry_local.stack.template import Physical, Template, TemplateError

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


def _logging_runtime_environment(logging_config: dict[str, Any]) -> dict[str, str]:
    """What Lambda adds to a function's environment from its LoggingConfig: with the JSON
    format, AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL (the application log level), which
    Powertools' Logger reads (Lambda docs "Defined runtime environment variables")."""
    if logging_config.get("LogFormat") != "JSON":
        return {}
    variables = {"AWS_LAMBDA_LOG_FORMAT": "JSON"}
    if "ApplicationLogLevel" in logging_config:
        variables["AWS_LAMBDA_LOG_LEVEL"] = str(logging_config["ApplicationLogLevel"])
    return variables


def _scaling_config(source: dict[str, Any]) -> dict[str, Any]:
    """The SQS event's ScalingConfig as CreateEventSourceMapping takes it (an int)."""
    scaling = source.get("ScalingConfig", {})
    if "MaximumConcurrency" not in scaling:
        return {}
    return {"ScalingConfig": {"MaximumConcurrency": int(scaling["MaximumConcurrency"])}}


class TemplateProvisioning(HandlerRouting):
    """The ``_create_<resource>`` step of every resource type the local run can create."""

    template: Template
    _api_key: str | None
    _api_key_format: str

    if TYPE_CHECKING:  # provided by EmulatedStack

        def client(self, service: str) -> Any: ...

        def put_api_key(self, key: str, api_key_format: str = "json") -> None: ...

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
            Content={"ZipFile": zip_dir(self.template.base_dir / properties["ContentUri"], "python")},
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
        logging_config = properties.get("LoggingConfig", {})
        group = logging_config.get("LogGroup")
        if group is not None and group not in {p.ref for p in self.ids.resources.values()}:
            # CloudFormation creates the group first because the function references it.
            raise TemplateError(f"{logical_id}: LoggingConfig names {group}, not a log group of the stack")
        answer = self.client("lambda").create_function(
            FunctionName=name,
            Description=properties.get("Description", ""),
            Runtime=properties["Runtime"],
            Handler=properties["Handler"],
            Role=self._role(logical_id, LAMBDA_TRUST_POLICY),
            Code={"ZipFile": zip_dir(code_dir)},
            Timeout=int(properties.get("Timeout", 3)),
            MemorySize=int(properties.get("MemorySize", 128)),
            Architectures=properties.get("Architectures", ["x86_64"]),
            Layers=properties.get("Layers", []),
            TracingConfig={"Mode": properties.get("Tracing", "PassThrough")},
            Environment={"Variables": environment},
            **({"LoggingConfig": logging_config} if logging_config else {}),
        )
        runtime_environment = {**environment, **_logging_runtime_environment(logging_config)}
        module, handler = self._load_handler(logical_id, code_dir, properties["Handler"], runtime_environment)
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
