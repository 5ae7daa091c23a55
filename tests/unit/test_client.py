import contextlib
import email.utils
import time
from datetime import UTC, datetime

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url
from videodb_retry.adapters.videodb_client import (
    CLIENT_HEADER,
    ForeignOriginError,
    VideoDBClient,
    _retry_after,
)
from videodb_retry.errors import AuthError, PermanentError, TransientError
from videodb_retry.rules.redelivery_policy import MAX_VISIBILITY_SECONDS
from videodb_retry.rules.status import JobState

from tests.origin_variants import foreign_prefixes, recording_server, url_paths, url_soup

from .conftest import Answer, FakeKey

PROCESSING = {"success": True, "status": "processing", "data": {"id": "job-1", "output_url": None}}


def processing(base_url):
    body = {**PROCESSING, "data": {"id": "job-1", "output_url": f"{base_url}/async-response/job-1"}}
    return Answer(200, body)


def test_retry_posts_with_key_and_client_header(http_server, settings_for):
    http_server.answers.append(processing(http_server.base_url))
    status = VideoDBClient(settings_for(), FakeKey("sk-one")).retry_download("download-1")
    assert status.state is JobState.RUNNING and status.job_id == "job-1"
    request = http_server.seen[0]
    assert request["method"] == "POST" and request["path"] == "/download/download-1"
    assert request["headers"]["x-access-token"] == "sk-one"
    assert request["headers"][CLIENT_HEADER].startswith("videodb-retry/")


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_permanent_statuses(http_server, settings_for, status):
    http_server.answers.append(Answer(status, {"success": False, "message": "no such download"}))
    with pytest.raises(PermanentError) as caught:
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert caught.value.status_code == status
    assert "no such download" in str(caught.value)


@pytest.mark.parametrize("status", [402, 429, 500, 502, 503, 504])
def test_transient_statuses(http_server, settings_for, status):
    http_server.answers.append(Answer(status, {"message": "busy"}, headers={"Retry-After": "7"}))
    with pytest.raises(TransientError) as caught:
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert caught.value.status_code == status
    assert caught.value.retry_after == 7


def test_401_rereads_the_key_once_then_succeeds(http_server, settings_for):
    key = FakeKey("sk-old", "sk-new")
    http_server.answers += [Answer(401, {"message": "bad key"}), processing(http_server.base_url)]
    VideoDBClient(settings_for(), key).retry_download("download-1")
    assert key.refreshes == 1
    assert [r["headers"]["x-access-token"] for r in http_server.seen] == ["sk-old", "sk-new"]


def test_second_401_is_an_auth_error(http_server, settings_for):
    key = FakeKey("sk-old", "sk-new")
    http_server.answers += [Answer(401, {}), Answer(401, {})]
    with pytest.raises(AuthError):
        VideoDBClient(settings_for(), key).retry_download("download-1")
    assert key.refreshes == 1 and len(http_server.seen) == 2


def test_non_json_200_is_transient(http_server, settings_for):
    http_server.answers.append(Answer(200, raw=b"<html>oops</html>"))
    with pytest.raises(TransientError, match="not JSON"):
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")


def test_an_undocumented_status_is_terminal_and_not_a_success_without_a_url(http_server, settings_for):
    # The SDK's rule (only processing / in progress keep polling), see status.DECISIONS.
    http_server.answers.append(Answer(200, {"success": True, "status": "teleporting"}))
    status = VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert status.state is JobState.FAILED and "'teleporting'" in status.error


def test_a_retry_answer_about_another_download_is_a_failed_attempt(http_server, settings_for):
    body = {**processing(http_server.base_url).body, "download_id": "download-9"}
    http_server.answers.append(Answer(200, body))
    status = VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert status.state is JobState.FAILED and status.output_url is None
    assert "'download-9', not 'download-1'" in status.error


