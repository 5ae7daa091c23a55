"""boto3 sessions and clients built from the global options, and one-line AWS error texts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

# Long enough for a 1 s long poll and a slow emulator; short enough that a dead endpoint is
# reported within seconds rather than minutes.
_CONNECT_TIMEOUT = 5
_READ_TIMEOUT = 30
MAX_MESSAGE = 300


@dataclass(frozen=True)
class AwsOptions:
    """The global ``--region``, ``--profile`` and ``--endpoint-url`` options."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None


class Aws:
    """Creates (and reuses) boto3 clients for one command run.

    ``fallback_region`` is asked for a region only when neither ``--region`` nor the AWS
    configuration gives one (the deploy region in samconfig.toml, for example).
    """

    def __init__(self, options: AwsOptions, fallback_region: Callable[[], str | None] | None = None):
        self.options = options
        self._fallback_region = fallback_region
        self._session: boto3.Session | None = None
        self._clients: dict[tuple[str, int], Any] = {}

    @property
    def session(self) -> boto3.Session:
        """The boto3 session (profile and region applied)."""
        if self._session is None:
            session = boto3.Session(profile_name=self.options.profile, region_name=self.options.region)
            if session.region_name is None and self._fallback_region is not None:
                region = self._fallback_region()
                if region:
                    session = boto3.Session(profile_name=self.options.profile, region_name=region)
            self._session = session
        return self._session

    @property
    def region(self) -> str | None:
        """The region the clients use, if any is known."""
        return self.session.region_name

    def client(self, service: str, max_attempts: int | None = None) -> Any:
        """A client for ``service``; ``max_attempts=1`` turns botocore's retries off.

        Without ``max_attempts`` the AWS configuration decides (AWS_MAX_ATTEMPTS; 3 by default).
        """
        key = (service, max_attempts or 0)
        if key not in self._clients:
            if self.region is None:
                raise NoRegionError()
            retries: dict[str, Any] = {"mode": "standard"}
            if max_attempts:
                # total_max_attempts counts the first call; botocore's max_attempts counts retries.
                retries["total_max_attempts"] = max_attempts
            config = Config(
                retries=retries,
                connect_timeout=_CONNECT_TIMEOUT,
                read_timeout=_READ_TIMEOUT,
                user_agent_extra="videodb-retry-cli",
            )
            self._clients[key] = self.session.client(
                service, endpoint_url=self.options.endpoint_url, config=config
            )
        return self._clients[key]


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError (``''`` when the answer had none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def describe_error(exc: BaseException) -> str:
    """One line, for a person, saying what AWS (or botocore) refused and what to try."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = one_line(str(exc.response.get("Error", {}).get("Message", "")))
        operation = exc.operation_name
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return f"{operation}: the queue does not exist ({message or code})"
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return f"{operation}: access denied; check the credentials' permissions ({message})"
        if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"):
            return f"{operation}: the AWS credentials are invalid or expired ({code})"
        return f"{operation} failed: {code or 'error'}: {message or 'no message'}"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: use --profile, or set AWS_PROFILE or AWS_ACCESS_KEY_ID"
    if isinstance(exc, NoRegionError):
        return "no AWS region: use --region, or set AWS_REGION"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}: is the endpoint up?"
    if isinstance(exc, ProfileNotFound):
        return f"AWS profile not found: {exc.kwargs.get('profile', '')}"
    if isinstance(exc, BotoCoreError):
        return one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {exc}")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line and at most ``limit`` characters (errors must stay one line)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
