"""Fixtures for `sam local invoke` in real containers, offline.

What runs where:
- the functions run in Lambda containers that `sam local invoke` starts on the Docker engine
  (scripts/container/docker-up.sh starts one; scripts/container/lambda-image.sh builds the
  base image offline, and is run from here when the image is missing);
- emulated AWS (a moto server) and the VideoDB sandbox run in this process, listening on the
  Docker bridge gateway (the engine's own docker0 address), which the containers reach as
  ``host.docker.internal`` (``sam local invoke --add-host``). Nothing else is reached.

Without a reachable engine every test here is skipped, unless VIDEODB_RETRY_REQUIRE_CONTAINERS=1
(CI), which makes a missing engine a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
TEMPLATE = REPO / "template.yaml"
SAM = Path(os.environ.get("SAM_CLI", REPO / ".venv-sam" / "bin" / "sam"))
LAMBDA_IMAGE_SCRIPT = REPO / "scripts" / "container" / "lambda-image.sh"
REQUIRE_ENV = "VIDEODB_RETRY_REQUIRE_CONTAINERS"
# The name a Lambda container uses for the machine it runs on (Docker Desktop's own name;
# on Linux `--add-host` maps it to the bridge gateway).
CONTAINER_HOST_NAME = "host.docker.internal"
STACK_NAME = "videodb-retry"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
# Variables the functions need locally that the template does not declare (SAM passes only
# declared variables from --env-vars, so the built template gets them added; see below).
LOCAL_ONLY_VARIABLES = ("AWS_ENDPOINT_URL",)
INVOKE_TIMEOUT_SECONDS = 240
BUILD_TIMEOUT_SECONDS = 600

TIMINGS: list[tuple[str, float]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "container: runs the functions with `sam local invoke` in real Docker containers "
        f"(skipped without a Docker engine unless {REQUIRE_ENV}=1)",
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "container timings")
        for what, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:7.1f} s  {what}")


def _unavailable(reason: str, hint: str = "start one with scripts/container/docker-up.sh") -> None:
    """Skip, or fail when containers are required (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so containers are required)", pytrace=False)
    pytest.skip(f"{reason}; {hint}")


def _timed(what: str, started: float) -> float:
    seconds = time.monotonic() - started
    TIMINGS.append((what, seconds))
    return seconds


def _docker(*args: str, timeout: float = 30) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout.strip()


# -- the engine, the base image, the SAM CLI --------------------------------------------------


