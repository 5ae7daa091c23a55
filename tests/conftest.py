"""Suite-wide guards: no test reaches AWS or any address but loopback (and hosts a test
run created itself, named in VIDEODB_RETRY_ALLOWED_HOSTS)."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

# Powertools reads these when the shared package is first imported, before any fixture runs.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "VideoDBRetryTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "videodb-retry")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # unix sockets (e.g. the Docker engine's) stay on this machine
    host = str(address[0])
    extra = {h for h in os.environ.get("VIDEODB_RETRY_ALLOWED_HOSTS", "").split(",") if h}
    if host in extra or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _allowed(address):
        raise ConnectionRefusedError(f"test network guard: {address!r} is not loopback")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _allowed(address):
        raise ConnectionRefusedError(f"test network guard: {address!r} is not loopback")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


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
