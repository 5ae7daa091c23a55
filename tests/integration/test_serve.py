"""`videodb-retry local --serve`: the emulated stack kept up behind a moto server and the
sandbox on 127.0.0.1, driven by the real `videodb-retry` console command in subprocesses.

Every subprocess has a timeout and the served process is killed in teardown whatever
happened; it also stops by itself after --max-seconds, should this process die first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from videodb_retry_local.commands import demo
from videodb_retry_local.commands.serve import READY, describe_event
from videodb_retry_local.videodb_sandbox.prefix_sandbox import PREFIXES, prefix_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SCRIPT = Path(sys.executable).with_name("videodb-retry")
needs_script = pytest.mark.skipif(
    not SCRIPT.exists(), reason="console script not installed (pip install -e .)"
)
REGION = "us-east-1"
STACK = "videodb-retry-local"
START_SECONDS = 90  # stack creation imports both functions and zips the layer
SAFETY_SECONDS = 200  # the served process stops by itself after this (orphan guard)


def free_ports(count: int) -> list[int]:
    """Distinct ports nothing listens on now (bound to 0 together, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def listening(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def bindable(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:port again (as the servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_PROFILE")}
    env.update(
        PYTHONUNBUFFERED="1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


class Served:
    """The serve-mode process and everything it printed so far (read by two threads)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:  # ends when the process closes the pipe
            with self._changed:
                into.append(line.rstrip("\n"))
                self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.out) + "\n--- stderr ---\n" + "\n".join(self.err)

    def wait_for_line(self, line: str, timeout: float) -> bool:
        """Wait (bounded) until stdout has ``line``, or the process ended."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while line not in self.out:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return line in self.out
                self._changed.wait(min(left, 0.5))
            return True

    def value(self, label: str) -> str:
        """A value of the banner, e.g. ``value("AWS emulator (moto)")``."""
        for line in list(self.out):
            if line.strip().startswith(label):
                return line.strip()[len(label) :].split()[0]
        raise AssertionError(f"no {label!r} line in:\n{self.text()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        finally:
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def ports() -> list[int]:
    return free_ports(2)


@pytest.fixture
def served(ports: list[int], tmp_path: Path) -> Iterator[Served]:
    """`videodb-retry local --serve` on two free loopback ports, ready (killed in teardown)."""
    port_aws, port_api = ports
    argv = [str(SCRIPT), "local", "--serve", "--port-aws", str(port_aws), "--port-api", str(port_api)]
    process = Served([*argv, "--max-seconds", str(SAFETY_SECONDS)], tmp_path)
    try:
        if not process.wait_for_line(READY, START_SECONDS):
            pytest.fail(f"serve mode did not print {READY!r} within {START_SECONDS} s:\n{process.text()}")
        yield process
    finally:
        process.kill()


def cli(*argv: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The real console command (60 s at most)."""
    return subprocess.run(
        [str(SCRIPT), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=child_env(),
        timeout=60,
    )


def wait_until(condition: Callable[[], Any], timeout: float, step: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something true or ``timeout`` passes; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(step)


@needs_script
def test_a_session_against_serve_mode(served: Served, ports: list[int], tmp_path: Path) -> None:
    endpoint = served.value("AWS emulator (moto)")
    assert endpoint == f"http://127.0.0.1:{ports[0]}"
    assert served.value("VideoDB sandbox API") == f"http://127.0.0.1:{ports[1]}"
    stack = ("--endpoint-url", endpoint, "--stack-name", STACK)

    # The in-process stack is what the server shows: the record stack names its resources.
    cfn = boto3.client("cloudformation", region_name=REGION, endpoint_url=endpoint)
    described = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    assert described["StackStatus"] == "CREATE_COMPLETE"
    assert outputs["RetryQueueUrl"] == served.value("retry queue")
    assert outputs["DeadLetterQueueUrl"] == served.value("dead-letter queue")
    assert outputs["RetryWorkflowArn"] == served.value("state machine")
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint)
    assert sfn.describe_state_machine(stateMachineArn=outputs["RetryWorkflowArn"])["status"] == "ACTIVE"

    # A first deploy's check: the key, mapping, breaker, DLQ hold; serve mode sets no AlarmEmail.
    checked = cli(*stack, "check", cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr
    assert [line.split(":")[0] for line in checked.stdout.splitlines()] == [
        "ok   api key",
        "ok   retry queue mapping",
        "ok   breaker",
        "FAIL alarm e-mail",
        "ok   dead-letter queue",
        "ok   sweeper",
    ]

    sent = cli(*stack, "enqueue", "dl-ok-1", "dl-fail-1", "dl-gone-1", "bad id", cwd=tmp_path)
    assert sent.returncode == 1, sent.stderr
    assert sent.stdout == f"sent 3 download id(s) to {outputs['RetryQueueUrl']}\n"
    assert sent.stderr.splitlines() == [
        "videodb-retry: argument 4: download_id 'bad id' has characters other than letters, digits, "
        "'-' and '_'",
        "videodb-retry: 1 of 4 id(s) failed",
    ]

    def retries_settled() -> list[dict[str, Any]] | None:
        result = cli(*stack, "status", "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        mine = sorted(
            ((r["download_id"], r["attempt"], r["status"]) for r in rows if r["status"] != "running"),
            key=str,
        )
        expected = [("dl-fail-1", 1, "failed"), ("dl-fail-1", 2, "done"), ("dl-ok-1", 1, "done")]
        return rows if mine == expected and len(rows) == 3 else None

    rows = wait_until(retries_settled, timeout=60)
    assert rows, f"the retries did not settle:\n{served.text()}"
    failed = next(r for r in rows if r["download_id"] == "dl-fail-1" and r["attempt"] == 1)
    assert failed["error"] == "Download failed: the source stream could not be read"
    assert all(r["polls"] >= 1 for r in rows)

    # Without any stack: the workflow named explicitly, from a directory with no samconfig.toml.
    by_arn = cli(
        "--endpoint-url",
        endpoint,
        "status",
        "dl-fail-1",
        "--json",
        "--state-machine-arn",
        outputs["RetryWorkflowArn"],
        cwd=tmp_path,
    )
    assert by_arn.returncode == 0, by_arn.stderr
    assert [(r["attempt"], r["status"]) for r in json.loads(by_arn.stdout)] == [(2, "done"), (1, "failed")]

    def dead_lettered() -> subprocess.CompletedProcess[str] | None:
        result = cli(*stack, "redrive", "--dry-run", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result if "http_404" in result.stdout else None

    dry = wait_until(dead_lettered, timeout=30)
    assert dry, f"dl-gone-1 did not reach the DLQ:\n{served.text()}"
    assert "POST /download/dl-gone-1 answered 404: Download dl-gone-1 not found" in dry.stdout
    assert "dry run: nothing moved" in dry.stdout
    assert "messages: ~1 waiting" in dry.stdout  # dry run: still there

    missing = cli("--endpoint-url", endpoint, "--stack-name", "no-such-stack", "status", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (
        1,
        f"videodb-retry: stack 'no-such-stack' not found in {REGION}\n",
    )

    # The served process reported the journey, and never printed the API key.
    assert served.wait_for_line("outcome: dl-fail-1 attempt 2 done (final)", timeout=10), served.text()
    assert "outcome: dl-ok-1 attempt 1 done (final)" in served.out
    secrets = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    key = json.loads(secrets.get_secret_value(SecretId=outputs["ApiKeySecretArn"])["SecretString"])["api_key"]
    assert len(key) > 20
    assert key not in served.text()
    for result in (checked, sent, dry, by_arn):
        assert key not in result.stdout + result.stderr

    started = time.monotonic()
    served.process.send_signal(signal.SIGINT)
    code = served.process.wait(timeout=15)
    took = time.monotonic() - started
    assert code == 0, served.text()
    assert took < 10, f"stopping took {took:.1f} s"
    assert served.wait_for_line("stopped", timeout=5)
    assert "stopping (SIGINT)" in served.out
    assert not any("Traceback" in line for line in served.err), served.text()
    for port in ports:
        assert not listening(port), f"port {port} still accepts connections"
        assert bindable(port), f"port {port} is not released"


@needs_script
def test_sigterm_stops_it_too(served: Served, ports: list[int]) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=15) == 0, served.text()
    assert served.wait_for_line("stopped", timeout=5)
    assert "stopping (SIGTERM)" in served.out
    assert not any(listening(port) for port in ports)


@needs_script
def test_a_port_in_use_is_one_line_and_exit_2(ports: list[int], tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", ports[0]))
        taken.listen()
        result = cli(
            "local", "--serve", "--port-aws", str(ports[0]), "--port-api", str(ports[1]), cwd=tmp_path
        )
    assert result.returncode == 2
    assert result.stderr == (
        f"cannot serve: AWS emulator port 127.0.0.1:{ports[0]} is not free (Address already in use); "
        "pick another\n"
    )
    assert not listening(ports[1])


def test_serve_options_need_serve_and_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--port-aws", "5000"],
        ["--max-seconds", "3"],
        ["--serve", "--api-base", "http://127.0.0.1:9", "--download-id", "dl-1"],
        ["--serve", "--port-api", "70000"],
    ):
        with pytest.raises(SystemExit) as exited:
            demo.parse_args(argv)
        assert exited.value.code == 2, argv
    err = capsys.readouterr().err
    assert "--port-aws needs --serve" in err and "--max-seconds needs --serve" in err


def _call(base_url: str, method: str, path: str, key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{base_url}{path}", method=method, headers={"x-access-token": key})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_download_ids_behave_by_prefix() -> None:
    key = "sk-prefix-test"
    with prefix_sandbox(api_key=key) as api:
        status, body = _call(api.base_url, "POST", "/download/dl-ok-7", key)
        assert (status, body["status"]) == (200, "processing")
        status, body = _call(api.base_url, "GET", "/download/dl-fail-7", key)
        assert (status, body["data"]["status"]) == (200, "error")  # known from first sight
        for unknown in ("dl-gone-7", "download-7", "dl-ok"):  # "dl-ok" lacks the prefix's '-'
            status, body = _call(api.base_url, "POST", f"/download/{unknown}", key)
            assert (status, body["error_code"]) == (404, "NOT_FOUND"), unknown
        status, _ = _call(api.base_url, "POST", "/download/dl-blip-7", key)
        assert status == 503  # the scripted first answer
        status, _ = _call(api.base_url, "POST", "/download/dl-blip-7", key)
        assert status == 200  # scripted once only: the script is not reset by later requests
        status, _ = _call(api.base_url, "POST", "/download/dl-ok-8", "sk-wrong")
        assert status == 401  # the key is still checked
    assert {p.prefix for p in PREFIXES} >= {"dl-ok-", "dl-fail-", "dl-gone-"}
    assert next(p for p in PREFIXES if p.prefix == "dl-gone-").script is None


# -- for `sam local invoke`: --host and --sam-env (the containers themselves: tests/container) --


@needs_script
def test_sam_env_files_point_every_function_at_the_served_stack(ports: list[int], tmp_path: Path) -> None:
    """On another loopback address (as --host ADDRESS), with the sweeper on: every function of
    the template gets its whole environment, resolved against the served stack."""
    from videodb_retry.steps.poll import PollState

    from videodb_retry_local.commands.sam_local import ENV_FILE, SHELL_FILE
    from videodb_retry_local.stack.template import Template

    host, sam_env = "127.0.0.2", tmp_path / "sam"
    argv = [
        str(SCRIPT),
        "local",
        "--serve",
        "--host",
        host,
        "--sam-env",
        str(sam_env),
        "--param",
        "SweeperEnabled=true",
        "--port-aws",
        str(ports[0]),
        "--port-api",
        str(ports[1]),
        "--max-seconds",
        str(SAFETY_SECONDS),
    ]
    served = Served(argv, tmp_path)
    try:
        assert served.wait_for_line(READY, START_SECONDS), served.text()
        endpoint, api = served.value("AWS emulator (moto)"), served.value("VideoDB sandbox API")
        assert (endpoint, api) == (f"http://{host}:{ports[0]}", f"http://{host}:{ports[1]}")
        env = json.loads((sam_env / ENV_FILE).read_text())
        cfn = boto3.client("cloudformation", region_name=REGION, endpoint_url=endpoint)
        described = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}

        template = Template.load(overrides={"SweeperEnabled": "true"})  # template.yaml
        functions = set(template.resources_of_type("AWS::Serverless::Function"))
        assert set(env) == {"Parameters", *functions} and "SweeperFunction" in functions
        declared = template.document["Globals"]["Function"]["Environment"]["Variables"].keys()
        for function in functions:
            variables = env[function]
            local = template.resources()[function]["Properties"].get("Environment", {}).get("Variables", {})
            assert set(declared) | set(local) <= set(variables), function  # nothing left out
            assert variables["AWS_ENDPOINT_URL"] == endpoint
            assert variables["VIDEODB_API_BASE_URL"] == api
            assert variables["API_KEY_SECRET_ID"] == outputs["ApiKeySecretArn"]
            assert all(isinstance(v, str) for v in variables.values())  # SAM wants strings
        assert env["Parameters"]["AWS_ENDPOINT_URL"] == endpoint
        retry = env["RetryFunction"]
        assert (retry["RETRY_QUEUE_URL"], retry["DEAD_LETTER_QUEUE_URL"], retry["STATE_MACHINE_ARN"]) == (
            outputs["RetryQueueUrl"],
            outputs["DeadLetterQueueUrl"],
            outputs["RetryWorkflowArn"],
        )
        dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
        assert dynamodb.describe_table(TableName=retry["IDEMPOTENCY_TABLE_NAME"])["Table"]["TableStatus"]

        # aws.env, sourced by a POSIX shell, gives the endpoint and moto's fake credentials.
        shown = subprocess.run(
            [
                "bash",
                "-c",
                'source "$0"; echo "$AWS_ENDPOINT_URL $AWS_ACCESS_KEY_ID ${AWS_PROFILE-unset}"',
                str(sam_env / SHELL_FILE),
            ],
            capture_output=True,
            text=True,
            timeout=10,
            env={**child_env(), "AWS_PROFILE": "real"},
        )
        assert shown.stdout.split() == [endpoint, "testing", "unset"], shown.stderr

        # poll-running.json is a workflow state naming a live sandbox job on the served API.
        state = json.loads((sam_env / "poll-running.json").read_text())
        parsed = PollState.from_dict(state)
        assert parsed.output_url == f"{api}/async-response/{parsed.job_id}"
        assert "videodb: POST /download/dl-stuck-sam-poll -> 200" in served.out

        secrets = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
        secret = secrets.get_secret_value(SecretId=outputs["ApiKeySecretArn"])["SecretString"]
        key = json.loads(secret)["api_key"]
        for path in sam_env.iterdir():
            assert key not in path.read_text(), path
        assert key not in served.text()
    finally:
        served.kill()


@needs_script
@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("0.0.0.0", "--host 0.0.0.0 would listen on every network"),
        ("192.0.2.1", "--host 192.0.2.1 is not an address of this machine"),
        ("::1", "--host ::1: an IPv4 address, please"),
        ("localhost", "--host 'localhost' is not an IP address (or 'auto')"),
    ],
)
def test_a_host_containers_cannot_use_is_refused_in_one_line(
    host: str, why: str, ports: list[int], tmp_path: Path
) -> None:
    result = cli(
        "local",
        "--serve",
        "--host",
        host,
        "--sam-env",
        str(tmp_path / "sam"),
        "--port-aws",
        str(ports[0]),
        "--port-api",
        str(ports[1]),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"cannot serve: {why}") and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "sam").exists()
    assert not any(listening(port) for port in ports)


def test_host_and_sam_env_need_serve(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--host", "auto"], ["--sam-env", "x"]):
        with pytest.raises(SystemExit) as exited:
            demo.parse_args(argv)
        assert exited.value.code == 2, argv
    err = capsys.readouterr().err
    assert "--host needs --serve" in err and "--sam-env needs --serve" in err


def test_the_breaker_announcements_print_as_the_breaker_not_as_an_outcome() -> None:
    # Every event on the bus reaches serve mode's log; the breaker's carry no download.
    paused = {"detail-type": "Retry Paused", "detail": {"state": "open", "reason": "opened by hand: x"}}
    resumed = {"detail-type": "Retry Resumed", "detail": {"state": "closed", "reason": "closed by hand: y"}}
    outcome = {
        "detail-type": "Download Retry Failed",
        "detail": {"download_id": "dl-a", "attempt": 1, "status": "failed", "will_retry": True, "error": "e"},
    }
    assert describe_event(paused) == "breaker: Retry Paused (opened by hand: x)"
    assert describe_event(resumed) == "breaker: Retry Resumed (closed by hand: y)"
    assert describe_event(outcome) == "outcome: dl-a attempt 1 failed (will retry): e"
