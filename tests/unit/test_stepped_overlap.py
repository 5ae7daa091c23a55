"""Overlapping invocations in the calibration's stepped runs (capacity.stepped_stack).

There the emulated runtime lifts its one-invocation-at-a-time lock, so handlers share the
layer's module-level Powertools metric set. A flush (iterate, then clear) that met another
invocation's count raised ``RuntimeError: dictionary changed size during iteration`` in a poll
handler on a loaded CI machine: the workflow settled it as a failed attempt and the calibration
counts were one outcome off. These tests hold a flush open and count meanwhile.
"""

from __future__ import annotations

import threading
from unittest import mock

from videodb_retry import observability

from videodb_retry_local.load.capacity.stepped_stack import _metrics_flushed_under_the_count_lock

BOUND_S = 10.0  # real-time bound of every wait (never reached when the test passes)


def _flush_held_open_while_counting() -> dict[str, object]:
    """Start a flush that pauses inside its iteration, count ``Overlap`` from another thread,
    let the flush finish; return the metric set left afterwards."""
    provider = observability.metrics.provider
    serialize = provider.serialize_metric_set
    inside, release = threading.Event(), threading.Event()

    def paused_serialize(*args: object, **kwargs: object) -> object:
        inside.set()
        release.wait(BOUND_S)
        return serialize(*args, **kwargs)

    provider.metric_set.clear()
    observability.count("Before")
    with mock.patch.object(provider, "serialize_metric_set", paused_serialize):
        flusher = threading.Thread(target=provider.flush_metrics, daemon=True)
        flusher.start()
        assert inside.wait(BOUND_S)
        counter = threading.Thread(target=observability.count, args=("Overlap",), daemon=True)
        counter.start()
        counter.join(0.2)  # with the lock it waits for the flush; without, it adds now
        release.set()
        flusher.join(BOUND_S)
        counter.join(BOUND_S)
    left = dict(provider.metric_set)
    provider.metric_set.clear()
    return left


def test_a_count_made_during_a_flush_is_kept_for_the_next_flush() -> None:
    patches = _metrics_flushed_under_the_count_lock(observability)
    with mock.patch.object(*patches[0]), mock.patch.object(*patches[1]):
        left = _flush_held_open_while_counting()
    # The flush took "Before" out; "Overlap" waited for it and is in the next flush.
    assert set(left) == {"Overlap"}


def test_the_patches_are_the_count_lock_and_the_flush() -> None:
    patches = _metrics_flushed_under_the_count_lock(observability)
    assert [(target, name) for target, name, _ in patches] == [
        (observability, "_metrics_lock"),
        (observability.metrics.provider, "flush_metrics"),
    ]
