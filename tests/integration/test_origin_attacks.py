"""The key never leaves the API origin, checked across generated URL variants end to end.

A recorder on 127.0.0.2 answers every request with a fake "done". VideoDB's (the sandbox's)
``output_url`` and the configured ``VideoDBApiBaseUrl`` are generated variants that mix the
API's authority with the recorder's; whatever the variant, the recorder must receive nothing:
not the retry POST, not the poll GET, not the sweeper's list calls.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from videodb_retry.adapters.videodb_client import VideoDBClient
from videodb_retry.errors import RetryPipelineError
from videodb_retry.settings import Settings, url_origin

from tests.origin_variants import Recorder, foreign_prefixes, recording_server, url_paths, url_soup
from videodb_retry_local.stack.emulated_stack import EmulatedStack
from videodb_retry_local.stack.sqs_event_source import QueueConsumer
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

from .conftest import API_KEY

pytestmark = pytest.mark.integration
EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_ids = itertools.count()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with recording_server() as server:
        yield server


def _authority(sandbox: SandboxServer) -> str:
    return sandbox.base_url.split("://", 1)[1]


@given(data=st.data())
@EXAMPLES
def test_retry_dead_letters_a_foreign_output_url_at_issue_time(stack, consumer, sandbox, recorder, data):
    prefix = data.draw(foreign_prefixes(_authority(sandbox), recorder.port), label="output origin")
    download_id = f"dl-origin-{next(_ids)}"
    sandbox.script(download_id, output_origin=prefix)
    stack.send_to_queue(download_id)
    consumer.poll_once()

    letters = [d for d in stack.dead_letters() if d["attributes"].get("download_id") == download_id]
    assert [d["attributes"]["error_code"] for d in letters] == ["foreign_origin"]
    assert letters[0]["body"] == download_id
    assert [e for e in stack.executions() if e["name"].startswith(f"{download_id}--")] == []
    assert recorder.seen == []


@given(data=st.data())
@EXAMPLES
def test_poll_step_refuses_what_is_not_on_the_origin(stack: EmulatedStack, sandbox, recorder, data):
    api = _authority(sandbox)
    output_url = data.draw(
        st.one_of(
            st.builds(str.__add__, foreign_prefixes(api, recorder.port), url_paths()),
            url_soup(api, recorder.port),
        ),
        label="output_url",
    )
    state = {
        "download_id": "dl-poll-origin",
        "job_id": "job-1",
        "output_url": output_url,
        "attempt": 1,
        "started_at": 0,
        "deadline_at": 4_000_000_000,
        "polls": 0,
    }
    try:
        answer = stack.invoke("PollFunction", state)
    except Exception:  # a transient poll error on an on-origin URL the sandbox does not know
        answer = None
    assert recorder.seen == []
    if answer is not None:
        assert answer["status"] != "done", "a job the sandbox never made cannot be done"


@given(data=st.data())
@EXAMPLES
def test_retry_post_and_sweeper_list_calls_go_only_to_a_clean_base_url(sandbox, recorder, data):
    api = _authority(sandbox)
    base_url = data.draw(
        st.one_of(foreign_prefixes(api, recorder.port), url_soup(api, recorder.port)), label="base URL"
    )
    recorder.seen.clear()  # one recorder serves every example: judge this one's requests only
    try:
        config = Settings.from_env({"VIDEODB_API_BASE_URL": base_url})
    except ValueError:
        config = None  # refused at start-up: nothing is ever sent
    if config is None:
        assert recorder.seen == []
        return
    client = VideoDBClient(config, _Key())
    for call in (lambda: client.retry_download("dl-any"), lambda: client.list_downloads(0, 10)):
        with contextlib.suppress(RetryPipelineError):
            call()
    # A clean base URL is the operator's choice of origin, wherever it points (a clean
    # http://127.0.0.2:port names the recorder): calls may go there and nowhere else.
    scheme, host, port = config.api_origin
    assert all(
        url_origin(f"{scheme}://{r['headers']['Host']}") == (scheme, host, port) for r in recorder.seen
    )


def test_the_issues_backslash_url_is_dead_lettered_and_never_polled(stack, consumer, sandbox, recorder):
    # The finding as reported: before the fix the workflow started, polled the recorder and
    # announced its fake "done" as the job's result.
    sandbox.script("dl-backslash", output_origin=f"http://{recorder.authority}\\@{_authority(sandbox)}")
    stack.send_to_queue(json.dumps({"download_id": "dl-backslash", "attempt": 1}))
    consumer.poll_once()

    (letter,) = [d for d in stack.dead_letters() if d["attributes"].get("download_id") == "dl-backslash"]
    assert letter["attributes"]["error_code"] == "foreign_origin"
    assert "backslash" in letter["attributes"]["reason"]
    assert stack.executions() == [] and recorder.seen == []


class _Key:
    def __call__(self) -> str:
        return API_KEY

    def refresh(self) -> str:
        return API_KEY


@pytest.fixture
def consumer(stack: EmulatedStack) -> QueueConsumer:
    """One delivery per poll_once; a failed record is not redelivered within a test."""
    return QueueConsumer(stack, redelivery_seconds=None)
