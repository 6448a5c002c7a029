"""business_deadline as tables: a start and a number of business hours in, the instant
they run out. Local wall times in, so each row reads like the helpdesk's week."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cti_bridge.dialer.policy import Policy, Range, business_deadline, holiday_calendar, parse_hours


def week(**days: str) -> tuple[tuple[Range, ...], ...]:
    return tuple(
        parse_hours(days.get(d, "")) for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    )


WORKDAY = "08:00-12:00,13:00-17:00"
OFFICE = Policy(
    hours=week(mon=WORKDAY, tue=WORKDAY, wed=WORKDAY, thu=WORKDAY, fri=WORKDAY),
    timezone="Europe/Brussels",
    holidays=holiday_calendar("BE"),
)


def local(text: str, zone: str = "Europe/Brussels") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("start", "hours", "deadline"),
    [
        ("2026-12-07 09:00", 2, "2026-12-07 11:00"),  # Monday, inside the morning
        ("2026-12-07 11:00", 2, "2026-12-07 14:00"),  # over lunch
        ("2026-12-07 15:00", 2, "2026-12-07 17:00"),  # runs out at closing: ends there
        ("2026-12-07 16:00", 2, "2026-12-08 09:00"),  # into the next morning
        ("2026-12-07 06:30", 1, "2026-12-07 09:00"),  # before opening: counts from 08:00
        ("2026-12-07 12:15", 0.5, "2026-12-07 13:30"),  # in the lunch break
        ("2026-12-07 21:00", 1, "2026-12-08 09:00"),  # in the evening
        ("2026-12-11 16:00", 2, "2026-12-14 09:00"),  # Friday: over the weekend
        ("2026-12-12 10:00", 1, "2026-12-14 09:00"),  # Saturday
        ("2026-12-07 09:00", 8, "2026-12-08 09:00"),  # a working day is 8 hours
        ("2026-12-07 09:00", 40, "2026-12-14 09:00"),  # a working week is 40
        ("2026-12-07 09:00", 1.25, "2026-12-07 10:15"),
        ("2026-12-07 09:00", 0, "2026-12-07 09:00"),
        ("2026-12-12 10:00", 0, "2026-12-12 10:00"),  # none to count: the start, closed or not
        ("2026-11-10 16:00", 2, "2026-11-12 09:00"),  # Wednesday 11 November: a holiday
        ("2026-12-24 16:00", 2, "2026-12-28 09:00"),  # Christmas Friday, then the weekend
        ("2026-12-31 16:00", 1, "2026-12-31 17:00"),  # New Year's Eve is a working day
        ("2026-12-31 16:00", 2, "2027-01-04 09:00"),  # New Year's Day, then the weekend
    ],
)
def test_business_hours_count_in_the_sites_week(start: str, hours: float, deadline: str) -> None:
    assert business_deadline(local(start), hours, OFFICE) == local(deadline)


NIGHTS = Policy(hours=week(sun="01:00-04:00", mon="01:00-04:00"), timezone="Europe/Brussels")


@pytest.mark.parametrize(
    ("start", "hours", "deadline"),
    [
        # 29 March 2026: 02:00 jumps to 03:00, so 01:00-04:00 holds two real hours
        ("2026-03-29 00:00", 1.5, "2026-03-29 03:30"),
        ("2026-03-29 00:00", 2, "2026-03-29 04:00"),
        ("2026-03-29 00:00", 2.5, "2026-03-30 01:30"),
        # 25 October 2026: 03:00 goes back to 02:00, so the range holds four real hours
        ("2026-10-25 00:00", 3.5, "2026-10-25 03:30"),
        ("2026-10-25 00:00", 4.5, "2026-10-26 01:30"),
    ],
)
def test_a_daylight_saving_day_counts_its_real_hours(
    start: str, hours: float, deadline: str
) -> None:
    assert business_deadline(local(start), hours, NIGHTS) == local(deadline)


def test_the_sites_zone_is_the_one_that_counts() -> None:
    new_york = Policy(hours=OFFICE.hours, timezone="America/New_York")
    start = local("2026-12-07 16:00", "America/New_York")  # 22:00 in Brussels
    assert business_deadline(start, 2, new_york) == local("2026-12-08 09:00", "America/New_York")
    assert business_deadline(start, 2, OFFICE) == local("2026-12-08 10:00")  # Brussels' morning
    # whatever zone the start is given in, the same instant gives the same deadline
    as_utc = start.astimezone(ZoneInfo("UTC"))
    assert business_deadline(as_utc, 2, new_york) == business_deadline(start, 2, new_york)


def test_a_week_without_opening_hours_counts_plain_hours() -> None:
    closed = Policy(hours=week(), timezone="Europe/Brussels")
    start = local("2026-12-07 09:00")
    assert business_deadline(start, 5, closed) == local("2026-12-07 14:00")
    spring = local("2026-03-29 00:00")  # elapsed hours, not wall-clock ones
    assert business_deadline(spring, 5, closed) == spring.astimezone(UTC) + timedelta(hours=5)
    assert business_deadline(spring, 5, closed) == local("2026-03-29 06:00")


def test_a_whole_day_week_is_elapsed_time_also_across_daylight_saving() -> None:
    always = Policy(hours=week(**dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                                                "00:00-24:00")))  # fmt: skip
    start = local("2026-03-28 12:00")  # the day before spring-forward
    assert business_deadline(start, 24, always) == start.astimezone(UTC) + timedelta(hours=24)
    assert business_deadline(start, 24, always) == local("2026-03-29 13:00")


class EveryDay:
    """A holiday calendar in which every day is a holiday."""

    def __contains__(self, day: object) -> bool:
        return True


@pytest.mark.parametrize(
    ("start", "hours", "policy"),
    [
        (datetime(2026, 12, 7, 9), 1, OFFICE),  # naive
        (local("2026-12-07 09:00"), -1, OFFICE),
        # holidays that never end: no opening day to count in
        (local("2026-12-07 09:00"), 1, Policy(hours=OFFICE.hours, holidays=EveryDay())),
    ],
)
def test_what_cannot_be_counted_is_refused(start: datetime, hours: float, policy: Policy) -> None:
    with pytest.raises(ValueError):
        business_deadline(start, hours, policy)
