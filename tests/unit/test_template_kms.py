"""Customer-managed KMS keys end to end, as the official SAM translation turns template.yaml
into CloudFormation: with ``KmsKeyArn`` every store uses the key and each role gets exactly the
``kms:`` actions it needs on it (through the service that needs them); without it nothing
changes; an existing secret's own key (``ExistingApiKeySecretKmsKeyArn``) gets ``kms:Decrypt``
for the functions that read the secret. The key-policy statements docs/operating.md tells users to
add are checked for the services the template cannot authorise itself.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from videodb_retry_local.commands.iam_pass import readme_key_policy
from videodb_retry_local.stack.template import PROJECT_ROOT, Physical, PhysicalIds, Template

SAM_PYTHON = PROJECT_ROOT / ".venv-sam" / "bin" / "python"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET_KEY = "arn:aws:kms:us-east-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:videodb/api-key-AbCdEf"
REGION = "us-east-1"

# The SAM translator (the library `sam deploy` and CloudFormation's transform use) run in the SAM
# CLI's environment, whose pins clash with the test environment's.
TRANSLATE = """
import json, sys
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform
class NoManagedPolicies:
    def load(self):
        return {}
request = json.load(sys.stdin)
with open(request["template"], encoding="utf-8") as handle:
    document = yaml_parse(handle.read())
# What `sam package` does first: local code and definition paths become S3 objects.
for resource in document["Resources"].values():
    for name in ("CodeUri", "ContentUri", "DefinitionUri"):
        if isinstance(resource.get("Properties", {}).get(name), str):
            resource["Properties"][name] = "s3://artifacts/" + resource["Properties"][name]
