"""What one run of a scenario did, counted the same way by the capacity model and the emulated stack.

The calibration runs one scenario through both and compares two ``Counts``: every count must
agree exactly, and the drain time within a tolerance (``differences`` reports all fields; the
caller decides which of them may differ).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# The ``dead_letters`` key of a message SQS moved to the DLQ itself (maxReceiveCount): it
# carries no error_code attribute, unlike the ones the functions send with their reason.
REDRIVEN = "redrive"


@dataclass(frozen=True)
class Counts:
    """Counts of one scenario's run, on either side of the calibration."""

    posts: int  # POST /download/{id} requests VideoDB received
    polls: int  # GET output_url requests VideoDB received
    executions: int  # workflow executions started
    transitions: int  # billed state transitions, all executions (as Step Functions bills them)
    outcome_events: dict[str, int]  # detail-type -> count ("Download Retry Succeeded", ...)
    dead_letters: dict[str, int]  # error_code attribute of DLQ messages -> count
    drain_seconds: float  # from the first message sent to the last outcome/dead letter, virtual time

    def differences(self, other: Counts) -> list[str]:
        """Every field whose value differs from ``other``'s, one readable line each ("name: a != b")."""
        return [
            f"{field.name}: {_shown(getattr(self, field.name))} != {_shown(getattr(other, field.name))}"
            for field in fields(self)
            if _normal(getattr(self, field.name)) != _normal(getattr(other, field.name))
        ]

    def to_dict(self) -> dict[str, Any]:
        """The counts as JSON-ready data (dictionaries sorted by key), for ``bench/scale.json``."""
        return {field.name: _normal(getattr(self, field.name)) for field in fields(self)}


def _normal(value: object) -> object:
    # A zero count and a missing key mean the same thing: compare dictionaries without zeros.
    if isinstance(value, dict):
        return {key: value[key] for key in sorted(value) if value[key]}
    return value


def _shown(value: object) -> str:
    return repr(_normal(value))
