"""boto3 clients, created once per process and reused by warm invocations.

Clients are first asked for inside the retry function's worker threads (``batch.py`` runs a
batch's records on a pool), so creation is serialised by a lock: ``boto3.client`` builds the
client from boto3's shared default session, and sessions are not thread-safe — a client may be
shared by threads once built, but must not be built concurrently (boto3 docs, "Multithreading
or multiprocessing with clients",
https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html#multithreading-or-multiprocessing-with-clients;
botocore issue 2985; boto3 pull request 4157, "boto3.client is not thread-safe").
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode with a few attempts: short AWS-side blips are absorbed here; anything
# longer fails the record, which SQS then redelivers.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


class _Clients:
    """One client per service, each built once, under a lock; built clients are shared freely."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str) -> Any:
        found = self._built.get(service)
        if found is not None:  # the common path takes no lock: a built client is thread-safe
            return found
        with self._lock:
            if service not in self._built:
                self._built[service] = boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]
            return self._built[service]

    def cache_clear(self) -> None:
        """Forget every client (the local run does so between functions, whose settings differ)."""
        with self._lock:
            self._built.clear()


client = _Clients()
"""``client("sqs")``: the process's boto3 client for a service (``sqs``, ``events``, ...)."""
