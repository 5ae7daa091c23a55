"""What serve mode writes for `sam local invoke`, and where it may listen (sam_local)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videodb_retry_local import sam_local
from videodb_retry_local.template import Physical, PhysicalIds, Template


def _bindable(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
        return True


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(v=4))
def test_an_address_is_accepted_only_if_this_machine_can_listen_on_it(
    address: ipaddress.IPv4Address,
) -> None:
    text = str(address)
    if address.is_unspecified or not _bindable(text):
        with pytest.raises(sam_local.AddressError):
            sam_local.listen_address(text)
    else:
        assert sam_local.listen_address(text) == text


@given(st.sampled_from(["0.0.0.0", "::", "::1", "0:0::0", "localhost", "", " 127.0.0.1", "127.1", "auto "]))
def test_unspecified_ipv6_and_names_are_refused(host: str) -> None:
    with pytest.raises(sam_local.AddressError):
        sam_local.listen_address(host)


def test_loopback_addresses_are_accepted() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "127.255.255.254"):
        assert sam_local.listen_address(host) == host


@pytest.mark.parametrize("sweeper", ["false", "true"])
def test_env_vars_give_every_function_its_whole_environment_and_the_endpoint(sweeper: str) -> None:
    template = Template.load(
        overrides={"SweeperEnabled": sweeper, "VideoDBApiBaseUrl": "http://172.17.0.1:1"}
    )
    ids = PhysicalIds(stack_name="s", region="us-east-1")
    for logical_id in template.resources():
        attributes = {name: f"{name}-{logical_id}" for name in ("Arn", "Name", "QueueName", "Id")}
        ids.resources[logical_id] = Physical(f"ref-{logical_id}", attributes)
    endpoint = "http://172.17.0.1:5000"
    content = sam_local.env_vars(template, ids, endpoint)
    functions = set(template.resources_of_type("AWS::Serverless::Function"))
    assert ("SweeperFunction" in functions) is (sweeper == "true")
    assert set(content) == {"Parameters", *functions}
    assert content["Parameters"]["AWS_ENDPOINT_URL"] == endpoint
    for function in functions:
        expected = template.function_environment(function, ids)
        variables = content[function]
        assert {k: v for k, v in variables.items() if k in expected and k != "AWS_ENDPOINT_URL"} == {
            k: v for k, v in expected.items() if k != "AWS_ENDPOINT_URL"
        }
        assert set(expected) <= set(variables)
        # The template declares it empty (ignored in AWS); a function-level "" would win here.
        assert variables["AWS_ENDPOINT_URL"] == endpoint


_SHELL_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True), _SHELL_TEXT, max_size=4))
def test_shell_env_gives_back_each_value_exactly(variables: dict[str, str]) -> None:
    script = sam_local.shell_env(variables, unset=("AWS_PROFILE",))
    shown = "".join(f'printf "%s\\0" "${{{name}}}"\n' for name in variables)
    done = subprocess.run(
        ["bash", "-c", script + 'printf "%s\\0" "${AWS_PROFILE-unset}"\n' + shown],
        capture_output=True,
        timeout=10,
        env={"PATH": "/usr/bin:/bin", "AWS_PROFILE": "mine"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split("\0")[:-1] == ["unset", *variables.values()]
