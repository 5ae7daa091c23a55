"""Every parameter of template.yaml accepts what the AWS property it feeds accepts, no more.

``LIMITS`` is the table of those limits, each with where it comes from: an AWS quota or API
constraint (cited), or, for values only the app reads, the app's own rule (said so). The test
walks every parameter of the template: a parameter missing from the table fails, and so do
bounds that differ from it. Patterns are checked on generated inputs, and the Rules that
guard combinations (batch size and batching window) on every batch size.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videodb_retry_local.stack.template import PROJECT_ROOT, Template, TemplateError, load_document

DOCUMENT = load_document()
PARAMETERS = DOCUMENT["Parameters"]
LAMBDA_ESM = (
    "Lambda CreateEventSourceMapping "
    "(docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html)"
)
SQS_SEND = (
    "SQS SendMessage DelaySeconds 0-900 "
    "(docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html)"
)
SQS_VISIBILITY = (
    "SQS ChangeMessageVisibility VisibilityTimeout 0-43,200 s "
    "(docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html)"
)


@dataclass(frozen=True)
class Limit:
    """What AWS (or, where only the app reads the value, the app) accepts for one parameter."""

    source: str
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: bool = False  # checked by the pattern tests below
    min_length: int | None = None
    max_length: int | None = None


LIMITS: dict[str, Limit] = {
    "VideoDBApiBaseUrl": Limit(
        "security rule of the app: https://, plain http:// only on loopback/emulator hosts", pattern=True
    ),
    "ExistingApiKeySecretArn": Limit(
        "Secrets Manager secret ARN (name 1-512 of A-Za-z0-9/_+=.@-, 6-character suffix)", pattern=True
    ),
    "ExistingApiKeySecretKmsKeyArn": Limit(
        "KMS key ARN, the only form an IAM policy Resource matches", pattern=True
    ),
    "KmsKeyArn": Limit("KMS key ARN, the only form an IAM policy Resource matches", pattern=True),
    "FailureEventSource": Limit(
        "EventBridge PutEvents Source (app bound 1-256)", min_length=1, max_length=256
    ),
    "FailureEventDetailType": Limit(
        "EventBridge PutEvents DetailType (app bound 1-128)", min_length=1, max_length=128
    ),
    "EventBusName": Limit("EventBridge event bus name: 1-256 of [/.\\-_A-Za-z0-9]", pattern=True),
    "PollFirstWaitSeconds": Limit("app rule: the workflow's first Wait, within the detection goal", 1, 30),
    "PollDeadlineSeconds": Limit("app rule: one day (a Standard execution may run a year)", 1, 86400),
    "PollMaxPolls": Limit("Step Functions history quota 25,000 events: 700 polls write about 21,000", 1, 700),
    "MaxRetryAttempts": Limit("Lambda recursive loop detection stops the 17th invocation of a chain", 1, 15),
    "RequeueDelaySeconds": Limit(SQS_SEND, 0, 900),
    "MaxReceiveCount": Limit(
        "SQS RedrivePolicy maxReceiveCount 1-1,000; 5+ as AWS advises for Lambda consumers", 5, 1000
    ),
    "RedeliveryFirstDelaySeconds": Limit(SQS_VISIBILITY, 0, 43200),
    "RedeliveryBackoffFactor": Limit("app rule: a decimal factor", pattern=True),
    "RedeliveryMaxDelaySeconds": Limit(SQS_VISIBILITY, 1, 43200),
    "SecretCacheTtlSeconds": Limit("app rule: at most a day", 0, 86400),
    "RetryBatchSize": Limit(
        f"{LAMBDA_ESM}: BatchSize 1-10,000 for standard queues, above 10 with a window", 1, 10000
    ),
    "RetryBatchingWindowSeconds": Limit(f"{LAMBDA_ESM}: MaximumBatchingWindowInSeconds 0-300", 0, 300),
    "RetryBatchConcurrency": Limit("app rule", 1, 100),
    "RetryMaxConcurrency": Limit(f"{LAMBDA_ESM}: ScalingConfig MaximumConcurrency 2-1,000", 2, 1000),
    "ConcurrencyBudget": Limit(
        "app rule: Budgets.minimum_concurrency (2 retry, 1 breaker, 1 sweep, one 8 s poll)", 12, 100000
    ),
    "VideoDBRequestsPerSecond": Limit("app rule: one poll and one intake request a second", 2, 10000),
    "SweeperEnabled": Limit("switch", allowed=("true", "false")),
    "SweepRateMinutes": Limit(
        "rate(N minutes) needs N >= 2 (plural unit); app: N <= 60, the shortest look-back", 2, 60
    ),
    "SweepLookbackHours": Limit("app rule: up to 30 days", 1, 720),
    "BreakerEnabled": Limit("switch", allowed=("true", "false")),
    "BreakerWindowSeconds": Limit("app rule: at most an hour of counts", 1, 3600),
    "BreakerMinAttempts": Limit("app rule", 1, 100000),
    "BreakerFailureRatio": Limit("app rule: a share in (0, 1]", pattern=True),
    "BreakerProbeIntervalSeconds": Limit("app rule: at most an hour between probes", 0, 3600),
    "AlarmEmail": Limit("SNS email subscription endpoint", pattern=True),
    "LogRetentionDays": Limit(
        "AWS::Logs::LogGroup RetentionInDays",
        allowed=tuple(
            str(d)
            for d in (
                1,
                3,
                5,
                7,
                14,
                30,
                60,
                90,
                120,
                150,
                180,
                365,
                400,
                545,
                731,
                1096,
                1827,
                2192,
                2557,
                2922,
                3288,
                3653,
            )
        ),
    ),
    "LogLevel": Limit("Powertools log levels", allowed=("DEBUG", "INFO", "WARNING", "ERROR")),
}


def accepts(name: str, value: str) -> bool:
    """Whether the parameter's own constraints (as CloudFormation checks them) take ``value``."""
    spec = PARAMETERS[name]
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        return False
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return False
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return False
    return not ("AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]])


# -- the walk ------------------------------------------------------------------------------


def test_every_parameter_has_a_limit_in_the_table():
    assert set(PARAMETERS) == set(LIMITS), "add the new parameter's AWS limit to LIMITS"


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_parameter_bounds_match_the_aws_limit(name):
    spec, limit = PARAMETERS[name], LIMITS[name]
    if spec["Type"] == "Number" and limit.allowed is None:
        # A Number without both bounds accepts values AWS refuses.
        assert float(spec["MinValue"]) == limit.minimum, f"{name} MinValue ({limit.source})"
        assert float(spec["MaxValue"]) == limit.maximum, f"{name} MaxValue ({limit.source})"
        assert limit.minimum <= float(spec["Default"]) <= limit.maximum
    if limit.allowed is not None:
        assert tuple(str(v) for v in spec["AllowedValues"]) == limit.allowed, limit.source
    if limit.pattern:
        assert "AllowedPattern" in spec, f"{name}: {limit.source}"
    if limit.min_length is not None:
        assert (spec.get("MinLength"), spec.get("MaxLength")) == (limit.min_length, limit.max_length)
    if spec["Type"] == "String" and limit.allowed is None:
        assert limit.pattern or limit.max_length is not None, f"{name} accepts any string"
    assert accepts(name, str(spec["Default"])), f"{name}'s default breaks its own constraints"


# -- patterns, on generated inputs -----------------------------------------------------------

HOST_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
PUBLIC_HOST = (
    st.lists(HOST_LABEL, min_size=2, max_size=4)
    .map(".".join)
    .filter(
        lambda h: (
            h != "host.docker.internal"
            and not h.endswith("localhost")
            and not h.startswith(("127.", "172.17."))
        )
    )
)
LOOPBACK_HOST = st.one_of(
    st.just("localhost"),
    HOST_LABEL.map(lambda label: f"{label}.localhost"),
    st.tuples(*[st.integers(0, 255)] * 3).map(lambda t: "127.{}.{}.{}".format(*t)),
    st.tuples(*[st.integers(0, 255)] * 2).map(lambda t: "172.17.{}.{}".format(*t)),  # Docker's bridge
    st.just("host.docker.internal"),
)
PORT = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))