@pytest.mark.parametrize(
    "body",
    [
        {"success": False, "message": "gone", "error_code": "NOT_FOUND"},
        {"success": False, "data": {"error": "gone"}},
        {"response": {"success": False, "message": "gone"}},
    ],
)
def test_error_text_of_an_http_error_wherever_videodb_put_it(http_server, settings_for, body):
    http_server.answers.append(Answer(400, body))
    with pytest.raises(PermanentError, match="answered 400: gone"):
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")


def test_redirect_is_not_followed(http_server, settings_for):
    http_server.answers.append(Answer(302, {}, headers={"Location": "http://127.0.0.2:9/steal"}))
    with pytest.raises(PermanentError, match="redirect"):
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert len(http_server.seen) == 1


def test_foreign_output_url_is_never_requested(http_server, settings_for):
    client = VideoDBClient(settings_for(), FakeKey("k"))
    other_port = http_server.base_url.replace("127.0.0.1", "localhost")
    for url in (
        "https://api.videodb.io/async-response/job-1",
        other_port + "/async-response/job-1",
        http_server.base_url.replace("http://", "https://") + "/x",
        "ftp://127.0.0.1/x",
        "not a url",
    ):
        with pytest.raises(ForeignOriginError):
            client.get_job(url)
    assert http_server.seen == []


def test_read_timeout_is_transient(http_server, settings_for):
    class Slow(requests.Session):
        def request(self, *args, **kwargs):
            raise requests.ReadTimeout("slow")

    client = VideoDBClient(settings_for(), FakeKey("k"), session=Slow())
    with pytest.raises(TransientError, match="timed out"):
        client.retry_download("download-1")


def test_connection_refused_is_transient(settings_for):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = VideoDBClient(settings_for(api_base_url=f"http://127.0.0.1:{port}"), FakeKey("k"))
    with pytest.raises(TransientError, match="could not connect"):
        client.retry_download("download-1")


def test_errors_never_carry_the_key(http_server, settings_for):
    http_server.answers.append(Answer(500, {"message": "boom"}))
    with pytest.raises(TransientError) as caught:
        VideoDBClient(settings_for(), FakeKey("sk-secret-value")).retry_download("download-1")
    assert "sk-secret-value" not in repr(caught.value) + str(caught.value)


def test_list_downloads(http_server, settings_for):
    http_server.answers.append(
        Answer(200, {"success": True, "data": {"downloads": [{"id": "download-1", "status": "error"}]}})
    )
    downloads = VideoDBClient(settings_for(), FakeKey("k")).list_downloads(page_index=2, count=50)
    assert downloads == [{"id": "download-1", "status": "error"}]
    assert http_server.seen[0]["path"] == "/download?page_index=2&count=50"


def test_a_key_echoed_in_an_error_message_is_redacted(http_server, settings_for):
    http_server.answers.append(Answer(403, {"success": False, "message": "key sk-echoed-key is not allowed"}))
    with pytest.raises(PermanentError) as caught:
        VideoDBClient(settings_for(), FakeKey("sk-echoed-key")).retry_download("download-1")
    assert "sk-echoed-key" not in str(caught.value)
    assert "[redacted]" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        {"success": False, "status": "failed", "message": "key sk-echoed-key is not allowed"},
        {"success": True, "status": "done", "data": {"id": "j", "note": ["sk-echoed-key"]}},
        {"success": True, "status": "failed", "data": {"error": "sk-echoed-key expired"}},
    ],
)
def test_a_key_echoed_in_a_2xx_answer_is_redacted_before_anything_reads_it(http_server, settings_for, body):
    # A 200 answer's text reaches the outcome event (its error, its result) and the logs.
    http_server.answers.append(Answer(200, body))
    client = VideoDBClient(settings_for(), FakeKey("sk-echoed-key"))
    status = client.get_job(f"{http_server.base_url}/async-response/j", "download-1")
    assert "sk-echoed-key" not in repr(status)


# --- The key never leaves the API origin (issue 9) ---------------------------------------


@pytest.fixture
def recorder():
    with recording_server() as server:
        yield server


