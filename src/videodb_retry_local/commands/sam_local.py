"""What `sam local invoke` needs to run the functions against an emulated stack.

- :func:`listen_address`: where servers must listen for Lambda containers to reach them —
  the Docker bridge gateway (``auto``: this machine's end of the engine's default bridge,
  which containers on that bridge reach directly) or an address the user names. Never the
  unspecified address (0.0.0.0 / ::) by default or by request: the files below must hold an
  address the containers can dial, and listening everywhere would expose the emulator (no
  authentication) and the sandbox to every network this machine is on.
- :func:`env_vars`: the ``--env-vars`` file's content — every function's environment from
  the template, resolved against the emulated stack's physical ids, with
  ``AWS_ENDPOINT_URL`` pointing at the emulator. SAM passes only the variables the template
  declares (template.yaml declares an empty ``AWS_ENDPOINT_URL`` for that reason).
- :func:`shell_env`: exports for the user's shell, so that SAM (which asks STS for the
  account id) and ``videodb-retry`` talk to the emulator with moto's fake credentials, never
  with the user's real ones.
- :func:`write_sam_env`: serve mode's ``--sam-env DIR``: env.json, aws.env and a poll input.

The container tests (tests/container/conftest.py) use the same functions.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import shlex
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.moto_env import FAKE_CREDENTIALS
from videodb_retry_local.stack.template import PhysicalIds, Template
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

AUTO = "auto"
DOCKER_TIMEOUT_SECONDS = 20
# Variables set for every function (SAM ignores those a function does not declare).
COMMON_VARIABLES = {"POWERTOOLS_TRACE_DISABLED": "true"}  # no X-Ray daemon in the container
ENV_FILE = "env.json"
SHELL_FILE = "aws.env"
POLL_EXAMPLE_FILE = "poll-running.json"
# The download whose job poll-running.json names (dl-stuck-: the job never finishes).
POLL_EXAMPLE_ID = "dl-stuck-sam-poll"
_SIOCGIFADDR = 0x8915


class AddressError(Exception):
    """No address to listen on for containers: one line saying why."""


def docker_bridge_address() -> str:
    """The default Docker bridge's gateway: this machine's address on the engine's bridge.

    Read from ``docker network inspect bridge``; Docker 20.10 leaves the gateway out for the
    default bridge, so then from the bridge interface itself. Binding to it proves it is an
    address of this machine (a remote engine's bridge would not be).
    """
    try:
        done = subprocess.run(
            ["docker", "network", "inspect", "bridge", "--format", "{{json .}}"],  # noqa: S607 - docker as PATH finds it
            capture_output=True,
            text=True,
            timeout=DOCKER_TIMEOUT_SECONDS,
            check=True,
        )
    except FileNotFoundError:
        raise AddressError("no docker command: install Docker, or name an address with --host") from None
    except subprocess.TimeoutExpired:
        raise AddressError(f"docker did not answer within {DOCKER_TIMEOUT_SECONDS} s") from None
    except subprocess.CalledProcessError as exc:
        why = " ".join((exc.stderr or "").split())[:200] or f"exit status {exc.returncode}"
        raise AddressError(f"cannot inspect the Docker bridge network: {why}") from None
    bridge: dict[str, Any] = json.loads(done.stdout)
    config = (bridge.get("IPAM", {}).get("Config") or [{}])[0]
    interface = (bridge.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    gateway = config.get("Gateway") or _interface_ipv4(interface)
    subnet = config.get("Subnet")
    if subnet and ipaddress.ip_address(gateway) not in ipaddress.ip_network(subnet, strict=False):
        raise AddressError(f"the bridge gateway {gateway} is outside its subnet {subnet}")
    _check_local(gateway, "the Docker bridge gateway")
    return gateway


def _interface_ipv4(name: str) -> str:
    """IPv4 address of a local network interface (the SIOCGIFADDR ioctl)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError as exc:
            raise AddressError(f"the bridge interface {name} has no IPv4 address ({exc.strerror})") from None
    return socket.inet_ntoa(packed[20:24])


def _check_local(address: str, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            raise AddressError(
                f"{what} {address} is not an address of this machine ({exc.strerror})"
            ) from None


def listen_address(host: str) -> str:
    """The address ``--host`` names: ``auto`` is the Docker bridge gateway; otherwise an IP
    address of this machine, not the unspecified one."""
    if host == AUTO:
        return docker_bridge_address()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise AddressError(f"--host {host!r} is not an IP address (or 'auto')") from None
    if address.version != 4:
        raise AddressError(f"--host {host}: an IPv4 address, please (the servers listen on IPv4)")
    if address.is_unspecified:
        raise AddressError(
            f"--host {host} would listen on every network; name the address containers reach "
            "(e.g. the Docker bridge gateway: --host auto)"
        )
    _check_local(str(address), "--host")
    return str(address)


def env_vars(template: Template, ids: PhysicalIds, aws_endpoint: str) -> dict[str, dict[str, str]]:
    """The ``sam local invoke --env-vars`` content: each function's resolved environment, with
    ``AWS_ENDPOINT_URL`` set to ``aws_endpoint`` (the emulator as the containers reach it)."""
    common = {**COMMON_VARIABLES, "AWS_ENDPOINT_URL": aws_endpoint}
    content: dict[str, dict[str, str]] = {"Parameters": dict(common)}
    for function in template.resources_of_type("AWS::Serverless::Function"):
        variables = {**COMMON_VARIABLES, **template.function_environment(function, ids)}
        # A function-level value wins over Parameters: the template's empty one must not.
        variables["AWS_ENDPOINT_URL"] = aws_endpoint
        content[function] = variables
    return content


def shell_env(variables: Mapping[str, str], unset: tuple[str, ...] = ()) -> str:
    """``unset`` and ``export NAME=VALUE`` lines for a POSIX shell, values quoted."""
    lines = [f"unset {' '.join(unset)}\n"] if unset else []
    lines += [f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()]
    return "".join(lines)


def write_files(directory: Path, files: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``files`` (name -> JSON-able value, or text) into ``directory``; return the paths.

    Each file is written whole to a temporary name and renamed, so a reader never sees half.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, value in files.items():
        path = directory / name
        text = value if isinstance(value, str) else json.dumps(value, indent=2) + "\n"
        partial = path.with_name(f".{name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
        written[name] = path
    return written


def write_sam_env(
    stack: EmulatedStack, endpoint: str, sandbox: SandboxServer, key: str, directory: Path
) -> dict[str, Path]:
    """Write env.json, aws.env and poll-running.json for `sam local invoke` into ``directory``.

    Raises OSError when they cannot be written. The poll input names a real sandbox job
    (started here for :data:`POLL_EXAMPLE_ID`, whose job never finishes), in the shape the
    retry function hands the workflow.
    """
    started = time.time()
    job = _start_job(sandbox, key, POLL_EXAMPLE_ID)
    poll_state = {
        "download_id": POLL_EXAMPLE_ID,
        "job_id": job["id"],
        "output_url": job["output_url"],
        "attempt": 1,
        "started_at": started,
        "deadline_at": started + 24 * 3600,  # the job never ends; the deadline is a day away
        "polls": 0,
        "wait_seconds": 1,
        "status": "running",
    }
    shell = {"AWS_ENDPOINT_URL": endpoint, **FAKE_CREDENTIALS, "AWS_REGION": stack.ids.region}
    return write_files(
        directory,
        {
            ENV_FILE: env_vars(stack.template, stack.ids, endpoint),
            SHELL_FILE: shell_env(shell, unset=("AWS_PROFILE",)),
            POLL_EXAMPLE_FILE: poll_state,
        },
    )


def _start_job(sandbox: SandboxServer, key: str, download_id: str) -> dict[str, Any]:
    """Start a retry job in our own sandbox, over HTTP as a client would (no proxy)."""
    request = urllib.request.Request(  # noqa: S310 - the sandbox's own http:// URL
        f"{sandbox.base_url}/download/{quote(download_id, safe='')}",
        method="POST",
        headers={"x-access-token": key},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        data: dict[str, Any] = json.loads(answer.read())["data"]
    return data
