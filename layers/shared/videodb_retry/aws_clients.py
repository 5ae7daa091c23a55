"""boto3 clients, created once per process and reused by warm invocations."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode with a few attempts: short AWS-side blips are absorbed here; anything
# longer fails the record, which SQS then redelivers.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


@cache
def client(service: str) -> Any:
    """A boto3 client for ``service`` (``sqs``, ``stepfunctions``, ``events``, ...)."""
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]
