"""Every answer the sandbox gives, checked against VideoDB's OpenAPI spec.

If the sandbox drifts from the spec, these fail; the last tests show the checker does bite.
"""

from __future__ import annotations

import pytest
import requests
from jsonschema.exceptions import ValidationError
from openapi_core.exceptions import OpenAPIError

from videodb_retry_local.videodb_sandbox.sandbox_answers import AnswerShape

pytestmark = pytest.mark.contract


def start_retry(api, download_id: str = "dl-1") -> dict:
    """Retry ``download_id`` and return the (unchecked) answer."""
    return api("POST", f"/download/{download_id}").json()


# -- POST /download/{download_id}: retry ---------------------------------------------------


def test_retry_answers_a_processing_async_response(sandbox, api, contract):
    sandbox.add_download("dl-1")
    body = contract.check(api("POST", "/download/dl-1"))
    assert body["success"] is True and body["status"] == "processing"
    assert body["data"]["id"].startswith("job-")
    assert body["data"]["output_url"] == f"{sandbox.base_url}/async-response/{body['data']['id']}"


@pytest.mark.parametrize(
    ("behaviour", "status", "success"),
    [({"answer_done_at_once": True}, "done", True), ({"answer_failed_at_once": True}, "failed", False)],
)
def test_retry_answering_at_once_is_an_async_response(sandbox, api, contract, behaviour, status, success):
    sandbox.script("dl-1", **behaviour)
    body = contract.check(api("POST", "/download/dl-1"))
    assert (body["status"], body["success"]) == (status, success)


def test_retry_of_an_unknown_download_is_a_404_error(api, contract):
    contract.check_error(api("POST", "/download/no-such-download"), 404)


@pytest.mark.parametrize("token", [None, "sk-wrong"])
def test_every_endpoint_needs_the_key(sandbox, contract, token):
    sandbox.add_download("dl-1")
    headers = {"x-access-token": token} if token else {}
    for method, path in [
        ("POST", "/download/dl-1"),
        ("GET", "/download/dl-1"),
        ("GET", "/download"),
        ("POST", "/download"),
        ("DELETE", "/download?download_id=dl-1"),
        ("GET", "/async-response/job-1"),
    ]:
        response = requests.request(method, sandbox.base_url + path, headers=headers, timeout=5)
        contract.check_error(response, 401)
    assert sandbox.download("dl-1") is not None  # the DELETE did nothing


@pytest.mark.parametrize("status", [401, 402, 403, 404, 429, 500, 502, 503, 504])
def test_scripted_retry_statuses_carry_an_error_body(sandbox, api, contract, status):
    sandbox.script("dl-1", retry_status=status, retry_after=7)
    response = api("POST", "/download/dl-1")
    contract.check_error(response, status)
    assert ("Retry-After" in response.headers) == (status == 429)


# -- GET /async-response/{response_id} ------------------------------------------------------


@pytest.mark.parametrize("wrapped", [False, True])
@pytest.mark.parametrize(
    ("behaviour", "status"),
    [({"never_finishes": True}, "processing"), ({}, "done"), ({"fail_times": 1}, "failed")],
)
def test_async_response_answers_match_the_spec(sandbox, api, contract, behaviour, status, wrapped):
    wrap = frozenset({"poll"}) if wrapped else frozenset()
    sandbox.script("dl-1", shape=AnswerShape(wrap=wrap), **behaviour)
    response = api("GET", start_retry(api)["data"]["output_url"])
    if wrapped:
        # `{"response": {...}}` is not in the spec (the SDK reads `body.get("response") or
        # body`): what the spec describes is the inner object, so that is what is checked.
        response = contract.with_body(response, response.json()["response"])
    body = contract.check(response)
    assert body["status"] == status
    assert body["success"] is (status != "failed")
    if status == "done":
        assert body["data"]["name"] and body["data"]["download_url"]
    if status == "failed":
        assert body["message"]


def test_unknown_async_response_is_the_documented_404(api, contract):
    # The one error the spec documents for these endpoints: openapi-core validates it...
    response = api("GET", "/async-response/job-unknown")
    contract.check_error(response, 404)
    # ...and would reject a 404 body that is not an `Error`.
    with pytest.raises(OpenAPIError):
        contract.api.validate_response(*contract.openapi(contract.with_body(response, {"success": "no"})))


@pytest.mark.parametrize("status", [429, 500, 503])
def test_scripted_poll_statuses_carry_an_error_body(sandbox, api, contract, status):
    sandbox.script("dl-1", poll_status=status)
    contract.check_error(api("GET", start_retry(api)["data"]["output_url"]), status)


# -- GET /download/{download_id} ---------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [{}, {"never_finishes": True}, {"answer_done_at_once": True}])
def test_a_download_record_matches_the_record_schema(sandbox, api, contract, behaviour):
    sandbox.script("dl-1", **behaviour)
    if behaviour:
        start_retry(api)
    response = api("GET", "/download/dl-1")
    # The verbatim oneOf cannot be satisfied (see the next test), so against the verbatim
    # spec the body is checked with the record branch; the strict copy checks the whole.
    contract.check_schema(response.json(), *contract.record_schema)
    contract.strict_api.validate_response(*contract.openapi(response))
    assert response.json()["data"]["status"] in {"error", "processing", "done"}


def test_spec_oneof_for_a_download_record_is_ambiguous(sandbox, api, contract):
    """The spec's GET /download/{id} 200 schema is `oneOf: [AsyncResponse, record]`, two
    open objects with no `required`: any plain record is valid under both, so the verbatim
    oneOf rejects it. If this starts passing, the spec was fixed: check the record directly."""
    sandbox.add_download("dl-1")
    with pytest.raises(OpenAPIError, match="valid under each of"):
        contract.api.validate_response(*contract.openapi(api("GET", "/download/dl-1")))


