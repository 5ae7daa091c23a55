"""Runtime settings, read once from the environment the template gives each function.

Every tunable number has its default here and a template parameter of the same meaning;
the template is where a user changes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from videodb_retry.rules.budgets import Budgets
from videodb_retry.rules.origin import Origin, parse_origin

DEFAULT_API_BASE_URL = "https://api.videodb.io"
OUTCOME_EVENT_SOURCE = "videodb-retry"


@dataclass(frozen=True)
class Settings:
    """What a function needs to know about its deployment."""

    api_base_url: str = DEFAULT_API_BASE_URL
    api_key_secret_id: str = ""
    secret_cache_ttl_seconds: int = 300
    connect_timeout_seconds: float = 3.05
    # The retry call "returns immediately"; a slow answer is better retried than waited for.
    read_timeout_seconds: float = 10.0
    # The workflow's Wait before the first poll (later waits are its Retry's, see poll.py).
    poll_first_wait_seconds: int = 15
    poll_deadline_seconds: int = 7200
    poll_max_polls: int = 500
    max_retry_attempts: int = 3
    requeue_delay_seconds: int = 60
    max_receive_count: int = 10
    redelivery_first_delay_seconds: int = 30
    redelivery_backoff_factor: float = 2.0
    redelivery_max_delay_seconds: int = 900
    idempotency_table_name: str = ""
    batch_concurrency: int = 10
    retry_queue_url: str = ""
    dead_letter_queue_url: str = ""
    state_machine_arn: str = ""
    event_bus_name: str = "default"
    outcome_event_source: str = OUTCOME_EVENT_SOURCE
    # The sweeper's (see sweeper.py); required there, unused by the other functions.
    sweep_lookback_hours: float = 24.0
    sweep_rate_minutes: float = 15.0  # the schedule's rate: a run ends before the next starts
    failure_event_source: str = ""
    failure_event_detail_type: str = ""
    sweep_table_name: str = ""
    # The stack's budgets (template ConcurrencyBudget, VideoDBRequestsPerSecond) and what their
    # split needs (see budgets.py): the retry queue's MaximumConcurrency, the poll's Timeout.
    budget_lambda_concurrency: int = Budgets.lambda_concurrency
    budget_videodb_rps: int = Budgets.videodb_rps
    retry_max_concurrency: int = Budgets.retry_concurrency
    poll_time_limit_seconds: int = Budgets.poll_time_limit_seconds

    @property
    def budgets(self) -> Budgets:
        """The budgets and their split, from these settings."""
        return Budgets(
            lambda_concurrency=self.budget_lambda_concurrency,
            videodb_rps=self.budget_videodb_rps,
            retry_concurrency=self.retry_max_concurrency,
            poll_time_limit_seconds=self.poll_time_limit_seconds,
        )

    @property
    def api_origin(self) -> Origin:
        """(scheme, host, port) of the API: the only place the key may be sent."""
        return url_origin(self.api_base_url)

    @property
    def idempotency_expiry_seconds(self) -> int:
        """How long a step of an attempt is remembered: longer than the attempt's workflow can
        run (so a request for a download in flight is a duplicate) and than its message can
        keep being redelivered (so a redelivery after a partial failure never POSTs again)."""
        redelivery_span = self.max_receive_count * self.redelivery_max_delay_seconds
        return max(self.poll_deadline_seconds, redelivery_span) + self.requeue_delay_seconds + 3600

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from environment variables, falling back to the defaults."""
        env = dict(os.environ if env is None else env)
        d = cls()

        def text(name: str, default: str) -> str:
            return env.get(name) or default

        def number(name: str, default: float, kind: type = int) -> float:
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"setting {name}={raw!r} is not a {kind.__name__}") from None
            if value < 0:
                raise ValueError(f"setting {name} must not be negative")
            return value

        settings = cls(
            api_base_url=text("VIDEODB_API_BASE_URL", d.api_base_url).rstrip("/"),
            api_key_secret_id=text("API_KEY_SECRET_ID", d.api_key_secret_id),
            secret_cache_ttl_seconds=int(number("SECRET_CACHE_TTL_SECONDS", d.secret_cache_ttl_seconds)),
            connect_timeout_seconds=number("HTTP_CONNECT_TIMEOUT_SECONDS", d.connect_timeout_seconds, float),
            read_timeout_seconds=number("HTTP_READ_TIMEOUT_SECONDS", d.read_timeout_seconds, float),
            poll_first_wait_seconds=int(number("POLL_FIRST_WAIT_SECONDS", d.poll_first_wait_seconds)),
            poll_deadline_seconds=int(number("POLL_DEADLINE_SECONDS", d.poll_deadline_seconds)),
            poll_max_polls=int(number("POLL_MAX_POLLS", d.poll_max_polls)),
            max_retry_attempts=int(number("MAX_RETRY_ATTEMPTS", d.max_retry_attempts)),
            requeue_delay_seconds=int(number("REQUEUE_DELAY_SECONDS", d.requeue_delay_seconds)),
            max_receive_count=int(number("MAX_RECEIVE_COUNT", d.max_receive_count)),
            redelivery_first_delay_seconds=int(
                number("REDELIVERY_FIRST_DELAY_SECONDS", d.redelivery_first_delay_seconds)
            ),
            redelivery_backoff_factor=number("REDELIVERY_BACKOFF_FACTOR", d.redelivery_backoff_factor, float),
            redelivery_max_delay_seconds=int(
                number("REDELIVERY_MAX_DELAY_SECONDS", d.redelivery_max_delay_seconds)
            ),
            idempotency_table_name=text("IDEMPOTENCY_TABLE_NAME", ""),
            batch_concurrency=max(1, int(number("RETRY_BATCH_CONCURRENCY", d.batch_concurrency))),
            retry_queue_url=text("RETRY_QUEUE_URL", ""),
            dead_letter_queue_url=text("DEAD_LETTER_QUEUE_URL", ""),
            state_machine_arn=text("STATE_MACHINE_ARN", ""),
            event_bus_name=text("EVENT_BUS_NAME", d.event_bus_name),
            outcome_event_source=text("OUTCOME_EVENT_SOURCE", d.outcome_event_source),
            sweep_lookback_hours=number("SWEEP_LOOKBACK_HOURS", d.sweep_lookback_hours, float),
            sweep_rate_minutes=number("SWEEP_RATE_MINUTES", d.sweep_rate_minutes, float),
            failure_event_source=text("FAILURE_EVENT_SOURCE", ""),
            failure_event_detail_type=text("FAILURE_EVENT_DETAIL_TYPE", ""),
            sweep_table_name=text("STATE_TABLE_NAME", ""),
            budget_lambda_concurrency=int(number("BUDGET_LAMBDA_CONCURRENCY", d.budget_lambda_concurrency)),
            budget_videodb_rps=int(number("BUDGET_VIDEODB_RPS", d.budget_videodb_rps)),
            retry_max_concurrency=int(number("RETRY_MAX_CONCURRENCY", d.retry_max_concurrency)),
            poll_time_limit_seconds=int(number("POLL_TIME_LIMIT_SECONDS", d.poll_time_limit_seconds)),
        )
        settings.budgets  # noqa: B018  (a budget too small fails at start-up, not on the first request)
        url_origin(settings.api_base_url)  # fail at start-up, not on the first record
        if any(mark in settings.api_base_url for mark in "?#"):
            raise ValueError("setting VIDEODB_API_BASE_URL must not have a query or fragment")
        if settings.max_retry_attempts < 1:
            raise ValueError("setting MAX_RETRY_ATTEMPTS must be at least 1")
        return settings


def url_origin(url: str) -> Origin:
    """The (scheme, host, port) origin of a clean http(s) URL, with the scheme's default port.

    Read with urllib3's parser, the one requests sends with; a URL with userinfo, a backslash,
    whitespace, control or non-ASCII characters raises ``ValueError`` (see origin.py).
    """
    return parse_origin(url)


@lru_cache(maxsize=1)
def current() -> Settings:
    """The settings of this process (read once; warm invocations reuse them)."""
    return Settings.from_env()
