"""Back-off: doubles from the first delay to the cap, jittered within the step, resettable."""

from __future__ import annotations

import pytest

from shared.backoff import Backoff


def test_delays_double_up_to_the_cap_with_jitter_inside_each_step() -> None:
    backoff = Backoff(first_s=0.1, cap_s=1.0)
    steps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for step in steps:
        delay = backoff.next_delay()
        assert step / 2 <= delay <= step
    assert backoff.failures == len(steps)


def test_jitter_spreads_replicas_that_failed_together() -> None:
    delays = {Backoff(first_s=1.0, cap_s=1.0).next_delay() for _ in range(50)}
    assert len(delays) > 40


def test_reset_starts_again_from_the_first_delay() -> None:
    backoff = Backoff(first_s=0.1, cap_s=10.0)
    for _ in range(100):
        backoff.next_delay()
    assert backoff.next_delay() <= 10.0
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_a_first_delay_above_the_cap_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(first_s=2.0, cap_s=1.0)
