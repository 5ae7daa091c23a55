"""Where the sweeper's listing pass stands between runs, and how a resumed page is judged.

A *pass* reads ``GET /download`` from page 0 until it is done: at the look-back edge when the
pages are newest-first, else at the list's end. One run reads a bounded number of pages; a
pass that needs more runs is resumed from this cursor (stored by a
:class:`~videodb_retry.ports.SweepCursors` adapter). Pure: no AWS, no clock.

Why resuming misses nothing while the list shifts under it (new downloads arrive, old ones are
deleted): a run re-reads the last page it finished (one page of overlap), and that page must
still hold the *anchor*, the last record the pass read, or (newest-first) start with a record
newer than it. New downloads at the head only push the anchor further down, so the re-read
starts at or before it; deletions pull it up by at most a page before the check fails. When
the check fails the pass starts again from page 0: more listing, never a gap. Records read
twice are harmless, each failure's claim (sweeper.py) publishes it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Anchor:
    """The last record a pass read: its id and ``created_at`` as VideoDB listed them."""

    download_id: str
    created: datetime | None  # None when VideoDB gave no readable created_at


@dataclass(frozen=True)
class SweepCursor:
    """The pass in progress (if any) and what the last run did (for ``videodb-retry check``)."""

    next_page: int = 0  # the first page the pass has not finished
    pass_started: datetime | None = None  # None: no pass in progress, the next run starts one
    anchor: Anchor | None = None
    newest_first: bool = True  # every page of the pass so far listed newest first
    descended: bool = False  # ...and a record older than one before it was seen
    # The last run: when it ended and its counts (SweepReport as a dict).
    last_run_at: datetime | None = None
    last_run: dict[str, Any] = field(default_factory=dict)

    @property
    def in_pass(self) -> bool:
        """True while a pass is unfinished (the next run resumes it)."""
        return self.pass_started is not None

    def resume_page(self) -> int:
        """The page a run starts on: page 0 for a new pass, else the last finished page again."""
        return max(self.next_page - 1, 0) if self.in_pass else 0

    def advanced(
        self, page: int, anchor: Anchor | None, newest_first: bool, descended: bool, started: datetime
    ) -> SweepCursor:
        """After page ``page`` was read in full (``anchor``: its last record)."""
        return replace(
            self,
            next_page=page + 1,
            pass_started=self.pass_started or started,
            anchor=anchor,
            newest_first=newest_first,
            descended=descended,
        )

    def pass_done(self) -> SweepCursor:
        """The pass ended (or cannot be resumed safely): the next page read is page 0."""
        return replace(self, next_page=0, pass_started=None, anchor=None, newest_first=True, descended=False)

    def ran(self, at: datetime, report: dict[str, Any]) -> SweepCursor:
        """The run ended at ``at`` with ``report``."""
        return replace(self, last_run_at=at, last_run=dict(report))


def resumed_page_holds_anchor(
    anchor: Anchor | None,
    ids: list[str],
    first_created: datetime | None,
    newest_first: bool,
) -> bool:
    """Whether a re-read page starts at or before the anchor (so nothing after it is skipped).

    ``ids`` are the page's download ids in order and ``first_created`` its first record's
    ``created_at``. The anchor in the page proves it in any order; in newest-first order a
    first record strictly newer than the anchor proves it too (new downloads at the head
    pushed the anchor further down). Equal times prove nothing: ties have no known order.
    """
    if anchor is None:
        return True
    if anchor.download_id in ids:
        return True
    if not newest_first or first_created is None or anchor.created is None:
        return False
    return first_created > anchor.created
