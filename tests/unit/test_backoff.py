"""The one back-off policy (``cti_bridge.backoff``): pure, with its random source injected."""

from __future__ import annotations

import random

from cti_bridge.backoff import Backoff


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_doubling_capped_and_jittered_below_the_cap() -> None:
    full = Backoff(initial=0.5, factor=2.0, cap=4.0, jitter=0.5, rng=Fixed(0.0))
    assert [full.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    most = Backoff(initial=0.5, factor=2.0, cap=4.0, jitter=0.5, rng=Fixed(1.0))
    assert [most.delay(n) for n in range(1, 5)] == [0.25, 0.5, 1.0, 2.0]
    assert full.delay(0) == 0.5, "no failure yet: the first delay"


def test_refused_delay_is_long_and_jittered_alike() -> None:
    backoff = Backoff(auth_failure=60.0, jitter=0.25, rng=random.Random(1))
    delays = [backoff.auth_delay() for _ in range(100)]
    assert all(45.0 <= d <= 60.0 for d in delays)
    assert len(set(delays)) == 100


def test_the_ami_client_uses_this_policy() -> None:
    from cti_bridge.ami.client import Backoff as AMIBackoff

    assert AMIBackoff is Backoff
