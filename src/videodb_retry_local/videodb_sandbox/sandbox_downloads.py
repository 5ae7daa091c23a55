"""What the sandbox's download ids answer: the records, their retry jobs and their scripts.

Each endpoint of the download API (spec/videodb-openapi-downloads.yaml) is one method of
:class:`ScriptedDownloads` that returns an :class:`Answer` (an HTTP status and a body): a
retry starts a job, a poll reads it, a scripted id fails, hangs, answers odd statuses or
misbehaves the ways the real API is known or feared to. No HTTP and no threads here: the
sandbox's server (:mod:`videodb_retry_local.videodb_sandbox.sandbox`) parses requests, checks the key and
calls these under its lock; :mod:`videodb_retry_local.videodb_sandbox.sandbox_answers` shapes the bodies.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from videodb_retry_local.videodb_sandbox.sandbox_answers import Answer, JobFacts, Kind, error_answer, render
from videodb_retry_local.videodb_sandbox.sandbox_population import NEWEST_FIRST, Population, merged_page
from videodb_retry_local.videodb_sandbox.sandbox_scripts import Counters as _Counters
from videodb_retry_local.videodb_sandbox.sandbox_scripts import (
    Script,
    UnknownIdHook,
    scripted_error,
    scripted_status,
)

__all__ = ["DOWNLOAD_STATUSES", "MAX_PAGE_COUNT", "Script", "ScriptedDownloads", "UnknownIdHook"]

# The spec's limit on GET /download's `count`.
MAX_PAGE_COUNT = 5000
DEFAULT_PAGE_COUNT = 50
# A non-JSON answer as a truncating proxy would give it, still labelled as JSON.
MALFORMED_BODY = b'{"success": true, "status": "processing", "data": {"id": '
DOWNLOAD_STATUSES = ("processing", "done", "error")


@dataclass
class _Record:
    id: str
    name: str
    status: str  # processing | done | error
    created_at: datetime
    seq: int  # breaks created_at ties: later additions count as newer
    download_url: str = ""
    job_id: str | None = None  # the latest job, whose end decides the status
    last_job_id: str | None = None  # the latest job, still known once it has ended


@dataclass
class _Job:
    id: str
    download_id: str
    name: str
    outcome: str  # done | failed, fixed when the job is created
    ends_at: float | None  # None: never
    output_url: str
    download_url: str  # what the download gets if the job ends "done"


class ScriptedDownloads:
    """The download records, their jobs and scripts, and what each endpoint answers.

    ``clock`` measures job processing time; ``origin()`` is the sandbox's base URL (asked
    when a job is made: the port is known only once the server listens); ``on_unknown_id``
    may script an id on first sight. Not thread-safe: the server calls it under its lock.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        origin: Callable[[], str],
        on_unknown_id: UnknownIdHook | None = None,
    ) -> None:
        self._clock = clock
        self._origin = origin
        self._on_unknown_id = on_unknown_id
        self.clear()

    # -- set-up and inspection -----------------------------------------------------------

    def clear(self) -> None:
        """Forget every record, job and script."""
        self._records: dict[str, _Record] = {}
        self._jobs: dict[str, _Job] = {}
        self._scripts: dict[str, Script] = {}
        self._counters: dict[str, _Counters] = {}
        self._seq = 0
        self._population: Population | None = None

    def populate(self, population: Population | None) -> None:
        """Hold ``population``'s generated records besides the ordinary ones (None: none)."""
        self._population = population

    @property
    def population(self) -> Population | None:
        """The generated records, if any (grow it to add arrivals)."""
        return self._population

    def script(self, download_id: str, script: Script) -> None:
        """Script ``download_id`` (restarting its counters); add its record if it has none."""
        self._scripts[download_id] = script
        self._counters[download_id] = _Counters()
        if download_id not in self._records:
            self.add(download_id, "error", None, None)

    def add(self, download_id: str, status: str, name: str | None, created_at: datetime | str | None) -> None:
        """Add (or replace) a download record, as ``GET /download`` will list it."""
        if status not in DOWNLOAD_STATUSES:
            raise ValueError(f"download status {status!r} is not processing, done or error")
        self._add_record(download_id, status, name, created_at)

    def view(self, download_id: str) -> dict[str, Any] | None:
        """The download record as ``GET /download/{id}`` shows it now, or None."""
        record = self._records.get(download_id)
        if record is None and self._population is not None:
            index = self._population.index_of(download_id)
            return self._population.view(index) if index is not None else None
        return self._record_view(record) if record else None

    def delay_of(self, download_id: str | None = None, job_id: str | None = None) -> float:
        """The scripted delay of answers about a download (or about one of its jobs)."""
        if job_id is not None:
            job = self._jobs.get(job_id)
            download_id = job.download_id if job else None
        script = self._scripts.get(download_id) if download_id else None
        return script.delay_seconds if script else 0.0

    # -- the endpoints -------------------------------------------------------------------

    def retry(self, download_id: str) -> Answer:
        """``POST /download/{id}``: start a retry job (or answer as scripted)."""
        record = self._record_or_first_sight(download_id)
        if record is None:
            return error_answer(404, f"Download {download_id} not found")
        script = self._scripts.get(download_id, Script())
        counters = self._counters.setdefault(download_id, _Counters())
        status = scripted_status(script.retry_status, script.retry_status_times, counters, "retry_status")
        if status is not None:
            return scripted_error(status, script, "retry")
        if counters.malformed < script.malformed_json_times:
            counters.malformed += 1
            return Answer(200, MALFORMED_BODY)
        self._settle(record)
        if record.status != "error" and script.not_failed_retry_status is not None:
            return error_answer(
                script.not_failed_retry_status,
                f"Download {download_id} is {record.status}; only a download in error status can be retried",
            )
        job = self._new_job(record, script, counters)
        if script.answer_done_at_once or script.answer_failed_at_once:
            # The job ends inside the POST; the answer and the record show its end.
            job.ends_at = self._clock()
            if script.answer_failed_at_once:
                job.outcome = "failed"
            self._settle(record)
            job_status = job.outcome
        else:
            # Processing even when processing_seconds is 0: the first poll sees the end.
            record.status, record.download_url = "processing", ""
            job_status = "processing"
        return Answer(200, self._render("retry", job_status, job, script))

    def poll(self, job_id: str) -> Answer:
        """``GET /async-response/{id}``: the job's state (or the scripted error)."""
        job = self._jobs.get(job_id)
        if job is None:
            return error_answer(404, f"Async response {job_id} not found")
        script = self._scripts.get(job.download_id, Script())
        counters = self._counters.setdefault(job.download_id, _Counters())
        status = scripted_status(script.poll_status, script.poll_status_times, counters, "poll_status")
        if status is not None:
            return scripted_error(status, script, "async-response")
        job_status = self._job_status(job)
        record = self._records.get(job.download_id)
        if record is not None:
            self._settle(record)
        return Answer(200, self._render("poll", job_status, job, script))

    def get(self, download_id: str) -> Answer:
        """``GET /download/{id}``: the download record, in the script's shape."""
        record = self._record_or_first_sight(download_id)
        if record is None:
            return error_answer(404, f"Download {download_id} not found")
        view = self._record_view(record)
        script = self._scripts.get(download_id, Script())
        if script.shape.get_form == "record":
            return Answer(200, {"success": True, "data": view})
        # The docs' sample: an AsyncResponse about the download's latest job (or itself).
        job = self._jobs.get(record.last_job_id or "") or _Job(
            id=download_id,
            download_id=download_id,
            name=record.name,
            outcome="done",
            ends_at=None,
            output_url=f"{self._origin()}/download/{quote(download_id, safe='')}",
            download_url=record.download_url,
        )
        status = {"processing": "processing", "done": "done", "error": "failed"}[view["status"]]
        return Answer(200, self._render("get", status, job, script))

    def page(self, query: dict[str, str]) -> Answer:
        """``GET /download``: one page of the records, newest first (or as the population says)."""
        try:
            page_index = int(query.get("page_index", 0))
            count = int(query.get("count", DEFAULT_PAGE_COUNT))
        except ValueError:
            return error_answer(400, "page_index and count must be integers")
        if page_index < 0 or not 1 <= count <= MAX_PAGE_COUNT:
            return error_answer(400, f"page_index must be >= 0 and count between 1 and {MAX_PAGE_COUNT}")
        start, population = page_index * count, self._population
        newest_first = population is None or population.order == NEWEST_FIRST
        ordinary = sorted(self._records.values(), key=lambda r: (r.created_at, r.seq), reverse=newest_first)
        if population is None:
            views = [self._record_view(r) for r in ordinary[start : start + count]]
        else:
            merged = merged_page(ordinary, lambda r: r.created_at, population, start, count)
            views = [
                population.view(item) if isinstance(item, int) else self._record_view(item) for item in merged
            ]
        return Answer(200, {"success": True, "data": {"downloads": views}})

    def create(self, body: bytes) -> Answer:
        """``POST /download``: a new download of ``stream_link``, processing from the start."""
        payload = _json_object(body) or {}
        stream_link = payload.get("stream_link")
        if not isinstance(stream_link, str) or not stream_link:
            return error_answer(400, "stream_link is required")
        name = payload.get("name") if isinstance(payload.get("name"), str) else None
        download_id = f"download-{uuid.uuid4().hex[:12]}"
        record = self._add_record(download_id, "processing", name, None)
        job = self._new_job(record, Script(), self._counters.setdefault(download_id, _Counters()))
        data = {"id": job.id, "output_url": job.output_url}
        return Answer(200, {"success": True, "status": "processing", "data": data})

    def delete(self, query: dict[str, str], body: bytes) -> Answer:
        """``DELETE /download``: forget one download record."""
        # The spec puts the id in the query; the docs' example sends it in a JSON body.
        download_id = query.get("download_id") or (_json_object(body) or {}).get("download_id")
        if not isinstance(download_id, str) or not download_id:
            return error_answer(400, "download_id is required")
        if self._records.pop(download_id, None) is None and not self._take_generated(download_id):
            return error_answer(404, f"Download {download_id} not found")
        return Answer(200, {"success": True, "message": f"Download {download_id} deleted"})

    # -- state ---------------------------------------------------------------------------

    def _take_generated(self, download_id: str) -> bool:
        """Take a generated record out of the generated list; False if it is not in it."""
        index = self._population.index_of(download_id) if self._population is not None else None
        if index is None or self._population is None:
            return False
        self._population.taken.add(index)
        return True

    def _record_or_first_sight(self, download_id: str) -> _Record | None:
        """The id's record; an id without one is scripted if ``on_unknown_id`` says so."""
        record = self._records.get(download_id)
        if record is None and self._population is not None:
            index = self._population.index_of(download_id)
            if index is not None:
                # From now on an ordinary record: its retries, jobs and status live here.
                self._take_generated(download_id)
                view = self._population.view(index)
                record = self._add_record(
                    download_id, str(view["status"]), None, self._population.created(index)
                )
        if record is None and self._on_unknown_id is not None:
            script = self._on_unknown_id(download_id)
            if script is not None:
                self.script(download_id, script)
                record = self._records[download_id]
        return record

    def _render(self, kind: Kind, status: str, job: _Job, script: Script) -> dict[str, Any]:
        record = self._records.get(job.download_id)
        created = record.created_at if record else datetime.now(UTC)
        facts = JobFacts(
            job_id=job.id,
            output_url=job.output_url,
            download_id=job.download_id,
            name=job.name,
            download_url=job.download_url,
            failure_message=script.failure_message,
            created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        return render(kind, status, facts, script.shape, script.status_spelling or {})

    def _new_job(self, record: _Record, script: Script, counters: _Counters) -> _Job:
        counters.jobs += 1
        job_id = f"job-{uuid.uuid4()}"
        origin = (script.output_origin or self._origin()).rstrip("/")
        now = self._clock()
        job = _Job(
            id=job_id,
            download_id=record.id,
            name=record.name,
            outcome="failed" if counters.jobs <= script.fail_times else "done",
            ends_at=None if script.never_finishes else now + script.processing_seconds,
            output_url=f"{origin}/async-response/{job_id}",
            download_url=_file_url(record.id, record.name),
        )
        self._jobs[job_id] = job
        record.job_id = record.last_job_id = job_id
        return job

    def _add_record(
        self, download_id: str, status: str, name: str | None, created_at: datetime | str | None
    ) -> _Record:
        self._seq += 1
        record = _Record(
            id=download_id,
            name=name or f"{download_id}.mp4",
            status=status,
            created_at=_as_utc(created_at),
            seq=self._seq,
        )
        if status == "done":
            record.download_url = _file_url(download_id, record.name)
        self._records[download_id] = record
        return record

    def _job_status(self, job: _Job) -> str:
        if job.ends_at is None or self._clock() < job.ends_at:
            return "processing"
        return job.outcome

    def _settle(self, record: _Record) -> None:
        """Once the record's latest job has ended, the record shows its end (once)."""
        job = self._jobs.get(record.job_id) if record.job_id else None
        if job is None or self._job_status(job) == "processing":
            return
        if job.outcome == "done":
            record.status, record.download_url = "done", job.download_url
        else:
            record.status, record.download_url = "error", ""
        record.job_id = None

    def _record_view(self, record: _Record) -> dict[str, Any]:
        self._settle(record)
        return {
            "id": record.id,
            "name": record.name,
            "status": record.status,
            "download_url": record.download_url,
            "created_at": record.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _file_url(download_id: str, name: str) -> str:
    # `.invalid` never resolves: nothing may fetch it. Like VideoDB's, the URL expires in 24 h.
    expires = int((datetime.now(UTC) + timedelta(hours=24)).timestamp())
    return f"https://files.sandbox.invalid/{download_id}/{name}?expires={expires}"


def _as_utc(value: datetime | str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