@given(host=PUBLIC_HOST, port=PORT)
def test_the_key_never_travels_in_clear_text_to_a_remote_host(host, port):
    assert accepts("VideoDBApiBaseUrl", f"https://{host}{port}")
    assert not accepts("VideoDBApiBaseUrl", f"http://{host}{port}")


@given(host=LOOPBACK_HOST, port=PORT)
def test_plain_http_is_for_loopback_and_the_emulator_host(host, port):
    assert accepts("VideoDBApiBaseUrl", f"http://{host}{port}")
    assert accepts("VideoDBApiBaseUrl", f"https://{host}{port}")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.videodb.io/",
        "https://api.videodb.io/v1",
        "ftp://api.videodb.io",
        "api.videodb.io",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example",
        "http://host.docker.internal.example",
        "https://user@api.videodb.io",
        "https://api.videodb.io:443/x",
    ],
)
def test_api_origin_is_an_origin_only(url):
    assert not accepts("VideoDBApiBaseUrl", url)


SECRET_NAME = st.from_regex(r"[A-Za-z0-9/_+=.@-]{1,60}", fullmatch=True)
SUFFIX = st.from_regex(r"[A-Za-z0-9]{6}", fullmatch=True)
REGION = st.sampled_from(["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", "cn-north-1"])
PARTITION = st.sampled_from(["aws", "aws-cn", "aws-us-gov"])
ACCOUNT = st.from_regex(r"[0-9]{12}", fullmatch=True)