def _api_authority(base_url: str) -> str:
    return base_url.split("://", 1)[1]


def test_backslash_before_at_is_refused_and_the_other_host_hears_nothing(http_server, settings_for, recorder):
    # urlsplit reads the host after the '@' (the API), urllib3 the one before it (the recorder).
    url = f"http://{recorder.authority}\\@{_api_authority(http_server.base_url)}/async-response/job-1"
    client = VideoDBClient(settings_for(), FakeKey("sk-k"))
    assert not client.is_on_api_origin(url)
    with pytest.raises(ForeignOriginError, match="backslash"):
        client.get_job(url)
    assert recorder.seen == [] and http_server.seen == []


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_url_variant_reaches_another_host(http_server, settings_for, recorder, data):
    api = _api_authority(http_server.base_url)
    url = data.draw(
        st.one_of(
            st.builds(str.__add__, foreign_prefixes(api, recorder.port), url_paths()),
            url_soup(api, recorder.port),
            st.builds(str.__add__, st.just(http_server.base_url), url_paths()),
        )
    )
    http_server.answers.append(Answer(200, PROCESSING))
    client = VideoDBClient(settings_for(), FakeKey("sk-k"))
    accepted = client.is_on_api_origin(url)
    with contextlib.suppress(ForeignOriginError, PermanentError, TransientError):
        client.get_job(url)
    assert recorder.seen == []
    if accepted:
        sent = parse_url(client.followable_url(url))
        assert (sent.scheme, sent.auth, sent.host, sent.port) == (
            "http",
            None,
            "127.0.0.1",
            int(http_server.base_url.rsplit(":", 1)[1]),
        )
        assert len(http_server.seen) == 1
    else:
        assert http_server.seen == []
    http_server.seen.clear()
    http_server.answers.clear()


@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_foreign_prefixes_are_all_refused(http_server, settings_for, recorder, data):
    url = data.draw(
        st.builds(
            str.__add__, foreign_prefixes(_api_authority(http_server.base_url), recorder.port), url_paths()
        )
    )
    assert not VideoDBClient(settings_for(), FakeKey("k")).is_on_api_origin(url)


@pytest.mark.parametrize(
    "suffix, sent_suffix",
    [
        ("/async-response/job-1", "/async-response/job-1"),
        ("/async-response/job-1?x=1#frag", "/async-response/job-1?x=1"),
        ("/a/../async-response/job-1", "/async-response/job-1"),
        ("/async-response/u@example.com", "/async-response/u@example.com"),
        ("", "/"),
    ],
)
def test_the_url_sent_is_the_origin_plus_the_path_and_query(http_server, settings_for, suffix, sent_suffix):
    client = VideoDBClient(settings_for(), FakeKey("k"))
    for given_url in (
        http_server.base_url + suffix,
        http_server.base_url.upper().replace("HTTP://", "http://") + suffix,
    ):
        assert client.followable_url(given_url) == http_server.base_url + sent_suffix


def test_default_and_explicit_ports_are_the_same_origin(settings_for):
    client = VideoDBClient(settings_for(api_base_url="https://api.videodb.io"), FakeKey("k"))
    assert client.followable_url("https://api.videodb.io:443/x") == "https://api.videodb.io/x"
    assert client.followable_url("HTTPS://API.VIDEODB.IO/x") == "https://api.videodb.io/x"
    for url in (
        "http://api.videodb.io/x",
        "https://api.videodb.io:80/x",
        "https://api.videodb.io./x",
        "https://xn--pi-5ia.videodb.io/x",
        "https://\u0430pi.videodb.io/x",
        "https://api.videodb.io\\@x/y",
    ):
        assert not client.is_on_api_origin(url), url


def test_too_long_output_url_is_refused(http_server, settings_for):
    client = VideoDBClient(settings_for(), FakeKey("k"))
    assert client.is_on_api_origin(http_server.base_url + "/" + "a" * 2000)
    assert not client.is_on_api_origin(http_server.base_url + "/" + "a" * 2100)


