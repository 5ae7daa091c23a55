"""`make demo` ends with every scripted download as designed; the real-API mode guards the key."""

from __future__ import annotations

import pytest

from videodb_retry_local.commands import demo
from videodb_retry_local.videodb_sandbox.sandbox import SandboxServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def test_demo_mix_ends_as_designed(capsys):
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "6/6 downloads ended as designed" in out
    for case in demo.CASES:
        assert case.download_id in out or repr(case.body) in out
    assert '"level"' not in out and "_aws" not in out  # no function JSON logs or metrics


def test_real_api_mode_refuses_without_a_key(monkeypatch, capsys):
    monkeypatch.delenv(demo.KEY_ENV, raising=False)
    assert demo.main(["--api-base", "http://127.0.0.1:9", "--download-id", "dl-1"]) == 2
    assert demo.KEY_ENV in capsys.readouterr().err


def test_real_api_mode_retries_the_given_ids_and_never_prints_the_key(monkeypatch, capsys):
    key = "sk-secret-value-never-shown"
    monkeypatch.setenv(demo.KEY_ENV, key)
    with SandboxServer(api_key=key) as api:
        api.add_download("dl-real-1")
        code = demo.main(
            ["--api-base", api.base_url, "--download-id", "dl-real-1", "--download-id", "dl-gone"]
        )
        # records of one batch run concurrently: the order of the calls is not fixed
        assert sorted(r.path for r in api.retry_calls()) == ["/download/dl-gone", "/download/dl-real-1"]
    captured = capsys.readouterr()
    assert code == 0
    assert "2/2 downloads ended as designed" in captured.out
    assert key not in captured.out and key not in captured.err
