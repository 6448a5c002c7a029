"""The supervisors' KPIs, defined once: what each figure is, from the stored call records.

This module is pure (no SQL, no Twisted). It holds

* ``tally(rows, thresholds)``: the reference implementation, the sums and counts of a
  queue's call records, row by row. The store computes the same tally in one aggregate
  query (``store/kpis.py``, its memory twin ``store/memory/kpis.py``); the reconcile
  tests hold the two to each other and to figures worked out by hand;
* ``figures(...)``: a tally, the callbacks and the categories turned into the JSON of
  ``GET /api/kpis`` (ratios and means, never a division by zero);
* the period rules of the API (``site_day``, ``checked_period``).

docs/kpis.md has every formula in words; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cti_bridge.dialer.policy import site_day  # the site's calendar

__all__ = [
    "ANSWERED_OUTCOMES",
    "MAX_PERIOD_DAYS",
    "TALLY_KEYS",
    "TOP_CATEGORIES",
    "USUAL_DAYS",
    "PeriodError",
    "Thresholds",
    "category_figures",
    "checked_period",
    "empty_tally",
    "figures",
    "site_day",
    "tally",
]

#: A call that was answered: ``answered_at`` is set (an answered call that was then
#: transferred on is answered too). The tally reads ``answered_at``; these are the
#: outcomes such a call ends with.
ANSWERED_OUTCOMES = ("answered", "transferred")
#: The longest period ``/api/kpis`` answers for.
MAX_PERIOD_DAYS = 366
#: How many categories ``top_categories`` lists.
TOP_CATEGORIES = 5
#: The days before the period whose mean per day is a category's ``usual``.
USUAL_DAYS = 28
#: A category is ``rising`` at ``count >= max(RISING_MIN, RISING_FACTOR * usual)``.
RISING_MIN = 3
RISING_FACTOR = 2.0

#: What a tally holds, per queue; the store's aggregate returns exactly these keys.
TALLY_KEYS = (
    "offered",  # every call whose first queue is the queue
    "answered",  # ... with an answer (answered_at set)
    "answered_within",  # ... answered with wait <= service_level_seconds
    "abandoned",  # outcome abandoned (the caller left, or the queue's timeout)
    "abandoned_within",  # ... with wait <= service_level_seconds
    "short_abandoned",  # ... with wait < short_abandon_seconds
    "answered_wait_sum",  # sum of the answered calls' waits
    "answered_talked",  # answered calls with a talk time (ended)
    "answered_talk_sum",  # sum of their talk times
    "longest_wait",  # max wait of any call (None when no call has a wait)
)


class PeriodError(ValueError):
    """A period the API refuses; the message says why (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """One queue's settings (``[kpis]``, ``[kpis.queues.<name>]``)."""

    service_level_seconds: float = 20.0
    short_abandon_seconds: float = 5.0
    wrapup_seconds: float = 0.0
    #: The share of answered calls the site aims to answer within the threshold (the
    #: wallboard colours the service level against it).
    service_level_target: float = 0.8


ThresholdsFor = Callable[[str], Thresholds]


def empty_tally() -> dict[str, Any]:
    tallied: dict[str, Any] = dict.fromkeys(TALLY_KEYS, 0)
    tallied["answered_wait_sum"] = 0.0
    tallied["answered_talk_sum"] = 0.0
    tallied["longest_wait"] = None
    return tallied


def tally(
    rows: Iterable[Mapping[str, Any]], thresholds: ThresholdsFor
) -> dict[str, dict[str, Any]]:
    """Per queue, the tally of call records shaped as ``GET /api/calls`` gives them
    (``queue``, ``answered_at``, ``outcome``, ``wait_seconds``, ``talk_seconds``). A
    record without a queue is nobody's queue call and is skipped; a missing wait counts
    as 0 in the comparisons (it never counts towards a mean or the longest wait)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        queue = row.get("queue")
        if not queue:
            continue
        t = out.get(queue)
        if t is None:
            t = out[queue] = empty_tally()
        limits = thresholds(queue)
        wait = row.get("wait_seconds")
        waited = 0.0 if wait is None else float(wait)
        t["offered"] += 1
        if wait is not None and (t["longest_wait"] is None or waited > t["longest_wait"]):
            t["longest_wait"] = waited
        if row.get("answered_at") is not None:
            t["answered"] += 1
            if waited <= limits.service_level_seconds:
                t["answered_within"] += 1
            t["answered_wait_sum"] += waited
            talk = row.get("talk_seconds")
            if talk is not None:
                t["answered_talked"] += 1
                t["answered_talk_sum"] += float(talk)
        elif row.get("outcome") == "abandoned":
            t["abandoned"] += 1
            if waited <= limits.service_level_seconds:
                t["abandoned_within"] += 1
            if waited < limits.short_abandon_seconds:
                t["short_abandoned"] += 1
    return out


def _ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(part / whole, 4)


def _mean(total: float, count: int) -> float | None:
    return None if count <= 0 else round(total / count, 3)


def figures(
    queue: str,
    since: datetime,
    until: datetime,
    tallied: Mapping[str, Any] | None,
    thresholds: Thresholds,
    *,
    callbacks: tuple[int, int] = (0, 0),
    categories: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One queue's figures, as ``GET /api/kpis`` answers them (docs/kpis.md)."""
    t = dict(tallied) if tallied is not None else empty_tally()
    answered, abandoned = t["answered"], t["abandoned"]
    short = t["short_abandoned"]
    longest = t["longest_wait"]
    aht_total = t["answered_talk_sum"] + thresholds.wrapup_seconds * t["answered_talked"]
    return {
        "queue": queue,
        "since": _iso(since),
        "until": _iso(until),
        "offered": t["offered"],
        "answered": answered,
        "answered_within_threshold": t["answered_within"],
        "abandoned": abandoned,
        "abandoned_within_threshold": t["abandoned_within"],
        "abandoned_after_threshold": abandoned - t["abandoned_within"],
        "short_abandoned": short,
        "service_level": _ratio(t["answered_within"], answered),
        "service_level_with_abandons": _ratio(t["answered_within"], answered + abandoned - short),
        "service_level_seconds": thresholds.service_level_seconds,
        "service_level_target": thresholds.service_level_target,
        "short_abandon_seconds": thresholds.short_abandon_seconds,
        "wrapup_seconds": thresholds.wrapup_seconds,
        "asa_seconds": _mean(t["answered_wait_sum"], answered),
        "aht_seconds": _mean(aht_total, t["answered_talked"]),
        "longest_wait_seconds": None if longest is None else round(float(longest), 3),
        "callbacks_due": callbacks[0],
        "callbacks_overdue": callbacks[1],
        "top_categories": categories or [],
    }


def category_figures(
    counts: Mapping[str, int], before: Mapping[str, int], period_days: float
) -> list[dict[str, Any]]:
    """The period's most frequent categories (``TOP_CATEGORIES``, most first, then by
    name), each with its ``usual`` count for a period this long (the mean per day over
    the ``USUAL_DAYS`` days before the period, times the period's days) and ``rising``."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
    out: list[dict[str, Any]] = []
    for category, count in ranked:
        usual = before.get(category, 0) / USUAL_DAYS * period_days
        out.append(
            {
                "category": category,
                "count": count,
                "usual": round(usual, 2),
                "rising": count >= max(RISING_MIN, RISING_FACTOR * usual),
            }
        )
    return out


def period_days(since: datetime, until: datetime) -> int:
    """Whole days in the period, at least 1 (a site day of 23 or 25 hours is one day)."""
    return max(1, round((until - since).total_seconds() / 86400))


def checked_period(
    since: datetime | None, until: datetime | None, now: datetime, zone: str
) -> tuple[datetime, datetime]:
    """The period the API asked for: a bound left out is today's (the site's day);
    refused when it is empty or longer than ``MAX_PERIOD_DAYS``."""
    start, end = site_day(now, zone)
    since = start if since is None else since.astimezone(UTC)
    until = end if until is None else until.astimezone(UTC)
    if since >= until:
        raise PeriodError("since must be before until")
    if until - since > timedelta(days=MAX_PERIOD_DAYS):
        raise PeriodError(f"the period is longer than {MAX_PERIOD_DAYS} days")
    return since, until


def _iso(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
