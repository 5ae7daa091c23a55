import pytest
import requests

from videodb_retry.client import CLIENT_HEADER, ForeignOriginError, VideoDBClient
from videodb_retry.errors import AuthError, PermanentError, TransientError
from videodb_retry.status import JobState

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
