"""Stand-in for ``dialer.policy.business_deadline`` (helper "book"); deleted when it lands."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cti_bridge.dialer.policy import HORIZON_DAYS, Policy, _instants


def business_deadline(start: datetime, hours: float, policy: Policy) -> datetime:
    zone = ZoneInfo(policy.timezone)
    remaining = timedelta(hours=hours)
    day = start.astimezone(zone).date()
    for _ in range(HORIZON_DAYS):
        if day not in policy.holidays:
            for opens, hi in _instants(day, policy.hours[day.weekday()], zone):
                lo = max(opens, start)
                if lo < hi:
                    if hi - lo >= remaining:
                        return lo + remaining
                    remaining -= hi - lo
        day += timedelta(days=1)
    return start + timedelta(hours=hours)
