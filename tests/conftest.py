"""Suite-wide guards: no test reaches AWS or any address but loopback (and hosts a test
run created itself, named in VIDEODB_RETRY_ALLOWED_HOSTS)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from videodb_retry_local.stack import network_guard

# Property tests judge behaviour, not speed: a loaded CI machine must not fail them on
# Hypothesis's per-example deadline or its too-slow health check (one profile for the suite).
settings.register_profile("videodb-retry", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("videodb-retry")

# Powertools reads these when the shared package is first imported, before any fixture runs.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "VideoDBRetryTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "videodb-retry")

network_guard.install(
    "test",
    extra_hosts=lambda: [h for h in os.environ.get("VIDEODB_RETRY_ALLOWED_HOSTS", "").split(",") if h],
)


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that can sign nothing real, so no test could ever act on an AWS account."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "VideoDBRetryTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "videodb-retry")


@pytest.fixture(autouse=True)
def _fresh_metrics() -> None:
    """Metrics are module-level in the functions; start each test with none buffered."""
    from videodb_retry.observability import metrics

    metrics.clear_metrics()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a free port), for --endpoint-url and subprocess tests."""
    from videodb_retry_local.stack.moto_server import endpoint_of, start_moto_server

    server = start_moto_server(0, "127.0.0.1")
    try:
        yield endpoint_of(server)
    finally:
        server.stop()
