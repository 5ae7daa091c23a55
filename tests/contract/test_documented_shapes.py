"""Every documented answer shape (sandbox_answers.SHAPES), each answer checked against the spec.

A shape the spec allows must validate as it is; a shape the spec does not allow (a `response`
wrapper, a status outside the enums) must be rejected as it is and validate once that one
difference is undone, so nothing else about it drifts from the spec.
"""

from __future__ import annotations

import pytest
from jsonschema.exceptions import ValidationError
from openapi_core.exceptions import OpenAPIError
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from videodb_retry_local.videodb_sandbox.sandbox_answers import SHAPES, DocumentedShape

from .conftest import schema_at

pytestmark = pytest.mark.contract

ASYNC_SCHEMA = ("components", "schemas", "AsyncResponse")
# (how the download is scripted, the answers looked at)
SCENARIOS = {
    "processing": ({"never_finishes": True}, ("retry", "poll", "get")),
    "done": ({}, ("poll", "get")),
    "failed": ({"fail_times": 1}, ("poll", "get")),
    "done_at_once": ({"answer_done_at_once": True}, ("retry", "get")),
    "failed_at_once": ({"answer_failed_at_once": True}, ("retry", "get")),
}


def answers(sandbox, api, documented: DocumentedShape, behaviour: dict, kinds) -> dict:
    sandbox.script("dl-1", shape=documented.shape, status_spelling=dict(documented.spelling), **behaviour)
    got = {"retry": api("POST", "/download/dl-1")}
    assert got["retry"].status_code == 200
    body = got["retry"].json()
    inner = body.get("response", body)
    output_url = inner["data"].get("output_url")
    if "poll" in kinds and output_url:  # a record-form answer has no job URL to poll
        got["poll"] = api("GET", output_url)
    got["get"] = api("GET", "/download/dl-1")
    return {kind: got[kind] for kind in kinds if kind in got}


def undo(body: dict, documented: DocumentedShape) -> dict:
    """``body`` with the shape's off-spec difference taken back out."""
    body = body.get("response", body) if "response" in body else body
    back = {spelled: word for word, spelled in documented.spelling.items()}
    back |= {"Failed": "failed"}  # a spelled `failed` job reads as the record's `error`
    if isinstance(body.get("status"), str):
        body = {**body, "status": back.get(body["status"], body["status"])}
    data = body.get("data")
    if isinstance(data, dict) and isinstance(data.get("status"), str) and data["status"] in back:
        word = back[data["status"]]
        body = {**body, "data": {**data, "status": {"failed": "error"}.get(word, word)}}
    return body


def validate(contract, kind: str, response, body: dict, strict: bool = False) -> None:
    """The spec's schema for one kind of answer, verbatim (or the strict copy's)."""
    if kind == "get":
        # The verbatim oneOf cannot decide between two open objects (see
        # test_spec_oneof_for_a_download_record_is_ambiguous): each form meets its own branch.
        keys = ASYNC_SCHEMA if "status" in body else contract.record_schema
        spec = contract.strict_spec if strict else contract.spec
        OAS30Validator(schema_at(spec, *keys), format_checker=oas30_format_checker).validate(body)
        return
    api = contract.strict_api if strict else contract.api
    api.validate_response(*contract.openapi(contract.with_body(response, body)))


def rejected_by_spec(contract, kind: str, response, body: dict) -> bool:
    """True when the verbatim spec, or its strict copy, rejects ``body``."""
    try:
        validate(contract, kind, response, body)
        validate(contract, kind, response, body, strict=True)
    except (OpenAPIError, ValidationError):
        return True
    return False


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_documented_shape_against_the_spec(sandbox, api, contract, name, scenario):
    documented = SHAPES[name]
    behaviour, kinds = SCENARIOS[scenario]
    got = answers(sandbox, api, documented, behaviour, kinds)
    rejected = []
    for kind, response in got.items():
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
        body = response.json()
        if documented.in_spec:
            validate(contract, kind, response, body)
        elif rejected_by_spec(contract, kind, response, body):
            rejected.append(kind)
        validate(contract, kind, response, undo(body, documented))
    if not documented.in_spec:
        # The off-spec difference shows in exactly the answers it applies to (a `response`
        # wrapper passes the verbatim spec, which requires nothing; the strict copy notices).
        touched = {k for k in got if _differs(got[k].json(), documented)}
        assert set(rejected) == touched


def _differs(body: dict, documented: DocumentedShape) -> bool:
    return undo(body, documented) != body


def test_a_retry_of_a_download_not_in_error_is_an_error_body(sandbox, api, contract):
    sandbox.add_download("dl-1", status="done")
    contract.check_error(api("POST", "/download/dl-1"), 400)


def test_every_shape_names_its_source():
    for name, documented in SHAPES.items():
        assert documented.source.split(":")[0] in {"spec", "docs", "SDK", "API-NOTES", "assumption"}, name