@given(PARTITION, REGION, ACCOUNT, SECRET_NAME, SUFFIX)
def test_existing_secret_arn_takes_any_secret_arn(partition, region, account, name, suffix):
    assert accepts(
        "ExistingApiKeySecretArn", f"arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-{suffix}"
    )


@pytest.mark.parametrize(
    "value",
    [
        "videodb/api-key",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:videodb",  # no suffix
        "arn:aws:secretsmanager:us-east-1:12345678901:secret:k-AbCdEf",  # 11-digit account
        "arn:aws:ssm:us-east-1:123456789012:parameter/k-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:",
        " arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf",
    ],
)
def test_existing_secret_arn_refuses_what_is_not_one(value):
    assert not accepts("ExistingApiKeySecretArn", value)


KEY_ID = st.one_of(st.uuids().map(str), st.from_regex(r"mrk-[0-9a-f]{32}", fullmatch=True))


@pytest.mark.parametrize("name", ["KmsKeyArn", "ExistingApiKeySecretKmsKeyArn"])
@given(partition=PARTITION, region=REGION, account=ACCOUNT, key_id=KEY_ID)
def test_kms_key_parameters_take_key_arns(name, partition, region, account, key_id):
    assert accepts(name, "")
    assert accepts(name, f"arn:{partition}:kms:{region}:{account}:key/{key_id}")


@pytest.mark.parametrize("name", ["KmsKeyArn", "ExistingApiKeySecretKmsKeyArn"])
@pytest.mark.parametrize(
    "value",
    [
        "alias/videodb",
        "arn:aws:kms:us-east-1:123456789012:alias/videodb",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-east-1:123456789012:key/",
    ],
)
def test_kms_key_parameters_refuse_aliases_and_bare_ids(name, value):
    # An IAM policy's Resource must be the key ARN: an alias would grant nothing.
    assert not accepts(name, value)


@given(st.from_regex(r"[/.A-Za-z0-9_-]{1,256}", fullmatch=True))
def test_event_bus_names(name):
    assert accepts("EventBusName", name)


@pytest.mark.parametrize(
    "value", ["", "arn:aws:events:us-east-1:123456789012:event-bus/x", "my bus", "x" * 257]
)
def test_event_bus_refuses_arns_and_bad_names(value):
    assert not accepts("EventBusName", value)


@pytest.mark.parametrize("value", ["", "ops@example.com", "a.b+alarms@sub.example.org"])
def test_alarm_email_takes_empty_or_an_address(value):
    assert accepts("AlarmEmail", value)


@pytest.mark.parametrize("value", ["ops", "ops@", "@example.com", "ops@example", "a b@example.com"])
def test_alarm_email_refuses_what_sns_would(value):
    assert not accepts("AlarmEmail", value)


# -- rules: combinations ---------------------------------------------------------------------


def _deploys(**overrides: object) -> bool:
    try:
        # Template checks overrides against the parameters and evaluates the Rules, as CloudFormation does.
        Template(copy.deepcopy(DOCUMENT), PROJECT_ROOT, {k: str(v) for k, v in overrides.items()})
    except TemplateError:
        return False
    return True


@settings(deadline=None)
@given(size=st.integers(1, 10000), window=st.integers(0, 300))
def test_batch_size_above_ten_needs_a_batching_window(size, window):
    # Lambda's rule: BatchSize > 10 requires MaximumBatchingWindowInSeconds >= 1.
    lambda_accepts = size <= 10 or window >= 1
    assert _deploys(RetryBatchSize=size, RetryBatchingWindowSeconds=window) == lambda_accepts


@pytest.mark.parametrize(
    ("size", "window", "deploys"),
    [(10, 0, True), (11, 0, False), (11, 1, True), (10000, 0, False), (10000, 300, True), (1, 0, True)],
)
def test_batch_rule_at_its_edges(size, window, deploys):
    assert _deploys(RetryBatchSize=size, RetryBatchingWindowSeconds=window) is deploys


def test_the_batching_window_reaches_the_event_source():
    template = Template.load(overrides={"RetryBatchSize": "100", "RetryBatchingWindowSeconds": "5"})
    events = template.resources()["RetryFunction"]["Properties"]["Events"]
    assert events["RetryQueueRecords"]["Properties"]["MaximumBatchingWindowInSeconds"] == {
        "Ref": "RetryBatchingWindowSeconds"
    }
    assert template.parameters["RetryBatchingWindowSeconds"] == "5"


def test_a_secret_key_needs_an_existing_secret():
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:videodb-AbCdEf"
    assert not _deploys(ExistingApiKeySecretKmsKeyArn=key)
    assert _deploys(ExistingApiKeySecretKmsKeyArn=key, ExistingApiKeySecretArn=secret)