def test_202_with_an_async_response_is_a_job_to_follow(http_server, settings_for):
    body = {
        **PROCESSING,
        "data": {"id": "job-1", "output_url": f"{http_server.base_url}/async-response/job-1"},
    }
    http_server.answers.append(Answer(202, body))
    status = VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert status.state is JobState.RUNNING and status.job_id == "job-1"


@pytest.mark.parametrize("status", [201, 202, 204])
def test_a_2xx_without_json_is_transient_like_an_unreadable_200(http_server, settings_for, status):
    http_server.answers.append(Answer(status, raw=b""))
    with pytest.raises(TransientError, match=f"answered {status}"):
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_permanent_and_not_followed(http_server, settings_for, recorder, status):
    location = f"http://{recorder.authority}/steal"
    http_server.answers.append(Answer(status, {}, headers={"Location": location}))
    with pytest.raises(PermanentError, match="redirect") as caught:
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert caught.value.status_code == status and recorder.seen == []


# --- Retry-After: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3) ------------------

NOW = 1_790_000_000.0  # a fixed clock for the date form


def _with_retry_after(value: str) -> requests.Response:
    response = requests.Response()
    response.status_code = 503
    response.headers["Retry-After"] = value
    return response


@given(st.integers(min_value=0, max_value=MAX_VISIBILITY_SECONDS))
def test_retry_after_delta_seconds(seconds):
    assert _retry_after(_with_retry_after(str(seconds)), now=NOW) == seconds


@given(
    st.integers(min_value=-10 * 365 * 86400, max_value=10 * 365 * 86400),
    st.sampled_from(["imf", "rfc850", "asctime"]),
)
def test_retry_after_http_date_in_every_form_rfc_9110_allows(offset, form):
    when = datetime.fromtimestamp(NOW + offset, UTC)
    text = {
        "imf": email.utils.format_datetime(when, usegmt=True),
        "rfc850": when.strftime("%A, %d-%b-%y %H:%M:%S GMT"),
        "asctime": when.strftime("%a %b ") + f"{when.day:2d}" + when.strftime(" %H:%M:%S %Y"),
    }[form]
    expected = max(0, min(offset, MAX_VISIBILITY_SECONDS))  # the past: no extra wait
    assert _retry_after(_with_retry_after(text), now=NOW) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("\u00b2", None),  # a latin-1 digit that str.isdigit() accepts and int() refuses
        ("9" * 5000, MAX_VISIBILITY_SECONDS),  # beyond int()'s 4,300-digit limit
        (" 7 ", 7),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_VISIBILITY_SECONDS),
        ("Mon, 99 Foo 2026 99:99:99 GMT", None),
    ],
)
def test_retry_after_oddities(value, expected):
    assert _retry_after(_with_retry_after(value), now=NOW) == expected


def test_a_retry_after_date_reaches_the_transient_error(http_server, settings_for):
    when = email.utils.format_datetime(datetime.fromtimestamp(time.time() + 120, UTC), usegmt=True)
    http_server.answers.append(Answer(503, {"message": "busy"}, headers={"Retry-After": when}))
    with pytest.raises(TransientError) as caught:
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert caught.value.retry_after is not None and 115 <= caught.value.retry_after <= 121


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000, "Mon, 99 Foo 2026 99:99:99 GMT"])
def test_an_unreadable_retry_after_never_breaks_the_transient_error(http_server, settings_for, value):
    # "²" passes str.isdigit() and int() refuses it; 5,000 digits exceed int()'s limit.
    http_server.answers.append(Answer(503, {"message": "busy"}, headers={"Retry-After": value}))
    with pytest.raises(TransientError) as caught:
        VideoDBClient(settings_for(), FakeKey("k")).retry_download("download-1")
    assert caught.value.status_code == 503
    assert caught.value.retry_after in (None, MAX_VISIBILITY_SECONDS)
