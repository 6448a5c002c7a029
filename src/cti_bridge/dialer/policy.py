"""When the next callback attempt may be dialled, and who may be rung for it.

Pure: no clock, no reactor, no storage. "Now" and every instant are aware datetimes
handed in, so the whole policy is a table of cases in the tests. The rules and formulas
are in docs/dialer.md.

Calling hours are wall-clock times in the *customer's* zone (the site's when the customer
has none). A wall-clock range becomes instants exactly, also on a daylight-saving day:
the day is cut where the zone's offset changes and each piece is mapped with its own
offset, so a range that starts at a time that does not exist (02:30 on the spring-forward
day) opens when the clock jumps, and a time that happens twice (02:30 on the fall-back
day) is inside the range both times.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

from cti_bridge.callbacks import Attempt  # the store builds them too

__all__ = [
    "DAYS",
    "Agreement",
    "Attempt",
    "Decision",
    "Dial",
    "InProgress",
    "OperatorState",
    "Over",
    "Policy",
    "Range",
    "business_deadline",
    "decide",
    "holiday_calendar",
    "next_allowed",
    "parse_hours",
    "site_day",
    "who_may_ring",
]

#: The weekdays as ``[dialer.hours]`` names them, Monday first (``date.weekday()``).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: A calling range of one day in minutes after local midnight, end exclusive (0..1440).
Range = tuple[int, int]

#: How far ahead the walk looks for a callable instant before it gives up.
HORIZON_DAYS = 400

_UTC = UTC
_RANGE = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def parse_hours(text: str) -> tuple[Range, ...]:
    """``"08:00-12:00,13:00-18:00"`` → ``((480, 720), (780, 1080))``; ``"00:00-24:00"`` is
    the whole day, ``""`` none. Ranges must be increasing and must not overlap."""
    ranges: list[Range] = []
    for part in (p.strip() for p in text.split(",")) if text.strip() else ():
        match = _RANGE.match(part)
        if match is None:
            raise ValueError(f"{part!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 24 or (h2 == 24 and m2):
            raise ValueError(f"{part!r} is not a time of day (00:00 to 24:00)")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start >= end:
            raise ValueError(f"{part!r} ends before it starts")
        if ranges and start < ranges[-1][1]:
            raise ValueError(f"{part!r} overlaps or precedes the range before it")
        ranges.append((start, end))
    return tuple(ranges)


@lru_cache(maxsize=16)
def holiday_calendar(country: str) -> Container[date]:
    """The public holidays of ``country`` (a code the ``holidays`` package knows); ``""`` is
    none. Raises ``ValueError`` for a country the package does not know."""
    if not country:
        return frozenset()
    if country.upper() not in holidays.list_supported_countries():
        raise ValueError(f"{country!r} is not a country the holidays package knows")
    calendar: Container[date] = holidays.country_holidays(country.upper())
    return calendar


@dataclass(frozen=True, slots=True)
class Policy:
    """The ``[dialer]`` settings the decision needs."""

    #: Calling ranges per weekday, Monday first; an empty tuple is a day without calls.
    hours: tuple[tuple[Range, ...], ...]
    timezone: str = "Europe/Brussels"
    #: A date → holiday? container (``holiday_calendar(country)``).
    holidays: Container[date] = frozenset()
    max_attempts: int = 3
    retry_seconds: tuple[float, ...] = (600.0, 1800.0)
    owner_grace_seconds: float = 900.0

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise ValueError("hours needs seven days, Monday first")
        if not self.retry_seconds or min(self.retry_seconds) <= 0:
            raise ValueError("retry_seconds needs at least one positive value")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def retry_before(self, number: int) -> timedelta:
        """The wait before attempt ``number`` (2, 3, …) after the previous one ended."""
        index = min(max(number - 2, 0), len(self.retry_seconds) - 1)
        return timedelta(seconds=self.retry_seconds[index])


@dataclass(frozen=True, slots=True)
class Agreement:
    """What the policy reads of a callback agreement. All instants aware."""

    #: When the callback first falls due (the grace for other operators counts from it).
    due: datetime
    deadline: datetime
    owner: str | None = None
    queue: str | None = None
    #: The customer's IANA zone; ``None`` is the site's (``Policy.timezone``).
    timezone: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class OperatorState:
    """An operator as the queues room sees them now."""

    operator: str
    state: str
    queues: frozenset[str] = field(default_factory=frozenset)
    #: Since when in this state: the longest available is asked first.
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Dial:
    """Attempt ``number`` may be dialled at ``at`` (``at == now``: dial now)."""

    number: int
    at: datetime


@dataclass(frozen=True, slots=True)
class InProgress:
    """An attempt is open: never a second one for the same agreement."""

    number: int


@dataclass(frozen=True, slots=True)
class Over:
    """Dialling has ended. ``answered`` is a success; the others mean status ``failed``
    and ``flagged`` for the supervisors."""

    reason: Literal["answered", "attempts_exhausted", "deadline_passed", "no_calling_time"]

    @property
    def flagged(self) -> bool:
        return self.reason != "answered"


Decision = Dial | InProgress | Over


def decide(
    agreement: Agreement, attempts: Sequence[Attempt], policy: Policy, now: datetime
) -> Decision:
    """The next step for an open callback agreement, given its attempts (any order)."""
    _aware(now, "now")
    ordered = sorted(attempts, key=lambda a: a.number)
    if any(a.outcome is None for a in ordered):
        return InProgress(next(a.number for a in ordered if a.outcome is None))
    if any(a.outcome == "answered" for a in ordered):
        return Over("answered")
    if now >= agreement.deadline:
        return Over("deadline_passed")
    if len(ordered) >= policy.max_attempts:
        return Over("attempts_exhausted")
    number = (ordered[-1].number if ordered else 0) + 1
    earliest = max(now, agreement.due)
    if ordered:
        last = ordered[-1]
        # An ``unknown`` attempt (lost in a crash) may have no end: its start is the last
        # instant we know of, and it waits its retry like any other, never a blind re-dial.
        ended = last.ended_at or last.started_at
        earliest = max(earliest, ended + policy.retry_before(number))
    at = next_allowed(agreement, policy, earliest)
    if at is None:
        return Over("no_calling_time")
    return Dial(number, at)


def next_allowed(agreement: Agreement, policy: Policy, earliest: datetime) -> datetime | None:
    """The first instant ≥ ``earliest`` in calling hours ∩ the customer's window, not on a
    holiday of the customer's local date, and before the deadline; ``None`` if there is
    none (within ``HORIZON_DAYS``)."""
    _aware(earliest, "earliest")
    zone = ZoneInfo(agreement.timezone or policy.timezone)
    start = earliest
    if agreement.window_start is not None:
        start = max(start, agreement.window_start)
    end = agreement.deadline
    if agreement.window_end is not None:
        end = min(end, agreement.window_end)
    if start >= end:
        return None
    day = start.astimezone(zone).date()  # an instant is in the ranges of its own local date
    last_day = min(end.astimezone(zone).date(), day + timedelta(days=HORIZON_DAYS))
    while day <= last_day:
        if day not in policy.holidays:
            for opens, closes in _instants(day, policy.hours[day.weekday()], zone):
                lo, hi = max(opens, start), min(closes, end)
                if lo < hi:
                    return lo
        day += timedelta(days=1)
    return None


def site_day(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """The site's day around ``now`` in ``zone`` (``[dialer] timezone``: the zone of the
    contracts, the deadlines, the KPIs' and the agreements' "today"; never the server's),
    as UTC [start, end): local midnight to local midnight, 23 or 25 hours on a DST day."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    start = datetime(local.year, local.month, local.day, tzinfo=tz)
    following = start.date() + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def business_deadline(start: datetime, hours: float, policy: Policy) -> datetime:
    """The instant at which ``hours`` of business time have passed since ``start``: the
    site's opening hours (``policy.hours``, wall clock in ``policy.timezone``), not on
    its holidays (``policy.holidays``, by local date). Real elapsed time inside those
    hours counts, so a range across a daylight-saving change is as long as it really is
    (01:00-04:00 is two hours on the spring-forward day, four on the fall-back day).

    Hours that run out exactly at a closing time end there (not at the next opening);
    ``hours == 0`` is ``start`` itself. A week without any opening hours counts plain
    hours (``start + hours``): there is no business time to count. ``ValueError`` for
    negative hours, a naive ``start``, or holidays that leave no open day within reach.
    """
    _aware(start, "start")
    if hours < 0:
        raise ValueError("hours must not be negative")
    start = start.astimezone(_UTC)  # elapsed time: a wall-clock zone would add wall hours
    remaining = timedelta(hours=hours)
    weekly = sum(hi - lo for day in policy.hours for lo, hi in day)  # minutes
    if not remaining or not weekly:
        return start + remaining
    zone = ZoneInfo(policy.timezone)
    day = start.astimezone(zone).date()
    # Enough weeks for the hours twice over, plus the holiday horizon: a bound, not a guess.
    last_day = day + timedelta(days=HORIZON_DAYS + 14 * int(hours * 60 / weekly + 1))
    while day <= last_day:
        if day not in policy.holidays:
            for opens, closes in _instants(day, policy.hours[day.weekday()], zone):
                lo = max(opens, start)
                if lo >= closes:
                    continue
                if remaining <= closes - lo:
                    return lo + remaining
                remaining -= closes - lo
        day += timedelta(days=1)
    raise ValueError("no opening day found to count the business hours in")


