"""The breaker's mapping switch against Lambda's API shapes (botocore's Stubber checks every
request against the service model): it reads and updates the one mapping whose id the template
gives, never lists mappings, and a refusal is loud with Lambda's reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from videodb_retry.adapters import aws_clients
from videodb_retry.adapters.breaker_aws import MappingSwitch, SwitchRefused
from videodb_retry.rules.breaker import Mode

UUID = "14e0db71-5d35-4eb5-b481-8945cf9d10c2"


@pytest.fixture
def lambda_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws_clients.client.cache_clear()
    with Stubber(aws_clients.client("lambda")) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()  # every expected call was made, no other
    aws_clients.client.cache_clear()


def described(state: str, concurrency: int | None = 5) -> dict[str, Any]:
    answer: dict[str, Any] = {"UUID": UUID, "State": state}
    if concurrency is not None:
        answer["ScalingConfig"] = {"MaximumConcurrency": concurrency}
    return answer


def test_opening_reads_then_disables_that_mapping(lambda_api: Stubber):
    lambda_api.add_response("get_event_source_mapping", described("Enabled"), {"UUID": UUID})
    lambda_api.add_response(
        "update_event_source_mapping", described("Disabling"), {"UUID": UUID, "Enabled": False}
    )
    assert MappingSwitch(UUID).apply(Mode.OPEN, 2) is True


def test_closing_enables_it_at_the_ramps_concurrency(lambda_api: Stubber):
    lambda_api.add_response("get_event_source_mapping", described("Disabled"), {"UUID": UUID})
    expected = {"UUID": UUID, "Enabled": True, "ScalingConfig": {"MaximumConcurrency": 2}}
    lambda_api.add_response("update_event_source_mapping", described("Enabling", 2), expected)
    assert MappingSwitch(UUID).apply(Mode.CLOSED, 2) is True


@pytest.mark.parametrize(
    ("state", "mode"), [("Enabled", Mode.CLOSED), ("Disabled", Mode.OPEN), ("Updating", Mode.OPEN)]
)
def test_a_mapping_already_so_or_still_changing_is_left_alone(lambda_api: Stubber, state: str, mode: Mode):
    lambda_api.add_response("get_event_source_mapping", described(state), {"UUID": UUID})
    assert MappingSwitch(UUID).apply(mode, 5) is False


@pytest.mark.parametrize("operation", ["get_event_source_mapping", "update_event_source_mapping"])
def test_a_refusal_is_loud_with_lambdas_reason(lambda_api: Stubber, operation: str):
    if operation == "update_event_source_mapping":
        lambda_api.add_response("get_event_source_mapping", described("Enabled"), {"UUID": UUID})
    lambda_api.add_client_error(operation, "AccessDeniedException", "not authorized on this mapping")
    with pytest.raises(SwitchRefused) as refused:
        MappingSwitch(UUID).apply(Mode.OPEN, 2)
    api = "".join(word.title() for word in operation.split("_"))
    assert str(refused.value) == f"{api} refused: AccessDeniedException: not authorized on this mapping"
