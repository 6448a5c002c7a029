"""The KPIs' pure definitions (queues/kpis.py): the tally row by row, the figures, the
categories, the site's day and the period rules. Every expected figure is worked out by
hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cti_bridge.queues.kpis import (
    PeriodError,
    Thresholds,
    category_figures,
    checked_period,
    figures,
    period_days,
    site_day,
    tally,
)

T0 = datetime(2026, 3, 10, 9, tzinfo=UTC)
DAY = (datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC))


def call(
    outcome: str, wait: float | None, talk: float | None = None, queue: str | None = "support"
) -> dict[str, Any]:
    answered = outcome in ("answered", "transferred")
    return {
        "queue": queue,
        "outcome": outcome,
        "answered_at": "2026-03-10T09:00:00.000Z" if answered else None,
        "wait_seconds": wait,
        "talk_seconds": talk,
    }


ROWS = [
    call("answered", 5.0, 100.0),
    call("answered", 20.0, 200.0),  # exactly at the threshold: within
    call("transferred", 20.001, 300.0),  # just over; a transferred call was answered
    call("answered", 40.0, None),  # still talking: in ASA, not in AHT
    call("abandoned", 3.0),  # short (< 5) and within 20
    call("abandoned", 5.0),  # not short (5 is not below 5), within
    call("abandoned", 61.0),  # after the threshold
    call("failed", None),  # offered, neither answered nor abandoned
    call("answered", 1.0, 10.0, queue=None),  # no queue: nobody's queue call
    call("answered", 2.0, 20.0, queue="sales"),
]


def test_the_tally_and_the_figures_by_hand() -> None:
    tallied = tally(ROWS, lambda q: Thresholds())
    assert sorted(tallied) == ["sales", "support"]
    found = figures("support", *DAY, tallied["support"], Thresholds(wrapup_seconds=15.0))
    # offered 8 (every support row); answered 4 (answered 5, 20, 40 and the transferred
    # one); within 20 s: 5 and 20 = 2; abandoned 3: within 20 s 3 and 5 = 2, after 1
    # (61); short (< 5 s): the 3 s one = 1.
    assert found["offered"] == 8
    assert found["answered"] == 4
    assert found["answered_within_threshold"] == 2
    assert found["abandoned"] == 3
    assert found["abandoned_within_threshold"] == 2
    assert found["abandoned_after_threshold"] == 1
    assert found["short_abandoned"] == 1
    # service level 2 / 4 = 0.5; with abandons 2 / (4 + 3 - 1) = 2 / 6 = 0.3333.
    assert found["service_level"] == 0.5
    assert found["service_level_with_abandons"] == 0.3333
    # ASA (5 + 20 + 20.001 + 40) / 4 = 85.001 / 4 = 21.25025 -> 21.25
    assert found["asa_seconds"] == 21.25
    # AHT over the 3 answered calls with a talk time: (100 + 200 + 300 + 3 * 15) / 3
    # = 645 / 3 = 215.0
    assert found["aht_seconds"] == 215.0
    # Longest wait of any call: the 61 s abandon.
    assert found["longest_wait_seconds"] == 61.0
    assert found["service_level_seconds"] == 20.0 and found["wrapup_seconds"] == 15.0
    assert found["since"] == "2026-03-10T00:00:00.000Z"
    assert found["until"] == "2026-03-11T00:00:00.000Z"
    assert found["callbacks_due"] == found["callbacks_overdue"] == 0
    assert found["top_categories"] == []


def test_thresholds_per_queue() -> None:
    tight = {"support": Thresholds(service_level_seconds=10.0, short_abandon_seconds=4.0)}
    tallied = tally(ROWS, lambda q: tight.get(q, Thresholds()))
    # support, 10 s: answered within only the 5 s one; abandoned within 3 and 5 (2);
    # short (< 4 s): the 3 s one.
    assert tallied["support"]["answered_within"] == 1
    assert tallied["support"]["abandoned_within"] == 2
    assert tallied["support"]["short_abandoned"] == 1
    assert tallied["sales"]["answered_within"] == 1  # 2 s, the default 20


def test_nothing_to_count_gives_zeros_and_nulls() -> None:
    found = figures("support", *DAY, None, Thresholds())
    assert (found["offered"], found["answered"], found["abandoned"]) == (0, 0, 0)
    for key in (
        "service_level",
        "service_level_with_abandons",
        "asa_seconds",
        "aht_seconds",
        "longest_wait_seconds",
    ):
        assert found[key] is None, key
    # Only abandons: no answered call, so no service level; with abandons 0 / 1 = 0.
    only = figures(
        "support",
        *DAY,
        tally([call("abandoned", 30.0)], lambda q: Thresholds())["support"],
        Thresholds(),
    )
    assert only["service_level"] is None
    assert only["service_level_with_abandons"] == 0.0
    # Only short abandons: the denominator 0 + 1 - 1 = 0, so null, not a division by zero.
    short = tally([call("abandoned", 1.0)], lambda q: Thresholds())["support"]
    assert figures("support", *DAY, short, Thresholds())["service_level_with_abandons"] is None


def test_top_categories_usual_and_rising() -> None:
    today = {"wifi": 6, "printer": 3, "vpn": 3, "mail": 1, "dns": 2, "voip": 2}
    before = {"wifi": 28, "printer": 56, "vpn": 0, "mail": 0}  # over 28 days
    found = category_figures(today, before, period_days=1)
    # Most first, then by name; 5 of the 6: wifi 6, printer 3, vpn 3, dns 2, voip 2.
    assert [c["category"] for c in found] == ["wifi", "printer", "vpn", "dns", "voip"]
    by_name = {c["category"]: c for c in found}
    # wifi: usual 28 / 28 = 1 a day; 6 >= max(3, 2) -> rising.
    assert by_name["wifi"] == {"category": "wifi", "count": 6, "usual": 1.0, "rising": True}
    # printer: usual 2 a day; 3 < max(3, 4) -> not rising.
    assert by_name["printer"]["usual"] == 2.0 and by_name["printer"]["rising"] is False
    # vpn: never before; 3 >= max(3, 0) -> rising. dns: 2 < 3 -> not (too few to say).
    assert by_name["vpn"]["rising"] is True and by_name["dns"]["rising"] is False
    # Over a week the usual scales: wifi 1 a day -> 7 for the period; 6 < 14.
    week = category_figures({"wifi": 6}, before, period_days=7)
    assert week == [{"category": "wifi", "count": 6, "usual": 7.0, "rising": False}]


def test_the_sites_day_and_dst() -> None:
    # Brussels in winter is UTC+1: the day of 2026-03-10 09:00 UTC starts 23:00 UTC before.
    assert site_day(T0, "Europe/Brussels") == (
        datetime(2026, 3, 9, 23, tzinfo=UTC),
        datetime(2026, 3, 10, 23, tzinfo=UTC),
    )
    # 2026-03-29, the spring change: 23 hours, 23:00 UTC on the 28th to 22:00 on the 29th.
    start, end = site_day(datetime(2026, 3, 29, 12, tzinfo=UTC), "Europe/Brussels")
    assert (start, end - start) == (datetime(2026, 3, 28, 23, tzinfo=UTC), timedelta(hours=23))
    assert period_days(start, end) == 1
    # 00:30 local on the 10th is still 23:30 UTC on the 9th: the local day counts.
    late = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    assert site_day(late, "Europe/Brussels")[0] == datetime(2026, 3, 9, 23, tzinfo=UTC)


def test_the_period_rules() -> None:
    zone = "Europe/Brussels"
    assert checked_period(None, None, T0, zone) == site_day(T0, zone)
    since = datetime(2026, 3, 1, tzinfo=UTC)
    assert checked_period(since, None, T0, zone) == (since, site_day(T0, zone)[1])
    with pytest.raises(PeriodError, match="since must be before until"):
        checked_period(since, since, T0, zone)
    with pytest.raises(PeriodError, match="longer than 366 days"):
        checked_period(since - timedelta(days=367), since, T0, zone)
    assert checked_period(since - timedelta(days=366), since, T0, zone)[0] == since - timedelta(
        days=366
    )
