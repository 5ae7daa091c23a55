"""VideoDB as the model sees it: the sandbox's scripted downloads on the virtual clock, with
latency, a rate limit answering 429 + ``Retry-After``, and outages.

:class:`SimVideoDB` implements the ``VideoDB`` port. What each request answers comes from
``sandbox_downloads.ScriptedDownloads`` (the same scripts the sandbox and the emulated stack
use); the answer is judged by the layer's own rule (``http_answers.read_answer`` then
``job_status``), as ``client.VideoDBClient`` judges an HTTP answer. Each request is stamped with
the calling invocation's local clock (:class:`LocalClock`), which it advances by the request's
latency; the stamps make the requests-per-second series and the rate limit.

Assumptions (marked in ``spec/NOTES.md``, "Capacity model assumptions"): latency is
``latency_seconds`` times a uniform factor in [0.5, 1.5); the rate limit counts every request in
one-second windows and answers 429 with ``Retry-After: 1`` beyond it; an outage answers 503.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from videodb_retry.adapters.http_answers import job_status, read_answer
from videodb_retry.errors import ForeignOriginError
from videodb_retry.rules.origin import UnsafeUrl, parse_origin, url_on_origin
from videodb_retry.rules.status import JobStatus

from videodb_retry_local.videodb_sandbox.sandbox_answers import Answer
from videodb_retry_local.videodb_sandbox.sandbox_downloads import ScriptedDownloads, UnknownIdHook

ORIGIN = "https://api.videodb.io"


@dataclass
class LocalClock:
    """One invocation's own virtual time: it advances as the invocation sleeps and waits."""

    now: float = 0.0

    def time(self) -> float:
        """The invocation's current time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Sleeping advances the invocation's time (and holds its Lambda unit meanwhile)."""
        self.now += max(0.0, seconds)


@dataclass(frozen=True)
class VideoDBBehaviour:
    """How VideoDB behaves in a scenario (every field an assumption, see the module doc)."""

    post_latency: float = 0.3
    get_latency: float = 0.15
    rate_limit: int | None = None  # requests per second VideoDB accepts (None: unlimited)
    retry_after: int = 1
    outages: tuple[tuple[float, float], ...] = ()  # [start, end) windows answering 503


@dataclass
class _Reply:
    """An answer in the shape ``http_answers.HttpAnswer`` reads."""

    status_code: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        if isinstance(self.body, bytes):
            raise ValueError("not JSON")
        return self.body


class SimVideoDB:
    """The ``VideoDB`` port over scripted downloads, on invocation-local clocks."""

    def __init__(self, behaviour: VideoDBBehaviour, rng: random.Random, on_unknown_id: UnknownIdHook) -> None:
        self.behaviour = behaviour
        self.clock = LocalClock()
        self._rng = rng
        self.downloads = ScriptedDownloads(
            clock=self.clock.time, origin=lambda: ORIGIN, on_unknown_id=on_unknown_id
        )
        self._origin = parse_origin(ORIGIN)  # the client's rule: the key goes to this origin only
        self._followable: dict[str, str | ForeignOriginError] = {}
        self.per_second: Counter[int] = Counter()  # every request, by the second it was sent
        self.by_kind: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # 429 / 503 answers by kind
        self.on_post: Callable[[str, bool], None] = lambda download_id, accepted: None

    def retry_download(self, download_id: str) -> JobStatus:
        """``POST /download/{id}``."""
        answer = self._request(
            "retry", self.behaviour.post_latency, lambda: self.downloads.retry(download_id)
        )
        self.on_post(download_id, answer.status == 200)
        return job_status(self._judge(f"POST /download/{download_id}", answer), download_id)

    def get_job(self, output_url: str, download_id: str | None = None) -> JobStatus:
        """``GET output_url`` (an async-response of a job)."""
        url = self.followable_url(output_url)
        job_id = urlsplit(url).path.rsplit("/", 1)[-1]
        answer = self._request("poll", self.behaviour.get_latency, lambda: self.downloads.poll(job_id))
        return job_status(self._judge(f"GET {urlsplit(url).path}", answer), download_id)

    def list_downloads(self, page_index: int = 0, count: int = 100) -> list[dict[str, Any]]:
        """``GET /download``: one page (the breaker's probe, the sweeper's pages)."""
        query = {"page_index": str(page_index), "count": str(count)}
        answer = self._request("list", self.behaviour.get_latency, lambda: self.downloads.page(query))
        body = self._judge("GET /download", answer)
        return [d for d in body["data"]["downloads"] if isinstance(d, dict)]

    def followable_url(self, url: str) -> str:
        """The client's origin rule: only URLs on the API origin are followed (each URL judged
        once by the rule, then remembered: the model asks about the same URLs many times)."""
        known = self._followable.get(url)
        if known is None:
            try:
                known = url_on_origin(url, self._origin)
            except UnsafeUrl as exc:
                known = ForeignOriginError(f"{exc}; not followed")
            self._followable[url] = known
        if isinstance(known, ForeignOriginError):
            raise known
        return known

    def is_on_api_origin(self, url: str) -> bool:
        """True when :meth:`followable_url` accepts ``url``."""
        try:
            self.followable_url(url)
        except ForeignOriginError:
            return False
        return True

    def requests_in(self, second: int) -> int:
        """Requests sent in the one-second window ``second``."""
        return self.per_second.get(second, 0)

    def _request(self, kind: str, latency: float, answer: Callable[[], Answer]) -> Answer:
        sent = self.clock.now
        second = int(sent)
        self.per_second[second] += 1
        self.by_kind[kind] += 1
        self.clock.sleep(latency * (0.5 + self._rng.random()))
        limit = self.behaviour.rate_limit
        if any(start <= sent < end for start, end in self.behaviour.outages):
            self.refused[kind] += 1
            return Answer(503, {"success": False, "message": "Service Unavailable"})
        if limit is not None and self.per_second[second] > limit:
            self.refused[kind] += 1
            headers = {"Retry-After": str(self.behaviour.retry_after)}
            return Answer(429, {"success": False, "message": "Too Many Requests"}, headers)
        return answer()

    def _judge(self, where: str, answer: Answer) -> Any:
        return read_answer(where, _Reply(answer.status, answer.body, answer.headers), key="")
