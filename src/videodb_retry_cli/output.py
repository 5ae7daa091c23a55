"""Plain-text tables, JSON, durations, timestamps and progress for the commands' output."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """An aligned text table; columns whose index is in ``right`` are right-aligned (numbers).

    The last column is not padded, so long error texts do not leave trailing blanks.
    """
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            if i == len(row) - 1:
                parts.append(cell.rjust(widths[i]) if i in right else cell)
            else:
                parts.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def print_json(value: Any, stream: TextIO | None = None) -> None:
    """``value`` as indented JSON (what scripts read with ``--json``)."""
    print(json.dumps(value, indent=2, default=str), file=stream or sys.stdout)


def shorten(text: str | None, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with ``...`` when longer."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 3)] + "..."


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s`` or ``2h01m``; empty when unknown."""
    if seconds is None:
        return ""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    return f"{total // 3600}h{total % 3600 // 60:02d}m"


def iso_time(value: datetime | float | int | None) -> str | None:
    """An ISO 8601 UTC timestamp (``2025-06-01T12:00:05Z``) from epoch seconds or a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(float(value), tz=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Progress:
    """``sent 30/250`` on stderr: rewritten in place on a terminal, one line per step otherwise."""

    def __init__(self, total: int, label: str, enabled: bool, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown = False

    def update(self, done: int) -> None:
        """Show that ``done`` of ``total`` items are handled."""
        if not self.enabled:
            return
        text = f"{self.label} {done}/{self.total}"
        if self._tty:
            self.stream.write("\r" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        """End the in-place line so later output starts on a fresh one."""
        if self.enabled and self._tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
