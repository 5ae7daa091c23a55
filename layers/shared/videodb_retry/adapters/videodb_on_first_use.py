"""A VideoDB client built on first use, for a function that calls VideoDB on few invocations.

The breaker calls VideoDB only to probe while it is open; a tick of a closed breaker (nearly
every tick) and the operator's switch never do. Importing ``requests`` and Powertools'
parameters (for the key) at module load would put their CPU into every cold start for a call
most containers never make: here the first call pays it instead, once per container.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from videodb_retry.settings import Settings

if TYPE_CHECKING:
    from videodb_retry.adapters.videodb_client import VideoDBClient


class VideoDBOnFirstUse:
    """Stands for ``VideoDBClient(settings, ApiKeyProvider(settings))``, built (and its
    modules imported) when an attribute is first used; the same client for the container."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: VideoDBClient | None = None
        self._lock = threading.Lock()

    def client(self) -> VideoDBClient:
        """The client, built on the first call."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from videodb_retry.adapters.api_key import ApiKeyProvider
                    from videodb_retry.adapters.videodb_client import VideoDBClient

                    self._client = VideoDBClient(self._settings, ApiKeyProvider(self._settings))
        return self._client

    def __getattr__(self, name: str) -> Any:
        # Only names this object lacks (``list_downloads``, ...) reach here.
        return getattr(self.client(), name)
