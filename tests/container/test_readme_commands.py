"""docs/developing.md's "On your machine" commands, run as written, in a fresh copy of the repository.

The bash blocks of that section are read from docs/developing.md here, so page and test cannot
drift: the first block is the server (run in the background, as the user's first shell), the
others run in order in one bash shell (the second shell; ``source`` carries over). What
differs from a user's machine, and why:

- PATH: the project's ``.venv/bin`` (what ``make deps && . .venv/bin/activate`` gives), the
  SAM CLI's venv, and this interpreter's base (``sam build`` wants a ``python3.13``);
- the server line gets ``--port-aws 0 --port-api 0`` (a free port each: another run on this
  machine may hold 5000/8765) and ``--max-seconds`` (it stops by itself should this test die);
- ``SAM_SKIP_PULL_IMAGE=1`` (SAM's own variable for ``--skip-pull-image``): offline, the base
  image is the one lambda-image.sh built, not pulled; plus SAM's telemetry and version check off.

It checks the outcome, not only exit codes: the retry POSTs the sandbox answered, the
partial batch response, the executions the container started (and that they ran to the end in
the emulator), the poll function's answer, and the dead-lettered poison message with its
reason, both in the CLI's output and in the emulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from videodb_retry.rules.messages import PoisonMessage, parse_body

from tests.container.conftest import REPO, _sam_env, _timed

PAGE = REPO / "docs" / "developing.md"  # the page that holds the section (once the README)
TEMPLATE = REPO / "template.yaml"
SECTION = "### On your machine"
SERVE_START_SECONDS = 120
SCRIPT_TIMEOUT_SECONDS = 900
OUTCOME_WAIT_SECONDS = 60
SAFETY_SECONDS = 1200
MARK = "### readme-command: "


def readme_blocks() -> list[str]:
    """The ```bash blocks of the page's "On your machine" section, in order."""
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(SECTION)
    rest = text[start + len(SECTION) :]
    end = re.search(r"^#{2,3} ", rest, flags=re.MULTILINE)
    section = rest[: end.start()] if end else rest
    return re.findall(r"^```bash\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[str]:
    """The command lines of a block (no comments, no blank lines, no continuations)."""
    lines = [line.strip() for line in block.splitlines()]
    found = [line for line in lines if line and not line.startswith("#")]
    assert not any(line.endswith("\\") for line in found), "keep the page's commands on one line each"
    return found


def test_the_section_is_a_server_then_sam_and_cli_commands() -> None:
    """Cheap guard (no Docker): the shape the container test relies on."""
    blocks = [commands(b) for b in readme_blocks()]
    assert len(blocks) >= 2, blocks
    [server] = blocks[0]
    assert server.startswith("videodb-retry local --serve ") and "--host auto" in server
    later = [line for block in blocks[1:] for line in block]
    assert later[0].startswith("source ")
    assert "sam build" in later
    assert any(line.startswith("sam local invoke RetryFunction ") for line in later)
    assert any(line.startswith("sam local invoke PollFunction ") for line in later)
    assert any(line.endswith(" status") for line in later)
    assert any(line.endswith(" redrive --dry-run") for line in later)
    # Offline flags belong to the test (env vars), not to what a user types.
    assert not any("--skip-pull-image" in line or "0.0.0.0" in line for line in [*later, server])


@pytest.fixture
def fresh_copy(tmp_path: Path) -> Path:
    """The repository's tracked files, as in the working tree, in a new directory."""
    listed = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=30)
        .stdout.decode()
        .split("\0")
    )
    copy = tmp_path / "clone"
    for name in filter(None, listed):
        source, target = REPO / name, copy / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return copy


class Background:
    """A command in the background whose stdout lines are collected as they come."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self.process = subprocess.Popen(
            command,
            shell=True,
            executable="/bin/bash",
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()

    def wait_for(self, line: str, timeout: float) -> bool:
        """Wait (bounded) until ``line`` was printed."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while line not in self.lines:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return line in self.lines
                self._seen.wait(min(left, 0.5))
            return True

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _path_env(sam_cli: Path, sam_home: Path) -> dict[str, str]:
    env = _sam_env(sam_home, {"SAM_SKIP_PULL_IMAGE": "1"})
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, str(sam_cli.parent), env["PATH"]])
    return env