def test_unknown_download_record_is_a_404_error(api, contract):
    contract.check_error(api("GET", "/download/nope"), 404)


# -- GET /download (list) ----------------------------------------------------------------------


def test_download_list_matches_the_spec(sandbox, api, contract):
    sandbox.add_download("old", status="done", created_at="2024-01-01T00:00:00Z")
    sandbox.add_download("new", status="error", created_at="2024-02-01T00:00:00+00:00")
    sandbox.add_download("mid", status="processing", created_at="2024-01-15T12:00:00")
    body = contract.check(api("GET", "/download", params={"page_index": 0, "count": 50}))
    assert [d["id"] for d in body["data"]["downloads"]] == ["new", "mid", "old"]
    body = contract.check(api("GET", "/download", params={"page_index": 1, "count": 2}))
    assert [d["id"] for d in body["data"]["downloads"]] == ["old"]


def test_empty_download_list_matches_the_spec(api, contract):
    assert contract.check(api("GET", "/download"))["data"]["downloads"] == []


@pytest.mark.parametrize("count", [5001, 0, "many"])
def test_a_bad_count_is_a_400_error(api, contract, count):
    contract.check_error(api("GET", "/download", params={"count": count}), 400)


def test_the_spec_itself_rejects_count_above_5000(api, contract):
    response = api("GET", "/download", params={"count": 5001})
    with pytest.raises(OpenAPIError):
        contract.api.validate_request(contract.openapi(response)[0])


# -- POST /download (create) and DELETE /download ----------------------------------------------


def test_create_answers_an_async_response_and_adds_a_record(sandbox, api, contract):
    payload = {"stream_link": "https://stream.example/v/1", "name": "a.mp4"}
    body = contract.check(api("POST", "/download", json=payload))
    assert body["status"] == "processing"
    listed = contract.check(api("GET", "/download"))["data"]["downloads"]
    assert [d["name"] for d in listed] == ["a.mp4"]
    contract.check(api("GET", body["data"]["output_url"]))


@pytest.mark.parametrize("payload", [{}, {"name": "a.mp4"}, {"stream_link": ""}])
def test_create_without_stream_link_is_a_400_error(api, contract, payload):
    contract.check_error(api("POST", "/download", json=payload), 400)


def test_delete_answers_a_success_response(sandbox, api, contract):
    sandbox.add_download("dl-1")
    body = contract.check(api("DELETE", "/download", params={"download_id": "dl-1"}))
    assert body["success"] is True and body["message"]
    contract.check_error(api("GET", "/download/dl-1"), 404)


def test_delete_errors(sandbox, api, contract):
    contract.check_error(api("DELETE", "/download"), 400)
    contract.check_error(api("DELETE", "/download", params={"download_id": "nope"}), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/downloads"),
        ("PUT", "/download/dl-1"),
        ("GET", "/download/a/b"),
        ("POST", "/async-response/job-1"),
        ("PATCH", "/download"),
    ],
)
def test_anything_else_is_a_404_error(api, contract, method, path):
    contract.check_error(api(method, path), 404)


# -- the checker bites ---------------------------------------------------------------------------


def test_checker_rejects_a_wrong_retry_body(sandbox, api, contract):
    sandbox.add_download("dl-1")
    good = api("POST", "/download/dl-1")
    contract.check(good)
    for wrong in (
        {"success": "yes", "status": "processing", "data": {"id": "job-1", "output_url": "u"}},
        {"success": True, "status": "finished", "data": {"id": "job-1", "output_url": "u"}},
        {"success": True, "status": "processing", "data": {"id": 1, "output_url": "u"}},
    ):
        with pytest.raises(OpenAPIError):
            contract.api.validate_response(*contract.openapi(contract.with_body(good, wrong)))


def test_strict_copy_notices_a_missing_field(sandbox, api, contract):
    sandbox.add_download("dl-1")
    good = api("POST", "/download/dl-1")
    missing = contract.with_body(good, {"success": True, "status": "processing", "data": {"id": "job-1"}})
    contract.api.validate_response(*contract.openapi(missing))  # the verbatim spec allows it...
    with pytest.raises(OpenAPIError):
        contract.check(missing)  # ...the strict copy does not


def test_checker_rejects_wrong_error_and_record_bodies(contract):
    error, record_schema = contract.error_schema, contract.record_schema
    with pytest.raises(ValidationError):
        contract.check_schema({"success": "false", "message": "m", "error_code": "E"}, *error)
    with pytest.raises(ValidationError):
        contract.check_schema({"success": False, "message": "m"}, *error)  # strict: no error_code
    record = {"id": "d", "name": "n", "status": "error", "download_url": "", "created_at": "yesterday"}
    with pytest.raises(ValidationError):
        contract.check_schema({"success": True, "data": record}, *record_schema)  # not a date-time
    with pytest.raises(ValidationError):
        contract.check_schema({"success": True, "data": {**record, "status": "failed"}}, *record_schema)


def test_off_spec_knobs_really_are_off_spec(sandbox, api, contract):
    # `status_spelling` deliberately leaves the spec's enum; the checker must say so.
    sandbox.script("dl-1", status_spelling={"processing": "in progress", "done": "completed"})
    response = api("POST", "/download/dl-1")
    with pytest.raises(OpenAPIError):
        contract.check(response)
    with pytest.raises(OpenAPIError):
        contract.check(api("GET", response.json()["data"]["output_url"]))


def test_the_key_used_here_is_the_sandbox_key(sandbox, key):
    # Guards the fixtures: the 401 tests mean something only if this key does work.
    assert requests.get(sandbox.base_url + "/download", headers={"x-access-token": key}, timeout=5).ok
