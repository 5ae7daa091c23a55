"""The installed console script, run as a subprocess against a moto server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.cli.conftest import REGION, drain
from tests.cli.test_stack_lookup import TEMPLATE

SCRIPT = Path(sys.executable).with_name("videodb-retry")
pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="console script not installed (pip install -e .)")


def run(*argv: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_PROFILE")}
    return subprocess.run(
        [str(SCRIPT), *argv], input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_a_session_against_the_emulator(server_url: str, tmp_path: Path) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION, endpoint_url=server_url)
    cfn.create_stack(StackName="videodb-retry", TemplateBody=json.dumps(TEMPLATE))
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cfn.describe_stacks(StackName="videodb-retry")["Stacks"][0]["Outputs"]
    }
    # Like an operator in the project directory: the stack name comes from samconfig.toml.
    (tmp_path / "samconfig.toml").write_text('[default.global.parameters]\nstack_name = "videodb-retry"\n')

    sent = run(
        "--endpoint-url", server_url, "enqueue", "-", "bad/id", cwd=tmp_path, stdin="dl-1\n# c\ndl-2\n"
    )
    assert sent.returncode == 1
    assert sent.stdout == f"sent 2 download id(s) to {outputs['RetryQueueUrl']}\n"
    assert sent.stderr.splitlines() == [
        "videodb-retry: argument 2: download_id 'bad/id' has characters other than letters, digits, "
        "'-' and '_'",
        "videodb-retry: 1 of 3 id(s) failed",
    ]
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=server_url)
    assert sorted(m["Body"] for m in drain(sqs, outputs["RetryQueueUrl"])) == ["dl-1", "dl-2"]

    status = run("status", "--json", "--endpoint-url", server_url, cwd=tmp_path)
    assert (status.returncode, json.loads(status.stdout), status.stderr) == (0, [], "")

    sqs.send_message(QueueUrl=outputs["DeadLetterQueueUrl"], MessageBody="dl-3")
    redrive = run("--endpoint-url", server_url, "redrive", cwd=tmp_path)
    assert redrive.returncode == 0, redrive.stderr
    assert "moved 1 message(s)" in redrive.stdout
    assert [m["Body"] for m in drain(sqs, outputs["RetryQueueUrl"])] == ["dl-3"]


def test_errors_are_one_line_without_traceback(server_url: str, tmp_path: Path) -> None:
    result = run(
        "--endpoint-url", server_url, "--stack-name", "missing", "redrive", "--dry-run", cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr == f"videodb-retry: stack 'missing' not found in {REGION}\n"

    result = run("status", "--limit", "-3", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_help(tmp_path: Path) -> None:
    result: Any = run("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "enqueue" in result.stdout and "redrive" in result.stdout and "status" in result.stdout
