"""The VideoDB API key, read from Secrets Manager through Powertools Parameters and cached.

The secret may hold the key as a plain string (``sk-...``) or as JSON ``{"api_key": "sk-..."}``.
The key is returned to callers only; it is never logged, put in an error or an event.
"""

from __future__ import annotations

import json
import threading

from aws_lambda_powertools.utilities import parameters

from videodb_retry.errors import ConfigurationError, TransientError
from videodb_retry.settings import Settings

JSON_KEY_FIELD = "api_key"


class ApiKeyProvider:
    """Returns the key, cached for ``secret_cache_ttl_seconds``; ``refresh()`` re-reads it."""

    def __init__(self, settings: Settings) -> None:
        self._secret_id = settings.api_key_secret_id
        self._ttl = settings.secret_cache_ttl_seconds
        # Records run on several threads: one reads the secret, the others wait for the cache.
        self._lock = threading.Lock()

    def __call__(self) -> str:
        return self._read(force_fetch=False)

    def refresh(self) -> str:
        """Re-read the secret now, bypassing the cache (after a 401: the key may be rotated)."""
        return self._read(force_fetch=True)

    def _read(self, force_fetch: bool) -> str:
        if not self._secret_id:
            raise ConfigurationError("API_KEY_SECRET_ID is not set")
        try:
            with self._lock:
                raw = parameters.get_secret(self._secret_id, max_age=self._ttl, force_fetch=force_fetch)
        except parameters.exceptions.GetParameterError as exc:
            # Throttling or an outage of Secrets Manager passes; the record is retried.
            raise TransientError(
                f"could not read the API key secret: {type(exc.__cause__ or exc).__name__}"
            ) from None
        return parse_secret_value(raw)


def parse_secret_value(raw: object) -> str:
    """Extract the key from a secret value: a plain string or JSON ``{"api_key": "..."}``."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        raise ConfigurationError("the API key secret is not a string")
    text = raw.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise ConfigurationError("the API key secret looks like JSON but does not parse") from None
        value = document.get(JSON_KEY_FIELD) if isinstance(document, dict) else None
        if not isinstance(value, str):
            raise ConfigurationError(f'the API key secret\'s JSON has no "{JSON_KEY_FIELD}" string')
        text = value.strip()
    if not text:
        raise ConfigurationError("the API key secret is empty: put the VideoDB key in it")
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise ConfigurationError("the API key secret holds whitespace or control characters")
    return text
