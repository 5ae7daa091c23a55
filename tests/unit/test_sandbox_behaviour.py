"""The sandbox's scripting does what it says, over real HTTP on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from videodb_retry_local.videodb_sandbox.sandbox import (
    DEFAULT_API_KEY,
    MAX_DELAY_SECONDS,
    SandboxServer,
    Script,
)
from videodb_retry_local.videodb_sandbox.sandbox_answers import AnswerShape

KEY = "sk-behaviour-key"
REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock):
    with SandboxServer(api_key=KEY, clock=clock) as server:
        yield server


@pytest.fixture
def api(sandbox: SandboxServer):
    """``api(method, path_or_url, **kwargs)`` with the key; returns the requests.Response."""
    session = requests.Session()
    session.headers["x-access-token"] = KEY

    def call(method: str, path_or_url: str, **kwargs) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else sandbox.base_url + path_or_url
        return session.request(method, url, timeout=kwargs.pop("timeout", 5), **kwargs)

    yield call
    session.close()


def retry(api, download_id: str = "dl-1") -> requests.Response:
    return api("POST", f"/download/{download_id}")


def poll(api, answer: requests.Response) -> requests.Response:
    return api("GET", answer.json()["data"]["output_url"])


def record(api, download_id: str = "dl-1") -> dict:
    return api("GET", f"/download/{download_id}").json()["data"]


# -- keys, recording, lifecycle ------------------------------------------------------------


def test_every_request_needs_the_current_key(sandbox, api):
    sandbox.add_download("dl-1")
    url = sandbox.base_url + "/download/dl-1"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"x-access-token": "sk-wrong"}, timeout=5).status_code == 401
    assert api("GET", "/download/dl-1").status_code == 200

    sandbox.rotate_key("sk-rotated")
    assert api("GET", "/download/dl-1").status_code == 401
    assert requests.get(url, headers={"x-access-token": "sk-rotated"}, timeout=5).status_code == 200

    sandbox.reset()  # back to the first key
    assert api("GET", "/download").status_code == 200


def test_requests_are_recorded_and_retry_calls_filtered(sandbox, api, clock):
    sandbox.add_download("dl-1")
    sandbox.add_download("dl 2")
    retry(api, "dl-1")
    clock.advance(5)
    retry(api, "dl%202")
    api("GET", "/download", params={"page_index": 1, "count": 2})

    seen = sandbox.requests
    assert [(r.method, r.path) for r in seen] == [
        ("POST", "/download/dl-1"),
        ("POST", "/download/dl%202"),
        ("GET", "/download"),
    ]
    assert seen[0].headers["x-access-token"] == KEY
    assert [r.time for r in seen] == [1000.0, 1005.0, 1005.0]
    assert seen[2].query == {"page_index": "1", "count": "2"}
    assert len(sandbox.retry_calls()) == 2
    assert [r.path for r in sandbox.retry_calls("dl 2")] == ["/download/dl%202"]
    assert KEY not in repr(seen)  # a failing assert prints reprs: the key stays out


def test_the_sandbox_is_quiet_and_never_prints_the_key(sandbox, api, capfd):
    sandbox.script("dl-1", retry_status=500)
    retry(api)
    api("GET", "/nowhere")
    requests.get(sandbox.base_url + "/download", headers={"x-access-token": "sk-bad"}, timeout=5)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_lifecycle_and_loopback_default():
    server = SandboxServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url.startswith("http://127.0.0.1:")
        url = server.base_url + "/download"
        assert requests.get(url, headers={"x-access-token": DEFAULT_API_KEY}, timeout=5).ok
        with pytest.raises(RuntimeError):
            server.start()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, headers={"x-access-token": DEFAULT_API_KEY}, timeout=2)
    server.stop()  # a second stop is harmless


def test_script_accepts_a_script_or_keywords(sandbox, api):
    assert sandbox.script("a", Script(fail_times=1)) == Script(fail_times=1)
    assert sandbox.script("b", fail_times=1) == Script(fail_times=1)
    with pytest.raises(TypeError):
        sandbox.script("c", Script(), fail_times=1)
    with pytest.raises(ValueError):
        Script(fail_times=-1)
    with pytest.raises(ValueError):
        Script(retry_status=42)
    with pytest.raises(ValueError):
        sandbox.add_download("d", status="failed")
    # Scripting creates the record, in error.
    assert record(api, "a")["status"] == "error"
    assert sandbox.download("b")["status"] == "error"
    assert sandbox.download("never-added") is None


# -- the retry lifecycle -------------------------------------------------------------------


def test_a_normal_retry_is_processing_then_done(sandbox, api):
    sandbox.add_download("dl-1", name="talk.mp4")
    answer = retry(api)
    assert answer.json()["status"] == "processing"
    body = poll(api, answer).json()
    assert body == {
        "success": True,
        "status": "done",
        "data": {"id": "dl-1", "name": "talk.mp4", "download_url": body["data"]["download_url"]},
    }
    assert body["data"]["download_url"].startswith("https://files.sandbox.invalid/dl-1/")
    assert record(api)["status"] == "done"
    assert record(api)["download_url"] == body["data"]["download_url"]


def test_processing_seconds_follow_the_injected_clock(sandbox, api, clock):
    sandbox.script("dl-1", processing_seconds=30)
    answer = retry(api)
    assert record(api)["status"] == "processing"
    clock.advance(29.9)
    assert poll(api, answer).json()["status"] == "processing"
    assert record(api) | {"created_at": None} == {
        "id": "dl-1",
        "name": "dl-1.mp4",
        "status": "processing",
        "download_url": "",
        "created_at": None,
    }
    clock.advance(0.1)
    assert poll(api, answer).json()["status"] == "done"
    assert record(api)["status"] == "done"


def test_never_finishes_stays_processing(sandbox, api, clock):
    sandbox.script("dl-1", never_finishes=True)
    answer = retry(api)
    clock.advance(1e9)
    assert poll(api, answer).json()["status"] == "processing"
    assert record(api)["status"] == "processing"


def test_fail_times_then_success(sandbox, api):
    sandbox.script("dl-1", fail_times=2, failure_message="source gone")
    for _ in range(2):
        body = poll(api, retry(api)).json()
        assert (body["success"], body["status"], body["message"]) == (False, "failed", "source gone")
        assert record(api)["status"] == "error"
    assert poll(api, retry(api)).json()["status"] == "done"
    assert record(api)["status"] == "done"


def test_rescripting_restarts_the_counters(sandbox, api):
    sandbox.script("dl-1", fail_times=1)
    assert poll(api, retry(api)).json()["status"] == "failed"
    sandbox.script("dl-1", fail_times=1)
    assert poll(api, retry(api)).json()["status"] == "failed"


def test_an_old_job_ending_late_does_not_overwrite_a_newer_one(sandbox, api, clock):
    sandbox.script("dl-1", processing_seconds=10, fail_times=1, not_failed_retry_status=None)
    first = retry(api)
    clock.advance(5)
    retry(api)  # the second job succeeds, 5 s later than the first fails
    clock.advance(5)
    assert poll(api, first).json()["status"] == "failed"
    assert record(api)["status"] == "processing"
    clock.advance(5)
    assert record(api)["status"] == "done"


def test_answer_done_at_once(sandbox, api):
    sandbox.script("dl-1", answer_done_at_once=True, fail_times=1)
    first = retry(api).json()
    assert (first["success"], first["status"]) == (False, "failed")
    body = retry(api).json()
    assert body["status"] == "done"
    assert body["data"]["id"].startswith("job-")
    assert body["data"]["name"] == "dl-1.mp4" and body["data"]["download_url"]
    assert record(api)["status"] == "done"


def test_answer_failed_at_once(sandbox, api):
    sandbox.script("dl-1", answer_failed_at_once=True, failure_message="nope")
    for _ in range(2):
        body = retry(api).json()
        assert (body["success"], body["status"], body["message"]) == (False, "failed", "nope")
    assert record(api)["status"] == "error"


# -- scripted HTTP statuses --------------------------------------------------------------------


def test_retry_status_for_a_number_of_times(sandbox, api):
    sandbox.script("dl-1", retry_status=503, retry_status_times=2)
    assert [retry(api).status_code for _ in range(3)] == [503, 503, 200]
    assert record(api)["status"] in {"processing", "done"}  # only the third made a job


def test_retry_status_without_times_is_forever(sandbox, api):
    sandbox.script("dl-1", retry_status=404)
    answers = [retry(api) for _ in range(4)]
    assert {a.status_code for a in answers} == {404}
    assert answers[0].json()["error_code"] == "NOT_FOUND"
    assert record(api)["status"] == "error"


@pytest.mark.parametrize("status", [401, 402, 403, 500, 502, 504])
def test_retry_status_answers_that_status_even_with_the_right_key(sandbox, api, status):
    sandbox.script("dl-1", retry_status=status)
    answer = retry(api)
    assert answer.status_code == status
    assert answer.json()["success"] is False


def test_retry_after_is_sent_on_429_only(sandbox, api):
    sandbox.script("dl-1", retry_status=429, retry_after=7)
    answer = retry(api)
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "7")
    assert answer.json()["error_code"] == "RATE_LIMITED"
    sandbox.script("dl-1", retry_status=503, retry_after=7)
    assert "Retry-After" not in retry(api).headers
    sandbox.script("dl-1", retry_status=429)
    assert "Retry-After" not in retry(api).headers


def test_poll_status_for_a_number_of_times(sandbox, api):
    sandbox.script("dl-1", poll_status=500, poll_status_times=1)
    answer = retry(api)
    assert answer.status_code == 200  # poll_status leaves the retry alone
    assert [poll(api, answer).status_code for _ in range(2)] == [500, 200]


def test_unknown_ids_are_404(sandbox, api):
    assert retry(api, "nope").status_code == 404
    assert api("GET", "/download/nope").status_code == 404
    assert api("GET", "/async-response/job-nope").status_code == 404
    answer = api("GET", "/no/such/route")
    assert (answer.status_code, answer.headers["Content-Type"]) == (404, "application/json")
    head = api("HEAD", "/download")
    assert (head.status_code, head.content) == (404, b"")


# -- odd answers ------------------------------------------------------------------------------


def test_wrapping_the_poll_wraps_only_the_async_response(sandbox, api):
    sandbox.script("dl-1", shape=AnswerShape(wrap=frozenset({"poll"})), fail_times=1)
    answer = retry(api)
    assert answer.json()["status"] == "processing"  # the retry POST is not wrapped
    body = poll(api, answer).json()
    assert list(body) == ["response"]
    assert (body["response"]["success"], body["response"]["status"]) == (False, "failed")
    assert poll(api, retry(api)).json()["response"]["status"] == "done"


def test_status_spelling_renames_async_statuses_only(sandbox, api):
    sandbox.script("dl-1", status_spelling={"processing": "in progress", "done": "completed"})
    answer = retry(api)
    assert answer.json()["status"] == "in progress"
    assert poll(api, answer).json()["status"] == "completed"
    assert record(api)["status"] == "done"  # records keep the spec's words


def test_malformed_json_then_json(sandbox, api):
    sandbox.script("dl-1", malformed_json_times=2)
    for _ in range(2):
        answer = retry(api)
        assert answer.status_code == 200
        with pytest.raises(ValueError):
            answer.json()
    assert record(api)["status"] == "error"  # no job was made
    assert retry(api).json()["status"] == "processing"
    assert len(sandbox.retry_calls("dl-1")) == 3


def test_output_origin_points_elsewhere(sandbox, api):
    sandbox.script("dl-1", output_origin="http://127.0.0.2:9/")
    output_url = retry(api).json()["data"]["output_url"]
    assert output_url.startswith("http://127.0.0.2:9/async-response/job-")
    # The job exists in the sandbox all the same; only the URL is foreign.
    path = output_url.removeprefix("http://127.0.0.2:9")
    assert api("GET", path).json()["status"] == "done"


# -- timing ------------------------------------------------------------------------------------


def test_a_slow_id_does_not_hold_up_the_others(sandbox, api):
    sandbox.script("slow", delay_seconds=0.5)
    sandbox.add_download("fast")
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        slow = pool.submit(retry, api, "slow")
        time.sleep(0.05)  # the slow request is in the sandbox first
        assert retry(api, "fast").status_code == 200
        fast_took = time.monotonic() - started
        answer = slow.result()
        slow_took = time.monotonic() - started
    assert fast_took < 0.4 <= 0.5 <= slow_took
    assert answer.status_code == 200
    # Polls about the slow id are slow too.
    started = time.monotonic()
    poll(api, answer)
    assert time.monotonic() - started >= 0.5


def test_delays_are_capped_and_stop_cuts_them_short(clock):
    server = SandboxServer(api_key=KEY, clock=clock).start()
    server.script("dl-1", delay_seconds=10_000)
    assert server._delay_for("POST", "/download/dl-1", {}) == MAX_DELAY_SECONDS
    errors: list[Exception] = []

    def call() -> None:
        try:
            requests.post(server.base_url + "/download/dl-1", headers={"x-access-token": KEY}, timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.1)
    started = time.monotonic()
    server.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 2
    assert not caller.is_alive()
    assert len(errors) == 1  # hung up on, not answered


def test_global_latency_applies_to_every_request(clock):
    with SandboxServer(api_key=KEY, clock=clock, latency_seconds=0.2) as server:
        started = time.monotonic()
        answer = requests.get(server.base_url + "/download", headers={"x-access-token": KEY}, timeout=5)
        assert answer.ok
        assert time.monotonic() - started >= 0.2


def test_parallel_retries_are_counted_exactly(sandbox, api):
    sandbox.script("dl-1", fail_times=5, not_failed_retry_status=None)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: retry(api).json(), range(20)))
    jobs = {a["data"]["id"] for a in answers}
    assert len(jobs) == 20
    statuses = [api("GET", f"/async-response/{job}").json()["status"] for job in jobs]
    assert sorted(statuses) == ["done"] * 15 + ["failed"] * 5


# -- listing, creating, deleting ---------------------------------------------------------------


def test_listing_pages_newest_first(sandbox, api):
    for day in (3, 1, 7, 5, 2, 6, 4):
        sandbox.add_download(f"d{day}", created_at=f"2024-01-0{day}T00:00:00Z")
    sandbox.add_download("d7-later", created_at="2024-01-07T00:00:00Z")  # same time, added later

    def page(index: int) -> list[str]:
        body = api("GET", "/download", params={"page_index": index, "count": 3}).json()
        return [d["id"] for d in body["data"]["downloads"]]

    assert [page(0), page(1), page(2), page(3)] == [
        ["d7-later", "d7", "d6"],
        ["d5", "d4", "d3"],
        ["d2", "d1"],
        [],
    ]
    first = api("GET", "/download").json()["data"]["downloads"][0]
    assert first["created_at"] == "2024-01-07T00:00:00Z"


@pytest.mark.parametrize("params", [{"count": 5001}, {"count": 0}, {"page_index": -1}, {"count": "x"}])
def test_bad_paging_is_400(api, params):
    answer = api("GET", "/download", params=params)
    assert (answer.status_code, answer.json()["error_code"]) == (400, "BAD_REQUEST")


def test_count_5000_is_allowed(api):
    assert api("GET", "/download", params={"count": 5000}).status_code == 200


def test_create_makes_a_record_and_a_job(sandbox, api):
    answer = api("POST", "/download", json={"stream_link": "https://stream.example/v/1", "name": "x.mp4"})
    assert answer.json()["status"] == "processing"
    assert poll(api, answer).json()["data"]["name"] == "x.mp4"
    [listed] = api("GET", "/download").json()["data"]["downloads"]
    assert (listed["name"], listed["status"]) == ("x.mp4", "done")
    assert api("POST", "/download", json={"name": "x"}).status_code == 400
    assert api("POST", "/download", data=b"not json").status_code == 400


def test_delete_by_query_or_by_json_body(sandbox, api):
    sandbox.add_download("a")
    sandbox.add_download("b")
    assert api("DELETE", "/download", params={"download_id": "a"}).json()["success"] is True
    assert api("DELETE", "/download", json={"download_id": "b"}).status_code == 200  # the docs' way
    assert api("GET", "/download").json()["data"]["downloads"] == []
    assert api("DELETE", "/download", params={"download_id": "a"}).status_code == 404
    assert api("DELETE", "/download").status_code == 400


def test_reset_forgets_everything(sandbox, api):
    sandbox.script("dl-1", retry_status=500)
    retry(api)
    sandbox.reset()
    assert sandbox.requests == []
    assert sandbox.download("dl-1") is None
    assert retry(api).status_code == 404


# -- command line ------------------------------------------------------------------------------


def test_command_line_serves_on_loopback_until_interrupted():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "layers/shared")])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "videodb_retry_local.videodb_sandbox.sandbox",
            "--port",
            "0",
            "--api-key",
            "sk-cli-key",
            "--download",
            "dl-cli",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        assert "sk-cli-key" not in line
        base_url = line.split()[3]
        assert base_url.startswith("http://127.0.0.1:")
        headers = {"x-access-token": "sk-cli-key"}
        answer = requests.post(f"{base_url}/download/dl-cli", headers=headers, timeout=5)
        assert answer.json()["status"] == "processing"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=5)
        assert process.returncode == 0
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- retrying a download that is not in error ---------------------------------------------------


@pytest.mark.parametrize("status", ["processing", "done"])
def test_retrying_a_download_not_in_error_is_a_400_error_by_default(sandbox, api, status):
    sandbox.add_download("dl-1", status=status)
    answer = retry(api)
    assert answer.status_code == 400
    body = answer.json()
    assert body["success"] is False and body["error_code"] == "BAD_REQUEST"
    assert f"is {status}" in body["message"]
    assert sandbox.download("dl-1")["status"] == status  # nothing was started


def test_a_retry_while_the_last_one_is_processing_is_refused_until_it_fails(sandbox, api, clock):
    sandbox.script("dl-1", processing_seconds=10, fail_times=1)
    first = retry(api)
    assert retry(api).status_code == 400
    clock.advance(10)
    assert poll(api, first).json()["status"] == "failed"
    assert retry(api).status_code == 200  # in error again: retried


@pytest.mark.parametrize("refusal", [None, 409, 200])
def test_the_refusal_is_configurable(sandbox, api, refusal):
    sandbox.add_download("dl-1", status="done")
    sandbox.script("dl-1", not_failed_retry_status=refusal)
    answer = retry(api)
    if refusal is None:
        assert answer.json()["status"] == "processing"
    else:
        assert answer.status_code == refusal and answer.json()["success"] is False


def test_a_refusal_status_is_checked():
    with pytest.raises(ValueError):
        Script(not_failed_retry_status=99)


# -- answer shapes ---------------------------------------------------------------------------------


def test_download_id_is_named_where_the_shape_says(sandbox, api):
    sandbox.script("dl-1", shape=AnswerShape(download_id_at="top"))
    answer = retry(api)
    assert answer.json()["download_id"] == "dl-1"
    assert poll(api, answer).json()["download_id"] == "dl-1"
    sandbox.script("dl-2", shape=AnswerShape(download_id_at="data"), fail_times=1)
    answer = retry(api, "dl-2")
    assert answer.json()["data"]["download_id"] == "dl-2" and "download_id" not in answer.json()
    assert poll(api, answer).json()["data"]["download_id"] == "dl-2"


def test_error_text_in_data_error(sandbox, api):
    sandbox.script("dl-1", shape=AnswerShape(error_at="data.error"), fail_times=1, failure_message="gone")
    body = poll(api, retry(api)).json()
    assert body["data"]["error"] == "gone" and "message" not in body and body["success"] is False


def test_the_poll_can_answer_the_download_record(sandbox, api, clock):
    sandbox.script("dl-1", shape=AnswerShape(poll_form="record"), processing_seconds=5)
    answer = retry(api)
    body = poll(api, answer).json()
    assert list(body) == ["success", "data"] and body["data"]["status"] == "processing"
    clock.advance(5)
    body = poll(api, answer).json()
    assert body["data"]["status"] == "done" and body["data"]["download_url"]
    assert body["data"]["id"] == "dl-1" and "status" not in body


def test_a_failed_job_as_a_record_reads_error(sandbox, api):
    sandbox.script(
        "dl-1",
        shape=AnswerShape(retry_form="record", error_at="data.error"),
        answer_failed_at_once=True,
        failure_message="bad",
    )
    body = retry(api).json()
    assert body["data"]["status"] == "error" and body["data"]["error"] == "bad"
    assert body["data"]["download_url"] == ""


def test_get_download_in_both_documented_forms(sandbox, api, clock):
    sandbox.script("dl-1", shape=AnswerShape(get_form="async"), processing_seconds=5)
    # before any retry: an AsyncResponse about the download itself
    body = api("GET", "/download/dl-1").json()
    assert (body["status"], body["success"]) == ("failed", False) and body["message"]
    answer = retry(api).json()
    body = api("GET", "/download/dl-1").json()
    assert body["status"] == "processing" and body["data"] == answer["data"]
    clock.advance(5)
    body = api("GET", "/download/dl-1").json()
    assert body["status"] == "done" and body["data"]["download_url"]
    sandbox.script("dl-1")  # the record form again
    assert api("GET", "/download/dl-1").json()["data"]["status"] == "done"


def test_success_can_contradict_the_status(sandbox, api):
    sandbox.script("dl-1", shape=AnswerShape(success={"done": False}))
    body = poll(api, retry(api)).json()
    assert (body["status"], body["success"]) == ("done", False)


def test_any_status_spelling_even_one_never_seen(sandbox, api):
    sandbox.script("dl-1", status_spelling={"processing": "PROCESSING", "done": "exported"})
    answer = retry(api)
    assert answer.json()["status"] == "PROCESSING"
    assert poll(api, answer).json()["status"] == "exported"
