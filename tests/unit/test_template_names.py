"""Two stacks of the app in one account and Region: no explicitly named, account-scoped resource
of one may have the name of the other's (CloudFormation refuses a name that exists).

samconfig.toml itself defines two stacks in one Region. The template is read as it deploys:
through the official SAM translation (``sam_translation.translate``), with every optional
resource on, then resolved for two stack names. Each resource type's name property is listed
below; a type the list does not know fails the test, so a new kind of resource is looked at.
"""

from __future__ import annotations

from typing import Any

import pytest

from videodb_retry_local.stack.iam.sam_translation import translate
from videodb_retry_local.stack.template import Physical, PhysicalIds, Template

# Every optional resource on: the sweeper (its schedule), the alarm topic, the breaker (default on).
ALL_ON = {"SweeperEnabled": "true", "AlarmEmail": "ops@example.com", "BreakerEnabled": "true"}

# Resource type -> the property that names it explicitly (CloudFormation generates a name,
# unique per stack, when the property is absent). Names are unique per account and Region
# (per schedule group for schedules: https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html).
NAME_PROPERTY = {
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Events::Rule": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::IAM::Role": "RoleName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
}
# Types that carry no account-scoped name of their own.
NAMELESS = {
    "AWS::SQS::QueuePolicy",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventInvokeConfig",  # one per function and qualifier, named by them
}


class _AnyAttribute(dict[str, str]):
    """Every attribute of a created resource resolves, to a value naming its stack."""

    def __init__(self, physical_name: str) -> None:
        super().__init__()
        self._name = physical_name

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return f"{self._name}.{key}"


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    return translate(Template.load(overrides=ALL_ON))


def explicit_names(translated: dict[str, Any], stack_name: str) -> dict[str, tuple[str, str]]:
    """(type, name) of each explicitly named resource, by logical id, as stack ``stack_name``
    deploys it (other resources' physical ids are generated per stack, as CloudFormation does)."""
    template = Template(translated, overrides=ALL_ON)
    ids = PhysicalIds(stack_name=stack_name)
    for logical_id in translated["Resources"]:
        physical = f"{stack_name}-{logical_id}-1A2B3C4D"
        ids.resources[logical_id] = Physical(physical, _AnyAttribute(physical))
    names = {}
    for logical_id, resource in template.resources().items():
        kind = resource["Type"]
        assert kind in NAME_PROPERTY or kind in NAMELESS, f"{logical_id}: is a {kind} named per account?"
        name = template.properties(logical_id, ids).get(NAME_PROPERTY.get(kind, ""))
        if name is not None:
            names[logical_id] = (kind, str(name))
    return names


def test_the_translation_holds_what_two_stacks_could_clash_on(translated):
    kinds = {r["Type"] for r in translated["Resources"].values()}
    assert {"AWS::Scheduler::Schedule", "AWS::Logs::LogGroup", "AWS::CloudWatch::Dashboard"} <= kinds


def test_no_explicit_name_repeats_between_two_stacks_in_one_region(translated):
    first = explicit_names(translated, "videodb-retry")
    second = explicit_names(translated, "videodb-retry-staging")
    clashes = {
        logical_id: name
        for logical_id, name in first.items()
        if name in set(second.values())  # same type and name: the second deploy fails
    }
    assert not clashes, f"named the same in both stacks: {clashes}"


def test_schedules_leave_their_names_to_cloudformation(translated):
    # SAM names a ScheduleV2 schedule after its logical id unless OmitName is set
    # (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-property-function-schedulev2.html;
    # aws/serverless-application-model issue 3109).
    schedules = {k: r for k, r in translated["Resources"].items() if r["Type"] == "AWS::Scheduler::Schedule"}
    assert set(schedules) == {"BreakerFunctionTick", "SweeperFunctionSweep"}
    assert all("Name" not in r["Properties"] for r in schedules.values())