@contextlib.contextmanager
def _serving(copy: Path, sam_cli: Path, sam_home: Path, options: str = "") -> Iterator[Background]:
    """The page's server line (plus ``options``) in the background, until it is ready."""
    [server] = commands(readme_blocks()[0])
    line = f"{server}{options} --port-aws 0 --port-api 0 --max-seconds {SAFETY_SECONDS}"
    started = time.monotonic()
    background = Background(line, copy, _path_env(sam_cli, sam_home))
    try:
        assert background.wait_for("ready", SERVE_START_SECONDS), "\n".join(background.lines)
        _timed(f"docs: videodb-retry local --serve --host auto{options} (until ready)", started)
        yield background
    finally:
        background.stop()


@pytest.fixture
def served(
    fresh_copy: Path, sam_cli: Path, sam_home: Path, bridge_ip: str, allow_bridge: None
) -> Iterator[Background]:
    with _serving(fresh_copy, sam_cli, sam_home) as background:
        yield background


def _run_client_shell(copy: Path, env: dict[str, str]) -> dict[str, str]:
    """The page's later blocks in one bash shell; returns each command's output."""
    lines = [line for block in readme_blocks()[1:] for line in commands(block)]
    script = "set -euo pipefail\n" + "".join(
        # A newline first: `sam local invoke` ends its answer without one.
        f"printf '\\n%s\\n' {shlex.quote(MARK + line)}\n{line}\n"
        for line in lines
    )
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )
    _timed("docs: the second shell's commands (sam build, invokes, status, redrive)", started)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    outputs: dict[str, str] = {}
    current = None
    for out_line in done.stdout.splitlines():
        if out_line.startswith(MARK):
            current = out_line.removeprefix(MARK)
            outputs[current] = ""
        elif current is not None:
            outputs[current] += out_line + "\n"
    assert list(outputs) == lines, done.stdout
    return outputs


def _output_of(outputs: dict[str, str], prefix: str) -> str:
    [found] = [text for line, text in outputs.items() if line.startswith(prefix)]
    return found


def _result_of(invoke_output: str) -> Any:
    """The function's answer: the JSON line `sam local invoke` prints on stdout."""
    return json.loads([line for line in invoke_output.splitlines() if line.strip()][-1])


