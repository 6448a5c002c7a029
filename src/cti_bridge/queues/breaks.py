"""How long each operator has worked without a break, and when to remind them (pure).

On duty is taking calls: ``available``, ``ringing``, ``on_call``, ``wrap_up``. Off duty is
``paused`` (any reason) or ``unavailable`` (logged out, phone off). A **break** is an off
stretch of at least ``break_seconds`` (``[workload] break_minutes``): it ends the duty
stretch, and the next one starts when the operator is on duty again. A shorter pause (a
coffee at the desk) is no break: its minutes count as worked. An operator the PBX says
nothing about (the link is down, no device known) is neither: a lost link is no break.

The board's ``since`` says when a state began, so a break is measured from the state
changes themselves (``observe`` at every change), not from the once-a-minute check.
``due(at)`` says who passed ``after_seconds`` on duty: once per full period (at 120,
240, ... minutes without a break), never while off duty.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ON_DUTY", "BreakWatch", "Reminder"]

ON_DUTY = frozenset({"available", "ringing", "on_call", "wrap_up"})
_OFF_DUTY = frozenset({"paused", "unavailable"})


@dataclass(frozen=True, slots=True)
class Reminder:
    operator: str
    on_duty_minutes: int


@dataclass(slots=True)
class _Duty:
    on_duty_since: float | None  # start of the stretch without a break; None: in a break
    off_since: float | None  # off duty since (a pause or absence under way)
    reminded: int = 0  # reminders sent in this stretch


class BreakWatch:
    def __init__(self, after_seconds: float, break_seconds: float):
        self.after_seconds = after_seconds
        self.break_seconds = break_seconds
        self._duty: dict[str, _Duty] = {}

    def observe(self, operator: str, state: str | None, since: float) -> None:
        """The operator's state now (over every PBX) and when it began; ``None``: not
        known on any PBX (ignored)."""
        if state is None:
            return
        off = state in _OFF_DUTY
        if not off and state not in ON_DUTY:
            return
        duty = self._duty.get(operator)
        if duty is None:
            self._duty[operator] = _Duty(None if off else since, since if off else None)
            return
        if off:
            if duty.off_since is None:
                duty.off_since = since
            return
        if duty.off_since is not None:
            if since - duty.off_since >= self.break_seconds:
                duty.on_duty_since, duty.reminded = None, 0
            duty.off_since = None
        if duty.on_duty_since is None:
            duty.on_duty_since, duty.reminded = since, 0

    def operators(self) -> list[str]:
        return sorted(self._duty)

    def forget(self, operator: str) -> None:
        self._duty.pop(operator, None)

    def on_duty_seconds(self, operator: str, at: float) -> float | None:
        duty = self._duty.get(operator)
        if duty is None or duty.on_duty_since is None:
            return None
        return max(0.0, at - duty.on_duty_since)

    def due(self, at: float) -> list[Reminder]:
        """The reminders to send now, by operator; each one once."""
        found: list[Reminder] = []
        for operator in sorted(self._duty):
            duty = self._duty[operator]
            if duty.off_since is not None:
                if at - duty.off_since >= self.break_seconds:
                    duty.on_duty_since, duty.reminded = None, 0  # a break under way
                continue
            if duty.on_duty_since is None or self.after_seconds <= 0:
                continue
            worked = at - duty.on_duty_since
            if worked >= self.after_seconds * (duty.reminded + 1):
                duty.reminded = int(worked // self.after_seconds)
                found.append(Reminder(operator, int(worked // 60)))
        return found
