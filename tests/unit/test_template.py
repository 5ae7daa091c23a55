"""template.py resolves the real template.yaml, and the template meets the issue's numbers."""

from __future__ import annotations

import json

import pytest

from videodb_retry_local.stack.template import (
    PROJECT_ROOT,
    Physical,
    PhysicalIds,
    Template,
    TemplateError,
    UnresolvedReference,
    load_document,
)

ACCOUNT = "123456789012"
QUEUE_BASE = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}"


def fake_ids(partition: str = "aws") -> PhysicalIds:
    """Physical ids for every resource of the template, as the emulated stack records them."""
    ids = PhysicalIds(stack_name="unit-stack", partition=partition)
    for logical_id, resource in load_document()["Resources"].items():
        name = logical_id.lower()
        arn = f"arn:aws:{resource['Type'].split('::')[1].lower()}:us-east-1:{ACCOUNT}:{name}"
        ids.resources[logical_id] = Physical(name, {"Arn": arn, "Name": name})
    for logical_id, name in (("RetryQueue", "retry"), ("RetryDeadLetterQueue", "dlq")):
        arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"
        ids.resources[logical_id] = Physical(f"{QUEUE_BASE}/{name}", {"Arn": arn, "QueueName": name})
    ids.resources["ApiKeySecret"] = Physical(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:key-AbCdEf")
    # What SAM generates and the template references: the retry queue's event source mapping.
    ids.resources["RetryFunctionRetryQueueRecords"] = Physical("14e0db71-5d35-4eb5-b481-8945cf9d10c2")
    ids.resources["RetryWorkflow"] = Physical(
        f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:wf", {"Name": "wf"}
    )
    return ids


@pytest.fixture
def template() -> Template:
    return Template.load()


# -- loading and intrinsics ---------------------------------------------------------------


def test_short_form_tags_load_as_long_forms():
    document = load_document()
    rule = document["Resources"]["DownloadFailedRule"]["Properties"]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["RetryQueue", "Arn"]}
    assert rule["EventPattern"]["source"] == [{"Ref": "FailureEventSource"}]
    secret_id = document["Globals"]["Function"]["Environment"]["Variables"]["API_KEY_SECRET_ID"]
    assert secret_id == {
        "Fn::If": ["CreateApiKeySecret", {"Ref": "ApiKeySecret"}, {"Ref": "ExistingApiKeySecretArn"}]
    }


def test_long_forms_and_sub_resolve(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "Parameters:\n  Env: {Type: String, Default: dev}\n"
        "Conditions:\n  IsDev: {'Fn::Equals': [{Ref: Env}, dev]}\n"
        "Resources:\n  Q: {Type: 'AWS::SQS::Queue'}\n"
        "Outputs:\n"
        "  A: {Value: {'Fn::Sub': '${AWS::StackName}-${Env}-${Q.Arn}-${!Literal}'}}\n"
        "  B: {Value: {'Fn::If': [IsDev, {'Fn::Join': ['+', [a, {Ref: Env}]]}, no]}}\n"
        "  C: {Value: !Select [1, !Split [',', 'x,y,z']]}\n"
        "  D: {Value: !Sub ['${X}!', {X: !Ref Env}]}\n"
    )
    ids = PhysicalIds(stack_name="s", resources={"Q": Physical("url", {"Arn": "arn:q"})})
    outputs = Template.load(path).outputs(ids)
    assert outputs == {"A": "s-dev-arn:q-${Literal}", "B": "a+dev", "C": "y", "D": "dev!"}


def test_unresolved_reference_is_an_error(template):
    with pytest.raises(UnresolvedReference, match=r"RetryDeadLetterQueue\.Arn"):
        template.queue_attributes("RetryQueue", PhysicalIds())


# -- parameters, conditions, rules ----------------------------------------------------------


def test_parameter_defaults_and_overrides_are_strings(template):
    assert template.parameters["PollFirstWaitSeconds"] == "15"
    assert template.parameters["MaxRetryAttempts"] == "3"
    fast = Template.load(overrides={"PollFirstWaitSeconds": 1, "PollDeadlineSeconds": 6})
    assert fast.parameters["PollFirstWaitSeconds"] == "1" and fast.parameters["PollDeadlineSeconds"] == "6"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"NoSuchParameter": "1"}, "unknown parameter"),
        ({"PollFirstWaitSeconds": 0}, "MinValue"),
        ({"MaxRetryAttempts": 16}, "MaxValue"),
        ({"PollDeadlineSeconds": "soon"}, "not a number"),
        ({"LogLevel": "TRACE"}, "not one of"),
        ({"VideoDBApiBaseUrl": "https://api.videodb.io/path"}, "does not match"),
        ({"FailureEventSource": "videodb-retry"}, "OutcomesNeverLoop"),
    ],
)
def test_overrides_are_checked_against_the_template(overrides, message):
    with pytest.raises(TemplateError, match=message):
        Template.load(overrides=overrides)


