"""The callback policy as tables: instants in, the decision out. No clock, no sleeps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest

from cti_bridge.dialer.policy import (
    Agreement,
    Attempt,
    Decision,
    Dial,
    InProgress,
    OperatorState,
    Over,
    Policy,
    Range,
    decide,
    holiday_calendar,
    next_allowed,
    parse_hours,
    who_may_ring,
)

OFFICE = (((480, 1080),),) * 5 + ((), ())  # mon-fri 08:00-18:00


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def week(**days: str) -> tuple[tuple[Range, ...], ...]:
    return tuple(
        parse_hours(days.get(d, "")) for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    )


def agreement(
    due: str = "2026-12-07 00:00", deadline: str = "2027-06-01 00:00", **kw: object
) -> Agreement:
    return Agreement(due=utc(due), deadline=utc(deadline), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("08:00-18:00", ((480, 1080),)),
        ("08:00-12:00,13:00-18:00", ((480, 720), (780, 1080))),
        ("00:00-24:00", ((0, 1440),)),
        ("", ()),
    ],
)
def test_hours_parse(text: str, ranges: tuple[Range, ...]) -> None:
    assert parse_hours(text) == ranges


@pytest.mark.parametrize(
    "text",
    ["8-18", "08:00-25:00", "18:00-08:00", "08:00-12:00,11:00-13:00", "24:30-24:40", "08:60-09:00"],
)
def test_bad_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(text)


# (hours, holidays, customer zone, earliest (UTC), window, expected (UTC) or None)
SLOTS = [
    # inside Monday's hours (Brussels CET = UTC+1): at once
    (OFFICE, "", None, "2026-12-07 09:00", None, "2026-12-07 09:00"),
    # before opening: 08:00 CET
    (OFFICE, "", None, "2026-12-07 05:00", None, "2026-12-07 07:00"),
    # after Friday's close: Monday 08:00
    (OFFICE, "", None, "2026-12-11 17:30", None, "2026-12-14 07:00"),
    # exactly at closing time is closed (end exclusive)
    (OFFICE, "", None, "2026-12-07 17:00", None, "2026-12-08 07:00"),
    # several ranges: the lunch break waits
    (week(mon="08:00-12:00,13:00-18:00"), "", None, "2026-12-07 11:30", None, "2026-12-07 12:00"),
    # the whole day on a Sunday
    (week(sun="00:00-24:00"), "", None, "2026-12-07 09:00", None, "2026-12-12 23:00"),
    # Christmas (Friday) in Belgium: next Monday; without holidays: at once
    (OFFICE, "BE", None, "2026-12-25 09:00", None, "2026-12-28 07:00"),
    (OFFICE, "", None, "2026-12-25 09:00", None, "2026-12-25 09:00"),
    # New Year (Friday) in Belgium
    (OFFICE, "BE", None, "2026-12-31 17:30", None, "2027-01-04 07:00"),
    # a customer in New York: 08:00 EST is 13:00 UTC, although Brussels is open
    (OFFICE, "", "America/New_York", "2026-12-07 12:00", None, "2026-12-07 13:00"),
    # ... and 17:30 EST (22:30 UTC) is still open for them
    (OFFICE, "", "America/New_York", "2026-12-07 22:30", None, "2026-12-07 22:30"),
    # a customer in Tokyo: Monday 18:00 JST is 09:00 UTC, so Tuesday 08:00 JST (Mon 23:00 UTC)
    (OFFICE, "", "Asia/Tokyo", "2026-12-07 09:00", None, "2026-12-07 23:00"),
    # spring forward (Sun 2027-03-28, 02:00 CET -> 03:00 CEST at 01:00 UTC): a range from
    # 02:30, a time that does not exist that day, opens when the clock jumps
    (week(sun="02:30-04:00"), "", None, "2027-03-28 00:00", None, "2027-03-28 01:00"),
    # ... and the next Sunday it is 02:30 CEST = 00:30 UTC
    (week(sun="02:30-04:00"), "", None, "2027-03-28 02:00", None, "2027-04-04 00:30"),
    # fall back (Sun 2026-10-25, 03:00 CEST -> 02:00 CET at 01:00 UTC): 02:30 happens twice,
    # once in CEST (00:30 UTC) and once in CET (01:30 UTC); both are inside the range
    (week(sun="02:30-03:00"), "", None, "2026-10-25 00:00", None, "2026-10-25 00:30"),
    (week(sun="02:30-03:00"), "", None, "2026-10-25 00:45", None, "2026-10-25 00:45"),
    (week(sun="02:30-03:00"), "", None, "2026-10-25 01:05", None, "2026-10-25 01:30"),
    # an office day across the change: 08:00 CET the day after, 08:00 CEST the day before
    (OFFICE, "", None, "2026-10-23 17:00", None, "2026-10-26 07:00"),
    (OFFICE, "", None, "2027-03-26 17:00", None, "2027-03-29 06:00"),
    # the customer's window: starts later than the hours
    (
        OFFICE,
        "",
        None,
        "2026-12-07 07:00",
        ("2026-12-07 13:00", "2026-12-07 15:00"),
        "2026-12-07 13:00",
    ),
    # the window starts in the evening: the next opening inside it
    (
        OFFICE,
        "",
        None,
        "2026-12-07 07:00",
        ("2026-12-07 19:00", "2026-12-08 12:00"),
        "2026-12-08 07:00",
    ),
    # the window closes before any calling hour: none
    (OFFICE, "", None, "2026-12-07 07:00", ("2026-12-07 18:00", "2026-12-08 06:00"), None),
    # no calling hours at all: none (bounded walk)
    (week(), "", None, "2026-12-07 07:00", None, None),
]


@pytest.mark.parametrize(("hours", "country", "zone", "earliest", "window", "expected"), SLOTS)
def test_next_allowed(
    *,
    hours: tuple[tuple[Range, ...], ...],
    country: str,
    zone: str | None,
    earliest: str,
    window: tuple[str, str] | None,
    expected: str | None,
) -> None:
    policy = Policy(hours=hours, holidays=holiday_calendar(country))
    start, end = (None, None) if window is None else (utc(window[0]), utc(window[1]))
    deal = agreement(timezone=zone, window_start=start, window_end=end)
    assert next_allowed(deal, policy, utc(earliest)) == (
        None if expected is None else utc(expected)
    )


def test_the_deadline_bounds_the_slot() -> None:
    policy = Policy(hours=OFFICE)
    deal = agreement(deadline="2026-12-07 17:00")
    assert next_allowed(deal, policy, utc("2026-12-07 16:59")) == utc("2026-12-07 16:59")
    assert next_allowed(deal, policy, utc("2026-12-07 17:00")) is None
    assert (
        next_allowed(agreement(deadline="2026-12-12 00:00"), policy, utc("2026-12-11 17:00"))
        is None
    )


def test_the_holiday_calendar() -> None:
    belgium = holiday_calendar("BE")
    assert date(2026, 12, 25) in belgium and date(2027, 1, 1) in belgium
    assert date(2026, 12, 24) not in belgium
    assert date(2026, 12, 25) not in holiday_calendar("")
    with pytest.raises(ValueError, match="'XX' is not a country"):
        holiday_calendar("XX")


def attempt(
    number: int, ended: str | None, outcome: str | None, started: str | None = None
) -> Attempt:
    end = None if ended is None else utc(ended)
    begin = utc(started) if started else (end or utc("2026-12-07 08:00")) - timedelta(minutes=1)
    return Attempt(number=number, started_at=begin, ended_at=end, outcome=outcome)


RETRY = Policy(
    hours=week(mon="00:00-24:00", tue="00:00-24:00"), retry_seconds=(600, 1800), max_attempts=5
)
NOW = "2026-12-07 09:00"  # a Monday

# (attempts, now, expected decision)
DECISIONS: list[tuple[Sequence[Attempt], str, Decision]] = [
    # the first attempt: at once when due
    ((), NOW, Dial(1, utc(NOW))),
    # not before it is due
    ((), "2026-12-06 23:00", Dial(1, utc("2026-12-07 00:00"))),
    # attempt 2 waits 600 s after attempt 1 ended
    ((attempt(1, "2026-12-07 08:55", "busy"),), NOW, Dial(2, utc("2026-12-07 09:05"))),
    # ... and once that passed, at once
    ((attempt(1, "2026-12-07 08:40", "no_answer"),), NOW, Dial(2, utc(NOW))),
    # attempt 3 waits 1800 s, and so does attempt 4: the last value repeats
    (
        (attempt(1, "2026-12-07 08:00", "busy"), attempt(2, "2026-12-07 08:50", "no_answer")),
        NOW,
        Dial(3, utc("2026-12-07 09:20")),
    ),
    (
        (
            attempt(1, "2026-12-07 07:00", "busy"),
            attempt(2, "2026-12-07 08:00", "busy"),
            attempt(3, "2026-12-07 08:50", "failed"),
        ),
        NOW,
        Dial(4, utc("2026-12-07 09:20")),
    ),
    # the order attempts come in does not matter
    (
        (attempt(2, "2026-12-07 08:50", "no_answer"), attempt(1, "2026-12-07 08:00", "busy")),
        NOW,
        Dial(3, utc("2026-12-07 09:20")),
    ),
    # an attempt lost in a crash is an attempt: it waits its retry, never a re-dial at once
    ((attempt(1, "2026-12-07 08:59", "unknown"),), NOW, Dial(2, utc("2026-12-07 09:09"))),
    # ... also without an end: counted from its start
    (
        (Attempt(1, started_at=utc("2026-12-07 08:58"), ended_at=None, outcome="unknown"),),
        NOW,
        Dial(2, utc("2026-12-07 09:08")),
    ),
    # the operator's side failing is an attempt like the others (PRODUCT.md says no more)
    (
        (attempt(1, "2026-12-07 08:58", "operator_unavailable"),),
        NOW,
        Dial(2, utc("2026-12-07 09:08")),
    ),
    (
        (attempt(1, "2026-12-07 08:58", "operator_no_answer"),),
        NOW,
        Dial(2, utc("2026-12-07 09:08")),
    ),
    # an open attempt: never a second one
    ((attempt(1, None, None, started="2026-12-07 08:59"),), NOW, InProgress(1)),
    # answered ends the dialling
    ((attempt(1, "2026-12-07 08:50", "answered"),), NOW, Over("answered")),
    # five attempts made: over
    (
        tuple(attempt(n, f"2026-12-07 0{n}:00", "busy") for n in range(1, 6)),
        NOW,
        Over("attempts_exhausted"),
    ),
    # past the deadline: over
    ((), "2027-06-01 00:00", Over("deadline_passed")),
    # the retry lands after the deadline: over
    ((attempt(1, "2027-05-31 23:55", "busy"),), "2027-05-31 23:56", Over("no_calling_time")),
    # the retry lands after Tuesday's hours: the next Monday
    (
        (attempt(1, "2026-12-08 23:55", "busy"),),
        "2026-12-08 23:56",
        Dial(2, utc("2026-12-13 23:00")),
    ),
]


@pytest.mark.parametrize(("attempts", "now", "expected"), DECISIONS)
def test_decide(attempts: Sequence[Attempt], now: str, expected: Decision) -> None:
    assert decide(agreement(), attempts, RETRY, utc(now)) == expected


def test_only_answered_is_not_flagged() -> None:
    assert not Over("answered").flagged
    assert Over("attempts_exhausted").flagged and Over("deadline_passed").flagged
    assert Over("no_calling_time").flagged


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(agreement(), (), RETRY, datetime(2026, 12, 7, 9))


def test_max_attempts_one() -> None:
    policy = Policy(hours=OFFICE, max_attempts=1)
    assert decide(agreement(), (attempt(1, "2026-12-07 08:50", "busy"),), policy, utc(NOW)) == Over(
        "attempts_exhausted"
    )


def op(
    name: str,
    state: str = "available",
    queues: tuple[str, ...] = ("support",),
    since: str | None = None,
) -> OperatorState:
    return OperatorState(name, state, frozenset(queues), None if since is None else utc(since))


OPERATORS = (
    op("ann"),  # the owner
    op("bob", since="2026-12-07 08:30"),
    op("cas", since="2026-12-07 08:10"),  # available longest: asked first
    op("dan", "on_call"),
    op("eve", "ringing"),
    op("fay", "paused"),
    op("gus", "wrap_up"),
    op("hal", "unavailable"),
    op("ida", queues=("sales",)),
)

# (owner, operators, now, expected) with due 09:00 and a 900 s grace
RINGS = [
    # the owner alone during the grace
    ("ann", OPERATORS, "2026-12-07 09:10", ("ann",)),
    # the owner busy during the grace: nobody yet
    ("ann", (op("ann", "on_call"), *OPERATORS[1:]), "2026-12-07 09:10", ()),
    ("ann", (op("ann", "paused"), *OPERATORS[1:]), "2026-12-07 09:10", ()),
    ("ann", (op("ann", "wrap_up"), *OPERATORS[1:]), "2026-12-07 09:10", ()),
    ("ann", (op("ann", "ringing"), *OPERATORS[1:]), "2026-12-07 09:10", ()),
    # after the grace: owner first, then the queue's available operators, longest first;
    # never one on a call, ringing, paused, in wrap-up, unavailable or of another queue
    ("ann", OPERATORS, "2026-12-07 09:15", ("ann", "cas", "bob")),
    ("ann", (op("ann", "on_call"), *OPERATORS[1:]), "2026-12-07 09:15", ("cas", "bob")),
    # the owner logged off (not in the list): the queue after the grace
    ("ann", OPERATORS[1:], "2026-12-07 09:20", ("cas", "bob")),
    # no owner: the queue at once
    (None, OPERATORS[1:], "2026-12-07 09:00", ("cas", "bob")),
]


@pytest.mark.parametrize(("owner", "operators", "now", "expected"), RINGS)
def test_who_may_ring(
    owner: str | None, operators: Sequence[OperatorState], now: str, expected: tuple[str, ...]
) -> None:
    deal = agreement(due="2026-12-07 09:00", owner=owner, queue="support")
    assert who_may_ring(deal, operators, RETRY, utc(now)) == expected


def test_without_a_queue_the_owner_stays_alone() -> None:
    deal = agreement(due="2026-12-07 09:00", owner="ann", queue=None)
    assert who_may_ring(deal, OPERATORS, RETRY, utc("2026-12-08 09:00")) == ("ann",)