def _aws(env_file: Path, service: str) -> Any:
    endpoint = json.loads(env_file.read_text())["Parameters"]["AWS_ENDPOINT_URL"]
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.mark.container
@pytest.mark.timeout(SCRIPT_TIMEOUT_SECONDS + SERVE_START_SECONDS + OUTCOME_WAIT_SECONDS)
def test_the_readme_commands_work_from_a_fresh_copy(
    served: Background, fresh_copy: Path, lambda_image: str, sam_cli: Path, sam_home: Path
) -> None:
    outputs = _run_client_shell(fresh_copy, _path_env(sam_cli, sam_home))
    local = fresh_copy / ".aws-sam" / "local"
    env_file = local / "env.json"
    functions = json.loads(env_file.read_text())
    records = json.loads((fresh_copy / "events" / "retry-mixed-batch.json").read_text())["Records"]
    message_id = {record["body"]: record["messageId"] for record in records}

    # The retry function: only the record VideoDB answered 503 for goes back to the queue.
    retry = _result_of(_output_of(outputs, "sam local invoke RetryFunction "))
    assert retry == {"batchItemFailures": [{"itemIdentifier": message_id["dl-blip-flaky"]}]}
    # The sandbox (in the served process) answered exactly these retry POSTs.
    posts = sorted(line for line in served.lines if line.startswith("videodb: POST /download/"))
    assert posts == sorted(
        [
            "videodb: POST /download/dl-blip-flaky -> 503",
            "videodb: POST /download/dl-ok-bare -> 200",
            "videodb: POST /download/dl-ok-from-event -> 200",
            "videodb: POST /download/dl-ok-json -> 200",
            "videodb: POST /download/dl-stuck-sam-poll -> 200",  # serve mode's own, for poll-running.json
        ]
    ), "\n".join(served.lines)

    # The container started one execution per processing job, in the served emulator...
    sfn = _aws(env_file, "stepfunctions")
    arn = functions["RetryFunction"]["STATE_MACHINE_ARN"]
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    inputs = [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in executions]
    assert sorted(i["download_id"] for i in inputs) == ["dl-ok-bare", "dl-ok-from-event", "dl-ok-json"]
    # ...which ran there to the end (the poll function in the served process polled them).
    for download_id in ("dl-ok-bare", "dl-ok-from-event", "dl-ok-json"):
        line = f"outcome: {download_id} attempt 1 done (final)"
        assert served.wait_for(line, OUTCOME_WAIT_SECONDS), "\n".join(served.lines)
    status = next(text for line, text in outputs.items() if line.endswith(" status")).split("\n")
    [header, *rows] = [row for row in status if row.strip()]
    assert header.split()[:3] == ["DOWNLOAD_ID", "ATTEMPT", "STATUS"]
    assert {row.split()[0] for row in rows} == {"dl-ok-bare", "dl-ok-from-event", "dl-ok-json"}

    # The poll function, in a container, polled the sandbox job poll-running.json names once.
    state = json.loads((local / "poll-running.json").read_text())
    polled = _result_of(_output_of(outputs, "sam local invoke PollFunction "))
    assert (polled["status"], polled["polls"], polled["job_id"]) == ("running", 1, state["job_id"])
    assert f"videodb: GET /async-response/{state['job_id']} -> 200" in served.lines

    # The poison message is in the DLQ with its reason: in the CLI's dry run and in the queue.
    with pytest.raises(PoisonMessage) as why:
        parse_body("../../etc/passwd")
    redrive = next(text for line, text in outputs.items() if line.endswith(" redrive --dry-run"))
    assert re.search(r"^\s+1\s+poison\s+" + re.escape(str(why.value)), redrive, flags=re.MULTILINE), redrive
    assert "dry run: nothing moved" in redrive
    dead = _aws(env_file, "sqs").receive_message(
        QueueUrl=functions["RetryFunction"]["DEAD_LETTER_QUEUE_URL"],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        VisibilityTimeout=0,
    )["Messages"]
    assert [m["Body"] for m in dead] == ["../../etc/passwd"]
    attributes = {k: v["StringValue"] for k, v in dead[0]["MessageAttributes"].items()}
    assert (attributes["error_code"], attributes["reason"]) == ("poison", str(why.value))
    assert attributes["source_message_id"] == message_id["../../etc/passwd"]

    # The API key stayed in the secret: not in any file written, nor in any output.
    secret_id = functions["RetryFunction"]["API_KEY_SECRET_ID"]
    key = json.loads(_aws(env_file, "secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
    shown = "\n".join([*served.lines, *outputs.values(), *(p.read_text() for p in local.iterdir())])
    assert key["api_key"] not in shown


def _prose(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def served_with_sweeper(
    fresh_copy: Path, sam_cli: Path, sam_home: Path, bridge_ip: str, allow_bridge: None
) -> Iterator[Background]:
    """The page's server line with the sweeper on, as the section's prose says to start it."""
    with _serving(fresh_copy, sam_cli, sam_home, " --param SweeperEnabled=true") as background:
        yield background


@pytest.mark.container
@pytest.mark.timeout(SCRIPT_TIMEOUT_SECONDS + SERVE_START_SECONDS)
def test_the_sweeper_and_the_breaker_run_in_containers_as_the_readme_says(
    served_with_sweeper: Background, fresh_copy: Path, lambda_image: str, sam_cli: Path, sam_home: Path
) -> None:
    section = _prose(PAGE.read_text(encoding="utf-8").split(SECTION, 1)[1])
    sweep = "sam local invoke SweeperFunction --env-vars .aws-sam/local/env.json"
    tick = "sam local invoke BreakerFunction --env-vars .aws-sam/local/env.json"
    assert "--param SweeperEnabled=true" in section and sweep in section and tick in section
    script = (
        "set -euo pipefail\nsource .aws-sam/local/aws.env\nsam build >/dev/null\n"
        f"{sweep}\nprintf '\\n{MARK}\\n'\n{tick}\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=fresh_copy,
        env=_path_env(sam_cli, sam_home),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
    )
    _timed("docs: sam build, invoke SweeperFunction and BreakerFunction", started)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    swept, ticked = done.stdout.split(MARK)
    # One sweep against the sandbox: it listed downloads, and none had failed.
    # (The report also says how far the pass read: pages, listed, stopped, ...)
    counts = ("failed_in_window", "published", "already_published", "skipped_invalid")
    report = _result_of(swept)
    assert {key: report[key] for key in counts} == dict.fromkeys(counts, 0)
    assert report["pages"] >= 1 and report["pass_complete"] is True
    assert any(line.startswith("videodb: GET /download") for line in served_with_sweeper.lines)
    # One breaker tick: closed, the mapping left as the template deployed it.
    report = _result_of(ticked)
    # (read from template.yaml's text: the tick leaves the mapping at RetryMaxConcurrency's default)
    default = r"^  RetryMaxConcurrency:\n(?:    .*\n)*?    Default: (\d+)"
    parameter = re.search(default, TEMPLATE.read_text(), re.M)
    assert parameter, "template.yaml: RetryMaxConcurrency has no Default"
    deployed = int(parameter.group(1))
    assert (report["mode"], report["concurrency"], report["mapping_changed"]) == ("closed", deployed, False)