def test_existing_secret_condition_drops_the_created_secret(template):
    assert template.conditions["CreateApiKeySecret"] is True
    arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:mine-123456"
    existing = Template.load(overrides={"ExistingApiKeySecretArn": arn})
    assert existing.conditions["CreateApiKeySecret"] is False
    assert "ApiKeySecret" not in existing.resources()
    ids = fake_ids()
    del ids.resources["ApiKeySecret"]
    assert existing.function_environment("PollFunction", ids)["API_KEY_SECRET_ID"] == arn
    assert existing.outputs(ids)["ApiKeySecretArn"] == arn


def test_creation_order_puts_every_resource_after_what_it_references(template):
    order = template.creation_order()
    assert set(order) == set(template.resources())
    before = order.index
    assert before("RetryDeadLetterQueue") < before("RetryQueue") < before("DownloadFailedRule")
    assert before("DownloadFailedRule") < before("RetryQueuePolicy")
    assert before("PollFunction") < before("RetryWorkflow") < before("RetryFunction")
    assert before("ApiKeySecret") < before("PollFunction") and before("SharedLayer") < before("PollFunction")


# -- what the local run derives -------------------------------------------------------------


def test_function_environment_merges_globals_and_function_variables():
    template = Template.load(
        overrides={"PollFirstWaitSeconds": 1, "VideoDBApiBaseUrl": "http://127.0.0.1:8080"}
    )
    ids = fake_ids()
    retry = template.function_environment("RetryFunction", ids)
    poll = template.function_environment("PollFunction", ids)
    assert retry["POLL_FIRST_WAIT_SECONDS"] == poll["POLL_FIRST_WAIT_SECONDS"] == "1"
    assert retry["VIDEODB_API_BASE_URL"] == "http://127.0.0.1:8080"
    assert retry["API_KEY_SECRET_ID"] == ids.resources["ApiKeySecret"].ref
    assert retry["RETRY_QUEUE_URL"] == f"{QUEUE_BASE}/retry"
    assert retry["DEAD_LETTER_QUEUE_URL"] == f"{QUEUE_BASE}/dlq"
    assert retry["STATE_MACHINE_ARN"] == ids.resources["RetryWorkflow"].ref
    assert "RETRY_QUEUE_URL" not in poll and poll["OUTCOME_EVENT_SOURCE"] == "videodb-retry"
    assert all(isinstance(v, str) for v in retry.values())


def test_globals_lists_are_extended_and_scalars_kept(template):
    properties = template.properties("RetryFunction", fake_ids())
    assert properties["Layers"] == [fake_ids().resources["SharedLayer"].ref]
    assert properties["Runtime"] == "python3.13" and properties["Timeout"] == 60


def test_state_machine_definition_is_the_file_with_substitutions(template):
    ids = fake_ids()
    text = template.state_machine_definition("RetryWorkflow", ids)
    definition = json.loads(text)
    on_disk = json.loads((PROJECT_ROOT / "statemachine/retry_workflow.asl.json").read_text())
    assert "${" not in text
    poll_arn = ids.resources["PollFunction"].attributes["Arn"]
    assert definition["States"]["PollJob"]["Parameters"]["FunctionName"] == poll_arn
    assert definition["States"]["SettlePollError"]["Parameters"]["FunctionName"] == poll_arn
    assert definition["States"]["RequeueDownload"]["Parameters"]["QueueUrl"] == f"{QUEUE_BASE}/retry"
    entry = definition["States"]["AnnounceOutcome"]["Parameters"]["Entries"][0]
    assert entry["Source"] == "videodb-retry" and entry["EventBusName"] == "default"
    assert definition["States"]["DeadLetterUnsettled"]["Parameters"]["QueueUrl"] == f"{QUEUE_BASE}/dlq"
    # Apart from the substituted values the definition is the file itself.
    unsubstituted = json.loads(
        text.replace(poll_arn, "${PollFunctionArn}")
        .replace(f"{QUEUE_BASE}/retry", "${RetryQueueUrl}")
        .replace(f"{QUEUE_BASE}/dlq", "${DeadLetterQueueUrl}")
        .replace('"arn:aws:states:::', '"arn:${Partition}:states:::')
        .replace('"Source": "videodb-retry"', '"Source": "${OutcomeEventSource}"')
        .replace('"EventBusName": "default"', '"EventBusName": "${EventBusName}"')
    )
    assert unsubstituted == on_disk


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_every_task_resource_is_built_from_the_stacks_partition(partition):
    # Issue 21 item 8: arn:aws: hard-coded would name resources of another partition.
    text = Template.load().state_machine_definition("RetryWorkflow", fake_ids(partition=partition))
    tasks = [s for s in json.loads(text)["States"].values() if s["Type"] == "Task"]
    assert tasks and all(t["Resource"].startswith(f"arn:{partition}:states:::") for t in tasks)
    on_disk = json.loads((PROJECT_ROOT / "statemachine/retry_workflow.asl.json").read_text())
    assert all(
        s["Resource"].startswith("arn:${Partition}:")
        for s in on_disk["States"].values()
        if s["Type"] == "Task"
    )


