"""The `sam local invoke` payloads in events/ stay valid for the code they feed."""

import json
from pathlib import Path

import pytest
from videodb_retry.rules.messages import PoisonMessage, parse_body
from videodb_retry.steps.poll import PollState

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.mark.parametrize("path", sorted(EVENTS.glob("retry-*.json")), ids=lambda p: p.name)
def test_retry_payloads_are_sqs_events_of_the_message_contract(path):
    records = json.loads(path.read_text())["Records"]
    assert records and all(r["eventSource"] == "aws:sqs" for r in records)
    for record in records:
        if record["body"] == "../../etc/passwd":
            with pytest.raises(PoisonMessage):
                parse_body(record["body"])
        else:
            assert parse_body(record["body"]).download_id.startswith("dl-")


def test_mixed_batch_holds_every_message_shape_and_poison():
    bodies = [r["body"] for r in json.loads((EVENTS / "retry-mixed-batch.json").read_text())["Records"]]
    assert any(not b.startswith("{") and "/" not in b for b in bodies)  # bare id
    assert any('"download_id"' in b and '"detail"' not in b for b in bodies)  # JSON
    assert any('"detail-type"' in b for b in bodies)  # EventBridge event
    assert "../../etc/passwd" in bodies


@pytest.mark.parametrize("name", ["poll-running.json", "poll-done.json", "poll-failed.json"])
def test_poll_payloads_are_workflow_states(name):
    state = json.loads((EVENTS / name).read_text())
    assert PollState.from_dict(state).job_id == name.removeprefix("poll-").removesuffix(".json").join(
        ["job-", ""]
    )


def test_env_file_names_both_functions_and_no_key():
    env = json.loads((EVENTS / "env.json").read_text())
    assert {"Parameters", "RetryFunction"} <= env.keys()
    assert "sk-" not in json.dumps(env)
