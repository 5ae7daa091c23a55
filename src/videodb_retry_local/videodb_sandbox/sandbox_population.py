"""A large account's downloads, generated from their index: a million records cost nothing.

Record ``j`` (0 is the oldest) is computed when a page needs it: its id, ``created_at``
(``spacing`` apart, the newest at ``newest``) and status (every ``error_every``-th is in
``error``). New downloads arrive with :meth:`Population.grow`, newer than all before. The
list order is ``newest-first`` (as the sandbox lists its other records) or ``oldest-first``
(VideoDB's order is undocumented: the sweeper must be right either way). A generated record
that a request touches (retry, get, delete) becomes an ordinary sandbox record, so every
endpoint answers it as before; :attr:`Population.taken` hides it from the generated list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

NEWEST_FIRST = "newest-first"
OLDEST_FIRST = "oldest-first"
ORDERS = (NEWEST_FIRST, OLDEST_FIRST)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass
class Population:
    """``count`` generated download records (see the module's docstring)."""

    count: int
    newest: datetime  # created_at of the newest record (index count - 1), aware UTC
    spacing: timedelta = timedelta(seconds=30)
    error_every: int = 50
    order: str = NEWEST_FIRST
    prefix: str = "gen-"
    taken: set[int] = field(default_factory=set)  # indices now held as ordinary records

    def __post_init__(self) -> None:
        if self.count < 0 or self.error_every < 1 or self.spacing <= timedelta(0):
            raise ValueError("count >= 0, error_every >= 1 and a positive spacing")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}")

    def grow(self, arrivals: int) -> None:
        """``arrivals`` new downloads, each ``spacing`` after the newest before it."""
        self.count += arrivals
        self.newest += self.spacing * arrivals

    def created(self, index: int) -> datetime:
        """When record ``index`` was created."""
        return self.newest - self.spacing * (self.count - 1 - index)

    def status(self, index: int) -> str:
        """Every ``error_every``-th record is in error; the rest done, some processing."""
        if index % self.error_every == 0:
            return "error"
        return "processing" if index % 7 == 3 else "done"

    def download_id(self, index: int) -> str:
        """The record's id: the prefix and the index, fixed width."""
        return f"{self.prefix}{index:07d}"

    def index_of(self, download_id: str) -> int | None:
        """The index of a generated id still in the list, else None."""
        digits = download_id[len(self.prefix) :]
        if not download_id.startswith(self.prefix) or not digits.isdigit() or len(digits) < 7:
            return None
        index = int(digits)
        if index >= self.count or index in self.taken or self.download_id(index) != download_id:
            return None
        return index

    def view(self, index: int) -> dict[str, object]:
        """The record as ``GET /download`` lists it."""
        download_id = self.download_id(index)
        status = self.status(index)
        url = f"https://files.sandbox.invalid/{download_id}/{download_id}.mp4" if status == "done" else ""
        return {
            "id": download_id,
            "name": f"{download_id}.mp4",
            "status": status,
            "download_url": url,
            "created_at": self.created(index).strftime(TIME_FORMAT),
        }

    def listed(self) -> int:
        """How many generated records the list holds."""
        return self.count - len(self.taken)

    def ahead_of(self, when: datetime) -> int:
        """How many listed generated records come before an ordinary record created ``when``.

        Newest first, generated records created after ``when`` come before it; oldest first,
        those created at or before it. At equal times a generated record is the older.
        """
        # created(j) > when  <=>  j > count - 1 - steps
        steps = (self.newest - when) / self.spacing
        first_newer = 0 if steps <= 0 else max(0, math.floor(self.count - 1 - steps) + 1)
        newer = 0 if steps <= 0 else self.count - min(first_newer, self.count)
        newer_taken = sum(1 for index in self.taken if self.created(index) > when)
        if self.order == NEWEST_FIRST:
            return newer - newer_taken
        return self.listed() - (newer - newer_taken)

    def from_position(self, position: int) -> Iterator[int]:
        """Indices of listed generated records from list position ``position`` on, in order."""
        step = -1 if self.order == NEWEST_FIRST else 1
        start = self.count - 1 if step == -1 else 0
        index = start + step * position
        while True:  # taken indices before the position push it on (there are few)
            skipped = sum(1 for taken in self.taken if 0 <= (taken - start) * step <= (index - start) * step)
            moved = start + step * (position + skipped)
            if moved == index:
                break
            index = moved
        while 0 <= index < self.count:
            if index not in self.taken:
                yield index
            index += step


def merged_page[Record](
    ordinary: list[Record],
    created_of: Callable[[Record], datetime],
    population: Population,
    start: int,
    count: int,
) -> list[Record | int]:
    """List positions ``start`` to ``start + count`` of ``ordinary`` (already in the
    population's order) merged with the generated records (as indices): only the page's
    generated records are made. At equal times a generated record is the older."""
    newest_first = population.order == NEWEST_FIRST
    # An ordinary record's position is its rank among them plus the generated ahead of it.
    before = sum(1 for k, r in enumerate(ordinary) if k + population.ahead_of(created_of(r)) < start)
    records = iter(ordinary[before:])
    generated = population.from_position(start - before)
    record, index = next(records, None), next(generated, None)
    page: list[Record | int] = []
    while len(page) < count and (record is not None or index is not None):
        if record is not None and (
            index is None or _comes_first(created_of(record), population.created(index), newest_first)
        ):
            page.append(record)
            record = next(records, None)
        elif index is not None:
            page.append(index)
            index = next(generated, None)
    return page


def _comes_first(ordinary: datetime, generated: datetime, newest_first: bool) -> bool:
    """Whether an ordinary record created ``ordinary`` is listed before a generated one."""
    return ordinary >= generated if newest_first else ordinary < generated
