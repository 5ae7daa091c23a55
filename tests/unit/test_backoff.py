import random

import pytest
from videodb_retry.rules.backoff import exponential_wait


def test_grows_by_the_factor_without_jitter():
    waits = [exponential_wait(step, 5, 1.5, 120, jitter=0) for step in range(5)]
    assert waits == [5, 8, 11, 17, 25]


def test_capped():
    assert exponential_wait(40, 5, 2, 120, jitter=0) == 120
    assert exponential_wait(10_000, 5, 2, 120, jitter=0) == 120


def test_jitter_stays_within_bounds_and_cap():
    rng = random.Random(7)
    waits = {exponential_wait(3, 10, 2, 60, jitter=0.2, rng=rng) for _ in range(200)}
    assert min(waits) >= 64 * 0 + 48 and max(waits) <= 60
    assert len(waits) > 1


def test_never_below_one_second():
    assert exponential_wait(0, 0.1, 1, 10, jitter=0.5) == 1


def test_negative_step_refused():
    with pytest.raises(ValueError):
        exponential_wait(-1, 1, 2, 10)