@pytest.fixture(scope="session")
def bridge_ip() -> str:
    """The Docker bridge gateway: an address of this machine that the containers reach.

    Found as `videodb-retry local --serve --host auto` finds it (sam_local.docker_bridge_address).
    """
    from videodb_retry_local.commands.sam_local import AddressError, docker_bridge_address

    if shutil.which("docker") is None:
        _unavailable("no docker command found")
    try:
        _docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"no Docker engine answers ({type(exc).__name__})")
    try:
        return docker_bridge_address()
    except AddressError as exc:
        pytest.fail(f"the Docker engine answers but its bridge is unusable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def lambda_image(bridge_ip: str) -> Iterator[str]:
    """The offline Lambda base image; built by scripts/container/lambda-image.sh when missing.

    SAM rebuilds its invoke image on top of it at every invoke (the layer is part of the
    template), leaving the previous one untagged; those left by this session are removed.
    """
    started = time.monotonic()
    done = subprocess.run(["bash", str(LAMBDA_IMAGE_SCRIPT)], capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        pytest.fail(f"lambda-image.sh failed:\n{done.stderr[-4000:]}", pytrace=False)
    _timed("lambda base image (lambda-image.sh)", started)
    image = done.stdout.strip().splitlines()[-1]
    untagged_before = set(_untagged_images_on(image))
    yield image
    left = [i for i in _untagged_images_on(image) if i not in untagged_before]
    if left:
        subprocess.run(["docker", "image", "rm", *left], capture_output=True, timeout=120)


def _untagged_images_on(image: str) -> list[str]:
    try:
        return _docker(
            "images", "--quiet", "--no-trunc", "--filter", "dangling=true", "--filter", f"since={image}"
        ).split()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return []


@pytest.fixture(scope="session")
def sam_cli() -> Path:
    if not os.access(SAM, os.X_OK):
        _unavailable(f"no SAM CLI at {SAM}", "install it with `make .venv-sam/bin/sam`")
    return SAM


@pytest.fixture(scope="session")
def sam_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SAM CLI app dir whose last version check is now: SAM does not call PyPI to check."""
    home = tmp_path_factory.mktemp("sam-home")
    metadata = {"lastVersionCheck": time.time(), "telemetryEnabled": False}
    (home / "metadata.json").write_text(json.dumps(metadata))
    return home


def _sam_env(sam_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the SAM CLI: no telemetry, no version check, credentials that sign nothing real."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    # `sam build` runs pip with a `python3.13` from PATH: put this interpreter's base first.
    interpreter_bin = str(Path(sys.base_prefix) / "bin")
    env.update(
        SAM_CLI_TELEMETRY="0",
        __SAM_CLI_APP_DIR=str(sam_home),
        PATH=f"{interpreter_bin}:{env.get('PATH', '')}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def built_template(sam_cli: Path, sam_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of the project into a temporary directory; returns the built template."""
    work = tmp_path_factory.mktemp("sam")
    build_dir = work / "build"
    started = time.monotonic()
    done = subprocess.run(
        [
            str(sam_cli),
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(work / "cache"),
            "--base-dir",
            str(REPO),
        ],
        cwd=work,  # SAM keeps working files (.aws-sam/deps) under the working directory
        env=_sam_env(sam_home),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        pytest.fail(f"sam build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", pytrace=False)
    _timed("sam build", started)
    template = build_dir / "template.yaml"
    _declare_local_variables(template)
    return template


def _declare_local_variables(template: Path) -> None:
    """Declare LOCAL_ONLY_VARIABLES (empty) in the built template's Globals, if it lacks them.

    `sam local invoke --env-vars` sets only variables the template declares. An empty
    AWS_ENDPOINT_URL is ignored by boto3, so declaring it in template.yaml itself changes
    nothing in AWS; until the template does, the built copy (a temporary file) gets it.
    """
    document = yaml.safe_load(template.read_text(encoding="utf-8"))  # sam build writes long form
    variables = (
        document.setdefault("Globals", {})
        .setdefault("Function", {})
        .setdefault("Environment", {})
        .setdefault("Variables", {})
    )
    missing = [name for name in LOCAL_ONLY_VARIABLES if name not in variables]
    if missing:
        variables.update(dict.fromkeys(missing, ""))
        template.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


# -- emulated AWS and the VideoDB sandbox, on the bridge ---------------------------------------


@pytest.fixture(scope="session")
def allow_bridge(bridge_ip: str) -> Iterator[None]:
    """Let this process talk to its own servers on the bridge (the suite's network guard)."""
    before = os.environ.get("VIDEODB_RETRY_ALLOWED_HOSTS")
    os.environ["VIDEODB_RETRY_ALLOWED_HOSTS"] = ",".join(filter(None, [before, bridge_ip]))
    yield
    if before is None:
        os.environ.pop("VIDEODB_RETRY_ALLOWED_HOSTS", None)
    else:
        os.environ["VIDEODB_RETRY_ALLOWED_HOSTS"] = before


@pytest.fixture(scope="session")
def moto_server(bridge_ip: str, allow_bridge: None) -> Iterator[str]:
    """A moto server on the bridge; yields its endpoint as this process reaches it."""
    from videodb_retry_local.stack.moto_server import endpoint_of, start_moto_server

    server = start_moto_server(0, bridge_ip)
    try:
        yield endpoint_of(server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def api_key() -> str:
    """The VideoDB key of this run: the sandbox accepts it, the emulated secret holds it."""
    return f"sk-container-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def sandbox_server(bridge_ip: str, allow_bridge: None, api_key: str) -> Iterator[Any]:
    from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

    server = SandboxServer(api_key=api_key, host=bridge_ip).start()
    try:
        yield server
    finally:
        server.stop()


def for_containers(url: str) -> str:
    """``url`` (on the bridge address) as the containers reach it."""
    scheme, _, rest = url.partition("://")
    port = rest.rsplit(":", 1)[1]
    return f"{scheme}://{CONTAINER_HOST_NAME}:{port}"


@dataclass
class Stack:
    """The emulated stack: template-derived resources in the moto server."""

    endpoint: str  # as this process reaches moto
    container_endpoint: str  # as the containers reach it
    sandbox_url: str  # the VideoDB sandbox as the containers reach it
    api_key: str
    ids: Any  # videodb_retry_local.stack.template.PhysicalIds
    template: Any  # videodb_retry_local.stack.template.Template
    env_file: Path = field(default=Path())

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def ref(self, logical_id: str) -> str:
        return self.ids.resources[logical_id].ref

    def secret_api_key(self) -> str:
        """The API key as stored in the emulated secret (what the functions must send)."""
        from videodb_retry.adapters.api_key import parse_secret_value

        value = self.client("secretsmanager").get_secret_value(SecretId=self.ref("ApiKeySecret"))
        return parse_secret_value(value["SecretString"])

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every message in the dead-letter queue, with its attributes (left in the queue)."""
        answer = self.client("sqs").receive_message(
            QueueUrl=self.ref("RetryDeadLetterQueue"),
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
        )
        return answer.get("Messages", [])

    def executions(self) -> list[dict[str, Any]]:
        """Every execution of the retry workflow, with its input parsed."""
        sfn = self.client("stepfunctions")
        found = []
        for execution in sfn.list_executions(stateMachineArn=self.ref("RetryWorkflow"))["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            found.append({"name": described["name"], "input": json.loads(described["input"])})
        return found


def _reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def _create_stack(stack: Stack) -> None:
    """Create the template's resources in moto, in dependency order, as the stack would have them.

    Queues, the secret, the idempotency table and the state machine are created from their
    resolved properties; the rest (functions, rules, policies, log group, layer) get physical
    ids only, so references
    to them resolve (the functions run in containers, not in moto).
    """
    from videodb_retry_local.stack.template import Physical

    template, ids = stack.template, stack.ids
    for logical_id in template.creation_order():
        kind = template.resources()[logical_id]["Type"]
        name = f"{STACK_NAME}-{logical_id}"
        if kind == "AWS::SQS::Queue":
            url = stack.client("sqs").create_queue(
                QueueName=name, Attributes=template.queue_attributes(logical_id, ids)
            )["QueueUrl"]
            arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
            ids.resources[logical_id] = Physical(url, {"Arn": arn, "QueueName": name})
        elif kind == "AWS::SecretsManager::Secret":
            properties = template.properties(logical_id, ids)
            arn = stack.client("secretsmanager").create_secret(
                Name=name, SecretString=properties.get("SecretString", "")
            )["ARN"]
            ids.resources[logical_id] = Physical(arn, {"Id": arn})
        elif kind == "AWS::DynamoDB::Table":
            properties = template.properties(logical_id, ids)
            arn = stack.client("dynamodb").create_table(
                TableName=name,
                KeySchema=properties["KeySchema"],
                AttributeDefinitions=properties["AttributeDefinitions"],
                BillingMode=properties.get("BillingMode", "PAY_PER_REQUEST"),
            )["TableDescription"]["TableArn"]
            ids.resources[logical_id] = Physical(name, {"Arn": arn})
        elif kind == "AWS::Serverless::StateMachine":
            arn = stack.client("stepfunctions").create_state_machine(
                name=name,
                definition=template.state_machine_definition(logical_id, ids),
                roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{name}-Role",
            )["stateMachineArn"]
            ids.resources[logical_id] = Physical(arn, {"Name": name, "Arn": arn})
        else:
            service = "lambda" if kind == "AWS::Serverless::Function" else "local"
            arn = f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:function:{name}"
            ids.resources[logical_id] = Physical(name, {"Arn": arn, "Name": name})
            # The event source mapping SAM makes of each SQS event (<Function><Event>): the
            # breaker's environment names the retry queue's (its Ref is the mapping's UUID).
            events = template.resources()[logical_id].get("Properties", {}).get("Events", {})
            for event_name, event in events.items():
                if event.get("Type") == "SQS":
                    ids.resources[f"{logical_id}{event_name}"] = Physical(str(uuid.uuid4()))
    # The key goes in as a user would put it: JSON {"api_key": ...} in the stack's secret.
    stack.client("secretsmanager").put_secret_value(
        SecretId=stack.ref("ApiKeySecret"), SecretString=json.dumps({"api_key": stack.api_key})
    )


def _write_env_file(stack: Stack, path: Path) -> Path:
    """The --env-vars file, as serve mode writes it (sam_local.env_vars): each function's
    template environment resolved against the emulated stack, plus the emulator endpoint.
    Keys of events/env.json are kept (so what users run stays covered) but every value comes
    from the live stack."""
    from videodb_retry_local.commands.sam_local import env_vars

    base = json.loads((EVENTS / "env.json").read_text()) if (EVENTS / "env.json").exists() else {}
    live = env_vars(stack.template, stack.ids, stack.container_endpoint)
    env = {name: {**base.get(name, {}), **variables} for name, variables in live.items()}
    env["Parameters"].update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION
    )
    path.write_text(json.dumps(env, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def stack(moto_server: str, sandbox_server: Any, api_key: str, tmp_path: Path) -> Stack:
    """A fresh emulated stack (moto reset) and sandbox for one test."""
    from videodb_retry_local.stack.template import PhysicalIds, Template

    _reset_moto(moto_server)
    sandbox_server.reset()
    sandbox_url = for_containers(sandbox_server.base_url)
    template = Template.load(TEMPLATE, overrides={"VideoDBApiBaseUrl": sandbox_url})
    result = Stack(
        endpoint=moto_server,
        container_endpoint=for_containers(moto_server),
        sandbox_url=sandbox_url,
        api_key=api_key,
        ids=PhysicalIds(stack_name=STACK_NAME, region=REGION, account_id=ACCOUNT_ID),
        template=template,
    )
    _create_stack(result)
    result.env_file = _write_env_file(result, tmp_path / "env.json")
    return result


# -- sam local invoke ---------------------------------------------------------------------------


@dataclass
class Invocation:
    function: str
    event: Path
    result: Any
    logs: str
    seconds: float


@pytest.fixture
def invoke(
    built_template: Path, lambda_image: str, sam_cli: Path, sam_home: Path, bridge_ip: str, stack: Stack
) -> Callable[[str, Path], Invocation]:
    """Run ``sam local invoke FUNCTION -e EVENT`` in a container against the emulated stack."""
    # SAM asks STS for the account id on every invoke: moto answers it. Any other HTTP call
    # SAM would make off this machine goes to a closed loopback port and fails at once.
    env = _sam_env(
        sam_home,
        {
            "AWS_ENDPOINT_URL": stack.endpoint,
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": f"localhost,127.0.0.1,{bridge_ip},{CONTAINER_HOST_NAME}",
        },
    )

    def run(function: str, event: Path) -> Invocation:
        started = time.monotonic()
        done = subprocess.run(
            [
                str(sam_cli),
                "local",
                "invoke",
                function,
                "--template-file",
                str(built_template),
                "--event",
                str(event),
                "--env-vars",
                str(stack.env_file),
                "--skip-pull-image",
                "--add-host",
                f"{CONTAINER_HOST_NAME}:{bridge_ip}",
                "--region",
                REGION,
                *(["--debug"] if os.environ.get("VIDEODB_RETRY_SHOW_INVOKE_LOGS") == "1" else []),
            ],
            cwd=built_template.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=INVOKE_TIMEOUT_SECONDS,
        )
        seconds = _timed(f"sam local invoke {function} -e {event.name}", started)
        assert done.returncode == 0, f"sam local invoke failed ({done.returncode}):\n{done.stderr[-4000:]}"
        lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
        assert lines, f"sam local invoke printed no result:\n{done.stderr[-4000:]}"
        result = json.loads(lines[-1])
        assert not (isinstance(result, dict) and "errorType" in result), (
            f"the function raised {result.get('errorType')}: {result.get('errorMessage')}\n"
            f"{done.stderr[-4000:]}"
        )
        if os.environ.get("VIDEODB_RETRY_SHOW_INVOKE_LOGS") == "1":
            print(done.stderr)
        return Invocation(function, event, result, done.stderr, seconds)

    return run
