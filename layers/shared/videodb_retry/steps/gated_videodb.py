"""VideoDB behind the shared request budget: each request takes a token of its kind first.

:class:`GatedVideoDB` implements the ``VideoDB`` port by delegation. Before a request it asks
the ``RequestGate`` for a token of the request's kind; when the window's tokens are spent it
waits for the next window as long as ``patience()`` allows (the retry function: its
invocation's time left, its concurrency being fixed), else raises
:class:`~videodb_retry.errors.RequestDeferred` having sent nothing (the poll function: patience
0, the workflow waits without a Lambda held).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from videodb_retry.errors import RequestDeferred
from videodb_retry.ports import RequestGate, VideoDB
from videodb_retry.rules.budgets import RequestKind, window_of
from videodb_retry.rules.status import JobStatus


def no_patience() -> float:
    """Never wait for a token: a refusal is answered at once."""
    return 0.0


class GatedVideoDB:
    """The ``VideoDB`` port, each request admitted by ``gate`` first.

    ``now``/``sleep``: the clock (a virtual one in the capacity model); ``list_kind``: what a
    ``list_downloads`` call is for (``SWEEP`` pages, or the breaker's ``PROBE``).
    """

    def __init__(
        self,
        videodb: VideoDB,
        gate: RequestGate,
        now: Callable[[], float],
        sleep: Callable[[float], None],
        patience: Callable[[], float] = no_patience,
        list_kind: RequestKind = RequestKind.SWEEP,
    ) -> None:
        self._videodb = videodb
        self._gate = gate
        self._now = now
        self._sleep = sleep
        self._patience = patience
        self._list_kind = list_kind

    def retry_download(self, download_id: str) -> JobStatus:
        """``POST /download/{id}`` once a RETRY token is taken."""
        self.admit(RequestKind.RETRY)
        return self._videodb.retry_download(download_id)

    def get_job(self, output_url: str, download_id: str | None = None) -> JobStatus:
        """``GET output_url`` once a POLL token is taken (an unfollowable URL takes none)."""
        self._videodb.followable_url(output_url)  # refused before spending a token
        self.admit(RequestKind.POLL)
        return self._videodb.get_job(output_url, download_id)

    def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, Any]]:
        """One page of ``GET /download`` once a token of ``list_kind`` is taken."""
        self.admit(self._list_kind)
        return self._videodb.list_downloads(page_index=page_index, count=count)

    def followable_url(self, url: str) -> str:
        """No request: delegated as is."""
        return self._videodb.followable_url(url)

    def is_on_api_origin(self, url: str) -> bool:
        """No request: delegated as is."""
        return self._videodb.is_on_api_origin(url)

    def admit(self, kind: RequestKind) -> None:
        """Take a token of ``kind``, waiting for later windows while patience lasts; raise
        :class:`RequestDeferred` (nothing sent) when it runs out."""
        while True:
            now = self._now()
            if self._gate.take(kind, now):
                return
            wait = window_of(now) + 1 - now
            if wait > self._patience():
                raise RequestDeferred(kind.value, retry_after=1)
            self._sleep(wait)


class TimeLeft:
    """How long a request may wait for a token in the current invocation: its time left
    minus ``reserve_seconds`` (the request itself and the work after it)."""

    def __init__(self, reserve_seconds: float) -> None:
        self._reserve = reserve_seconds
        self._context: Any = None

    def register(self, context: Any) -> None:
        """Remember the invocation's Lambda context (one invocation at a time per container)."""
        self._context = context

    def patience(self) -> float:
        """Seconds a request may still wait (0 with no invocation registered)."""
        if self._context is None:
            return 0.0
        return self._context.get_remaining_time_in_millis() / 1000 - self._reserve
