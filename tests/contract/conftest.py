"""Contract fixtures: the VideoDB OpenAPI spec, a running sandbox and a checker for its answers.

The spec is loaded verbatim. Two things about it shape the checker:

- It declares no ``required`` anywhere, so an empty object passes every schema. The checker
  therefore validates twice: against the verbatim spec (the real contract) and against a
  *strict* copy in which every declared property is required, so a field the sandbox stops
  sending is noticed.
- Its servers are api.videodb.io; the sandbox's base URL is put first in ``servers`` so
  openapi-core matches the sandbox's URLs.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

SPEC_PATH = Path(__file__).resolve().parents[2] / "spec" / "videodb-openapi-downloads.yaml"
KEY = "sk-contract-key"


def load_spec() -> dict[str, Any]:
    """The spec file as a dict, exactly as published."""
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def strict_copy(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` in which every object schema requires all the properties it lists."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict) and "required" not in node:
                node["required"] = list(node["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    strict = copy.deepcopy(spec)
    walk(strict)
    return strict


def schema_at(spec: dict[str, Any], *keys: str | int) -> dict[str, Any]:
    """The sub-schema at ``keys`` (e.g. "components", "schemas", "Error")."""
    node: Any = spec
    for key in keys:
        node = node[key]
    return node


def with_body(response: requests.Response, body: Any) -> requests.Response:
    """A copy of ``response`` (same status, headers, request) carrying another JSON body."""
    fake = requests.Response()
    fake.status_code = response.status_code
    fake.headers.update(response.headers)
    fake._content = json.dumps(body).encode()
    fake.request = response.request
    fake.url = response.url
    return fake


ERROR_SCHEMA = ("components", "schemas", "Error")
RECORD_SCHEMA = (
    "paths",
    "/download/{download_id}",
    "get",
    "responses",
    "200",
    "content",
    "application/json",
    "schema",
    "oneOf",
    1,
)


class Contract:
    """Validates sandbox answers against the spec (verbatim and strict)."""

    def __init__(self, spec: dict[str, Any], base_url: str) -> None:
        self.spec = spec
        self.strict_spec = strict_copy(spec)
        servers = [{"url": base_url}, *spec["servers"]]
        self.api = OpenAPI.from_dict({**copy.deepcopy(spec), "servers": servers})
        self.strict_api = OpenAPI.from_dict({**copy.deepcopy(self.strict_spec), "servers": servers})

    error_schema = ERROR_SCHEMA
    record_schema = RECORD_SCHEMA
    with_body = staticmethod(with_body)

    @staticmethod
    def openapi(response: requests.Response) -> tuple[RequestsOpenAPIRequest, RequestsOpenAPIResponse]:
        """openapi-core's view of a response and the request that got it."""
        return RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response)

    def check(self, response: requests.Response, *, request_in_spec: bool = True) -> Any:
        """Validate a 200-or-documented answer with openapi-core; returns the JSON body.

        ``request_in_spec`` also validates the request the test sent, so the sandbox is
        known to be exercised the way the spec says callers call it.
        """
        assert response.headers.get("Content-Type") == "application/json"
        request, openapi_response = self.openapi(response)
        if request_in_spec:
            self.api.validate_request(request)
        self.api.validate_response(request, openapi_response)
        self.strict_api.validate_response(request, openapi_response)
        return response.json()

    def check_schema(self, body: Any, *keys: str | int) -> None:
        """Validate ``body`` against one schema of the spec (verbatim and strict)."""
        for spec in (self.spec, self.strict_spec):
            validator = OAS30Validator(schema_at(spec, *keys), format_checker=oas30_format_checker)
            validator.validate(body)

    def check_error(self, response: requests.Response, status: int) -> dict[str, Any]:
        """An error answer: the given status and an `Error` body.

        Where the spec documents the status for the operation (only the async-response 404)
        openapi-core validates it; everywhere else (other statuses, routes not in the spec)
        the spec documents no error response, so the body is checked against
        ``components/schemas/Error`` directly.
        """
        assert response.status_code == status
        assert response.headers.get("Content-Type") == "application/json"
        body = response.json()
        self.check_schema(body, *ERROR_SCHEMA)
        # Undocumented answers: the Error schema check above is the contract.
        with contextlib.suppress(ResponseNotFound, PathNotFound, OperationNotFound):
            self.check(response, request_in_spec=False)
        assert body["success"] is False
        assert body["message"] and body["error_code"]
        return body


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    return load_spec()


@pytest.fixture(scope="session")
def _running_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def sandbox(_running_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The session's sandbox, fresh for each test."""
    _running_sandbox.reset()
    yield _running_sandbox
    _running_sandbox.reset()


@pytest.fixture(scope="session")
def key() -> str:
    return KEY


@pytest.fixture(scope="session")
def contract(spec: dict[str, Any], _running_sandbox: SandboxServer) -> Contract:
    return Contract(spec, _running_sandbox.base_url)


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[Callable[..., requests.Response]]:
    """``api(method, path_or_url, **kwargs)``: a request to the sandbox with the key."""
    session = requests.Session()
    session.headers["x-access-token"] = KEY

    def call(method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else sandbox.base_url + path_or_url
        return session.request(method, url, timeout=5, **kwargs)

    yield call
    session.close()
