"""Realistic helpdesk traffic: calls arriving at random, operators taking breaks.

Arrivals are a Poisson process (``calls_per_minute``), each call's flow is drawn from
a weighted mix of the scenarios, callers from the configured customers (some with a
withheld number), and now and then a free operator pauses with a reason (lunch,
training, ...) for a few minutes. Everything runs on the PBX scheduler, so the same
seed gives the same day, and a test drives a whole hour on a ``Clock`` in no time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from twisted.internet.interfaces import IDelayedCall

from .pbx import Scheduler

__all__ = ["DEFAULT_MIX", "PAUSE_REASONS", "Traffic"]

DEFAULT_MIX: Mapping[str, float] = {
    "queue_answered": 44,
    "queue_abandoned": 10,
    "ring_no_answer": 8,
    "busy_then_answered": 4,
    "direct_answered": 10,
    "direct_missed": 5,
    "blind_transfer": 7,
    "attended_transfer": 5,
    "queue_timeout": 3,
    "withheld": 4,
}

PAUSE_REASONS = ("Lunchpauze", "Opleiding", "Administratie", "Coaching", "Koffiepauze")


class Traffic:
    def __init__(
        self,
        sched: Scheduler,
        rng: random.Random,
        place: Callable[[str, tuple[str, str]], object],
        customers: Sequence[tuple[str, str]],
        *,
        calls_per_minute: float,
        mix: Mapping[str, float] | None = None,
        pause: Callable[[random.Random], Callable[[], None] | None] | None = None,
        pause_every: float = 600.0,
    ) -> None:
        if calls_per_minute <= 0:
            raise ValueError("calls_per_minute must be positive")
        if not customers:
            raise ValueError("traffic needs at least one customer")
        self.sched = sched
        self.rng = rng
        self.place = place
        self.customers = list(customers)
        self.rate = calls_per_minute / 60.0
        weights = dict(mix or DEFAULT_MIX)
        self.scenarios = [name for name, w in weights.items() if w > 0]
        self.weights = [weights[name] for name in self.scenarios]
        if not self.scenarios:
            raise ValueError("the traffic mix has no scenario with a positive weight")
        self.pause = pause
        self.pause_every = pause_every
        self.placed = 0
        self._next: IDelayedCall | None = None
        self._next_pause: IDelayedCall | None = None
        self.running = False

    def start(self) -> None:
        if self.running:
            return
        self.running = True
        self._schedule_call()
        if self.pause is not None:
            self._schedule_pause()

    def stop(self) -> None:
        self.running = False
        self.sched.cancel(self._next)
        self.sched.cancel(self._next_pause)

    def _schedule_call(self) -> None:
        self._next = self.sched.later(self.rng.expovariate(self.rate), self._arrive)

    def _arrive(self) -> None:
        if not self.running:
            return
        scenario = self.rng.choices(self.scenarios, self.weights)[0]
        caller = self.rng.choice(self.customers)
        self.placed += 1
        self.place(scenario, caller)
        self._schedule_call()

    def _schedule_pause(self) -> None:
        self._next_pause = self.sched.later(
            self.rng.expovariate(1.0 / self.pause_every), self._take_break
        )

    def _take_break(self) -> None:
        if not self.running or self.pause is None:
            return
        resume = self.pause(self.rng)
        if resume is not None:
            self.sched.later(self.rng.uniform(60.0, 420.0), resume)
        self._schedule_pause()