def test_rule_pattern_and_targets_come_from_parameters():
    template = Template.load(overrides={"FailureEventSource": "my.videodb", "EventBusName": "media"})
    properties = template.properties("DownloadFailedRule", fake_ids())
    assert properties["EventBusName"] == "media"
    assert properties["EventPattern"] == {
        "source": ["my.videodb"],
        "detail-type": ["Download Failed"],
        "detail": {"download_id": [{"exists": True}]},
    }
    (target,) = properties["Targets"]
    assert target["Arn"] == fake_ids().resources["RetryQueue"].attributes["Arn"]
    assert target["DeadLetterConfig"]["Arn"] == fake_ids().resources["RetryDeadLetterQueue"].attributes["Arn"]


def test_event_source_batch_size_follows_its_parameter():
    (source,) = Template.load(overrides={"RetryBatchSize": 3}).sqs_event_sources("RetryFunction", fake_ids())
    assert source["BatchSize"] == "3"
    assert source["Queue"] == fake_ids().resources["RetryQueue"].attributes["Arn"]


def test_log_group_name_uses_the_stack_name(template):
    properties = template.properties("RetryWorkflowLogGroup", fake_ids())
    assert properties["LogGroupName"] == "/aws/vendedlogs/states/unit-stack-retry-workflow"


# -- the issue's numbers ---------------------------------------------------------------------


def test_retry_queue_redrives_to_the_dead_letter_queue_after_at_least_five_receives(template):
    attributes = template.queue_attributes("RetryQueue", fake_ids())
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == fake_ids().resources["RetryDeadLetterQueue"].attributes["Arn"]
    assert int(redrive["maxReceiveCount"]) >= 5


def test_dead_letter_queue_keeps_messages_fourteen_days(template):
    attributes = template.queue_attributes("RetryDeadLetterQueue", fake_ids())
    assert int(attributes["MessageRetentionPeriod"]) == 14 * 24 * 3600


def test_queue_visibility_is_at_least_six_times_the_retry_function_timeout(template):
    timeout = int(template.properties("RetryFunction", fake_ids())["Timeout"])
    visibility = int(template.queue_attributes("RetryQueue", fake_ids())["VisibilityTimeout"])
    assert visibility >= 6 * timeout


def test_queues_are_encrypted(template):
    for queue in ("RetryQueue", "RetryDeadLetterQueue"):
        assert template.queue_attributes(queue, fake_ids())["SqsManagedSseEnabled"] == "true"


def test_retry_function_reports_batch_item_failures(template):
    (source,) = template.sqs_event_sources("RetryFunction", fake_ids())
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_every_function_runs_python_3_13(template):
    functions = template.resources_of_type("AWS::Serverless::Function")
    assert set(functions) >= {"RetryFunction", "PollFunction"}
    for logical_id in functions:
        assert template.properties(logical_id, fake_ids())["Runtime"] == "python3.13"
    layer = template.properties("SharedLayer", fake_ids())
    assert layer["CompatibleRuntimes"] == ["python3.13"]


def test_outputs_are_present_and_resolve(template):
    ids = fake_ids()
    expected = {
        "RetryQueueUrl": f"{QUEUE_BASE}/retry",
        "RetryQueueArn": ids.resources["RetryQueue"].attributes["Arn"],
        "DeadLetterQueueUrl": f"{QUEUE_BASE}/dlq",
        "RetryWorkflowArn": ids.resources["RetryWorkflow"].ref,
        "ApiKeySecretArn": ids.resources["ApiKeySecret"].ref,
    }
    outputs = template.outputs(ids)
    assert {name: outputs.get(name) for name in expected} == expected


def test_an_attempts_outcome_never_reaches_a_fail_state():
    # Issue 21 item 3: a failed or timed-out download is an outcome (the execution succeeds, its
    # output and event say so); Fail states, which WorkflowFailuresAlarm counts, are for
    # executions that broke (the last resort, when the poll function cannot run).
    states = json.loads((PROJECT_ROOT / "statemachine/retry_workflow.asl.json").read_text())["States"]

    def reachable(name: str, seen: set[str]) -> set[str]:
        if name in seen or name == "WaitToPoll":  # the deferral loop goes back to polling
            return seen
        seen.add(name)
        state = states[name]
        nexts = [state.get("Next"), state.get("Default")] + [c["Next"] for c in state.get("Choices", [])]
        for following in filter(None, nexts):
            reachable(following, seen)
        return seen

    after_an_outcome = reachable("RouteByStatus", set())
    assert {"AnnounceSuccess", "RequeueDownload", "AnnounceOutcome"} <= after_an_outcome
    assert all(states[name]["Type"] != "Fail" for name in after_an_outcome)
    fails = [name for name, state in states.items() if state["Type"] == "Fail"]
    assert fails == ["PollStepUnavailable"]
    assert states["AnnounceUnsettled"]["Next"] == "PollStepUnavailable"