def who_may_ring(
    agreement: Agreement, operators: Iterable[OperatorState], policy: Policy, now: datetime
) -> tuple[str, ...]:
    """The operators this attempt may ring, in the order to try: the owner alone until
    ``owner_grace_seconds`` after due, then also every available operator of the queue
    (longest available first). Only ``available`` operators: never one on a call,
    ringing, paused, in wrap-up or unavailable. An agreement without owner goes to the
    queue at once; one without queue stays with its owner."""
    free = [o for o in operators if o.state == "available"]
    chosen = [o.operator for o in free if o.operator == agreement.owner]
    grace_over = now >= agreement.due + timedelta(seconds=policy.owner_grace_seconds)
    if agreement.queue is not None and (grace_over or agreement.owner is None):
        others = [o for o in free if agreement.queue in o.queues and o.operator != agreement.owner]
        others.sort(key=lambda o: (o.since or datetime.max.replace(tzinfo=_UTC), o.operator))
        chosen += [o.operator for o in others]
    return tuple(dict.fromkeys(chosen))


def _instants(
    day: date, ranges: tuple[Range, ...], zone: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """The UTC intervals in which ``day``'s wall clock in ``zone`` is inside ``ranges``.

    The span around the day is cut at each offset change; within a piece the offset is
    constant, so wall time = UTC + offset maps each range to an interval exactly."""
    if not ranges:
        return []
    midnight = datetime.combine(day, time())  # naive wall clock
    pieces = _constant_offset_pieces(
        (midnight - timedelta(hours=26)).replace(tzinfo=_UTC),
        (midnight + timedelta(hours=50)).replace(tzinfo=_UTC),
        zone,
    )
    found: list[tuple[datetime, datetime]] = []
    for lo, hi in ranges:
        wall_lo, wall_hi = midnight + timedelta(minutes=lo), midnight + timedelta(minutes=hi)
        for a, b, offset in pieces:
            u_lo = max((wall_lo - offset).replace(tzinfo=_UTC), a)
            u_hi = min((wall_hi - offset).replace(tzinfo=_UTC), b)
            if u_lo < u_hi:
                found.append((u_lo, u_hi))
    found.sort()
    return found


def _constant_offset_pieces(
    lo: datetime, hi: datetime, zone: ZoneInfo
) -> list[tuple[datetime, datetime, timedelta]]:
    """``[lo, hi)`` (UTC) cut where ``zone``'s UTC offset changes, found every three hours
    and then to the second by bisection (real zones change at most twice a year)."""

    def offset(t: datetime) -> timedelta:
        value = t.astimezone(zone).utcoffset()
        assert value is not None
        return value

    pieces: list[tuple[datetime, datetime, timedelta]] = []
    start, current = lo, offset(lo)
    probe = lo
    step = timedelta(hours=3)
    while probe < hi:
        nxt = min(probe + step, hi)
        if offset(nxt) != current:
            a, b = probe, nxt  # offset(a) == current != offset(b)
            while b - a > timedelta(seconds=1):
                mid = a + (b - a) / 2
                mid = mid.replace(microsecond=0)
                if mid <= a:
                    break
                a, b = (mid, b) if offset(mid) == current else (a, mid)
            pieces.append((start, b, current))
            start, current = b, offset(b)
        probe = nxt
    pieces.append((start, hi, current))
    return pieces


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