print(json.dumps(transform(document, request["parameters"], NoManagedPolicies())))
"""


class _AnyAttributes(dict):
    """Every attribute of a fake resource resolves (to a readable placeholder ARN)."""

    def __init__(self, logical_id: str) -> None:
        super().__init__()
        self.logical_id = logical_id

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return f"arn:aws:fake:{REGION}:123456789012:{self.logical_id}.{key}"


def translate(**parameters: str) -> tuple[Template, PhysicalIds]:
    """template.yaml through the SAM transform, parameters applied, ready to resolve."""
    if not SAM_PYTHON.exists():
        pytest.fail("the SAM CLI is missing: run `make .venv-sam/bin/sam` (make test does)", pytrace=False)
    done = subprocess.run(
        [str(SAM_PYTHON), "-c", TRANSLATE],
        input=json.dumps({"template": str(PROJECT_ROOT / "template.yaml"), "parameters": parameters}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "AWS_DEFAULT_REGION": REGION},  # AWS::Region for the translator, offline
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)
    template = Template(document, PROJECT_ROOT, parameters)
    ids = PhysicalIds(region=REGION)
    for logical_id in document["Resources"]:
        ids.resources[logical_id] = Physical(f"{logical_id}-ref", _AnyAttributes(logical_id))
    return template, ids


def kms_grants(template: Template, ids: PhysicalIds) -> dict[str, set[tuple[str, str, str]]]:
    """Per IAM role: (kms action, key, via service) for every kms: action its policies allow."""
    grants: dict[str, set[tuple[str, str, str]]] = {}
    for logical_id in template.resources_of_type("AWS::IAM::Role"):
        found: set[tuple[str, str, str]] = set()
        for policy in template.properties(logical_id, ids).get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                via = statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService", "")
                services = via if isinstance(via, list) else [via]
                for action in (a for a in actions if a.startswith("kms:")):
                    assert statement["Effect"] == "Allow" and statement["Resource"] not in ("*", ["*"])
                    assert all(services), f"{logical_id}: {action} not limited to a service (kms:ViaService)"
                    found |= {(action, statement["Resource"], service) for service in services}
        grants[logical_id] = found
    return grants


def via(service: str) -> str:
    return f"{service}.{REGION}.amazonaws.com"


@pytest.fixture(scope="module")
def with_key() -> tuple[Template, PhysicalIds]:
    return translate(KmsKeyArn=KEY, SweeperEnabled="true", AlarmEmail="ops@example.com")


def test_without_a_key_no_role_gets_kms_and_aws_managed_encryption_stays():
    template, ids = translate(SweeperEnabled="true", AlarmEmail="ops@example.com")
    assert all(not found for found in kms_grants(template, ids).values())
    for queue in ("RetryQueue", "RetryDeadLetterQueue"):
        properties = template.properties(queue, ids)
        assert properties["SqsManagedSseEnabled"] is True and "KmsMasterKeyId" not in properties
    assert template.properties("IdempotencyTable", ids)["SSESpecification"] == {"SSEEnabled": True}
    # Not alias/aws/sns: CloudWatch alarms cannot publish under it (test_template_operations.py).
    assert "KmsMasterKeyId" not in template.properties("AlarmTopic", ids)
    assert "KmsKeyId" not in template.properties("ApiKeySecret", ids)
    for group in template.resources_of_type("AWS::Logs::LogGroup"):
        assert "KmsKeyId" not in template.properties(group, ids)


def test_with_a_key_every_store_uses_it(with_key):
    template, ids = with_key
    for queue in ("RetryQueue", "RetryDeadLetterQueue"):
        properties = template.properties(queue, ids)
        assert properties["KmsMasterKeyId"] == KEY and "SqsManagedSseEnabled" not in properties
    assert template.properties("IdempotencyTable", ids)["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": KEY,
    }
    assert template.properties("AlarmTopic", ids)["KmsMasterKeyId"] == KEY
    assert template.properties("ApiKeySecret", ids)["KmsKeyId"] == KEY
    groups = template.resources_of_type("AWS::Logs::LogGroup")
    assert len(groups) >= 4
    for group in groups:
        assert template.properties(group, ids)["KmsKeyId"] == KEY, group


def _decrypt_send(service: str) -> set[tuple[str, str, str]]:
    return {("kms:Decrypt", KEY, via(service)), ("kms:GenerateDataKey", KEY, via(service))}


# What each role does with data under the key, and so what KMS needs from it:
#   receive from an SQS queue: Decrypt; send to one: GenerateDataKey + Decrypt (SQS key management);
#   GetSecretValue: Decrypt (Secrets Manager encryption); DynamoDB items: Decrypt, GenerateDataKey
#   and DescribeKey (DynamoDB encryption at rest with a customer managed key).
RETRY_NEEDS = (
    _decrypt_send("sqs")
    | {("kms:Decrypt", KEY, via("secretsmanager"))}
    | _decrypt_send("dynamodb")
    | {("kms:DescribeKey", KEY, via("dynamodb"))}
)
EXPECTED = {
    "RetryFunctionRole": RETRY_NEEDS,
    # The poll function reads the secret, takes a token from the request budget's counts and
    # ends retry sequences (both items in the table).
    "PollFunctionRole": {("kms:Decrypt", KEY, via("secretsmanager"))}
    | _decrypt_send("dynamodb")
    | {("kms:DescribeKey", KEY, via("dynamodb"))},
    "SweeperFunctionRole": {("kms:Decrypt", KEY, via("secretsmanager"))}
    | _decrypt_send("dynamodb")
    | {("kms:DescribeKey", KEY, via("dynamodb"))},
    "RetryWorkflowRole": _decrypt_send("sqs"),
}
# The circuit breaker reads the secret (its probe) and reads and writes its state items.
EXPECTED["BreakerFunctionRole"] = EXPECTED["SweeperFunctionRole"]


def test_each_role_gets_exactly_the_kms_actions_it_needs(with_key):
    grants = kms_grants(*with_key)
    expected = {role: EXPECTED.get(role, set()) for role in grants}
    # A KMS statement may list several services; what each service may do is the union.
    assert {role: _by_service(found) for role, found in grants.items()} == {
        role: _by_service(found) for role, found in expected.items()
    }


def _by_service(found: set[tuple[str, str, str]]) -> dict[str, set[str]]:
    services: dict[str, set[str]] = {}
    for action, key, service in found:
        assert key == KEY
        services.setdefault(service, set()).add(action)
    return services


def test_an_existing_secrets_own_key_gives_the_readers_decrypt_only():
    template, ids = translate(
        ExistingApiKeySecretArn=SECRET, ExistingApiKeySecretKmsKeyArn=SECRET_KEY, SweeperEnabled="true"
    )
    grants = kms_grants(template, ids)
    readers = {"RetryFunctionRole", "PollFunctionRole", "SweeperFunctionRole", "BreakerFunctionRole"}
    for role, found in grants.items():
        wanted = {("kms:Decrypt", SECRET_KEY, via("secretsmanager"))} if role in readers else set()
        assert found == wanted, role
    assert "ApiKeySecret" not in template.resources()


def test_with_a_key_and_an_existing_secret_no_role_may_decrypt_secrets_with_the_key():
    # The stack created no secret under KmsKeyArn, so nobody needs it through Secrets Manager.
    template, ids = translate(KmsKeyArn=KEY, ExistingApiKeySecretArn=SECRET, SweeperEnabled="true")
    for role, found in kms_grants(template, ids).items():
        assert not {g for g in found if g[2] == via("secretsmanager")}, role
        assert found == EXPECTED.get(role, set()) - {("kms:Decrypt", KEY, via("secretsmanager"))}, role


def test_an_existing_secret_without_its_own_key_adds_nothing():
    template, ids = translate(ExistingApiKeySecretArn=SECRET)
    assert all(not found for found in kms_grants(template, ids).values())


# -- the key policy docs/operating.md asks for -----------------------------------------------------


def test_readme_key_policy_lets_the_services_that_act_for_the_app_use_the_key():
    # Service principals act with their own identity, so only the key policy can let them:
    # EventBridge sends failure events (and its DLQ deliveries) to the encrypted queues,
    # CloudWatch Logs encrypts the log groups, CloudWatch alarms publish to the encrypted topic.
    needs = {
        "events.amazonaws.com": {"kms:GenerateDataKey", "kms:Decrypt"},
        "logs.REGION.amazonaws.com": {
            "kms:Encrypt*",
            "kms:Decrypt*",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:Describe*",
        },
        "cloudwatch.amazonaws.com": {"kms:GenerateDataKey*", "kms:Decrypt"},
    }
    granted: dict[str, set[str]] = {}
    for statement in readme_key_policy():
        assert statement["Effect"] == "Allow" and statement["Resource"] == "*"
        assert statement.get("Condition"), f"{statement.get('Sid')}: unconditioned service grant"
        service = statement["Principal"]["Service"]
        granted.setdefault(service, set()).update(statement["Action"])
    assert granted == needs
