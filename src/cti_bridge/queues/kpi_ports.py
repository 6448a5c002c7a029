"""What the KPIs need from storage, as one small interface (``KpiReads``).

``store/kpis.py`` implements it on SQL (aggregate queries on the ``(queue, started_at)``
and ``(answered_by_operator_id, started_at)`` indexes, never a row per call), and
``store/memory/kpis.py`` on the twin's dicts; ``tests/unit/store/test_kpis.py`` is the
contract both pass, and mypy checks both fit (``testing/store_contract.py``).

Times are aware datetimes; periods are [since, until) on the call's ``started_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

__all__ = ["KpiReads", "Levels"]

#: ``(service_level_seconds, short_abandon_seconds)``: the default, and per queue.
Levels = tuple[float, float]


class KpiReads(Protocol):
    def queue_tallies(
        self,
        since: datetime,
        until: datetime,
        *,
        queue: str | None = None,
        default: Levels = (20.0, 5.0),
        levels: Mapping[str, Levels] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Per queue with a call in the period (or only ``queue``), the tally of
        ``queues.kpis.TALLY_KEYS``, as ``queues.kpis.tally`` computes it row by row."""
        ...

    def category_counts(
        self, since: datetime, until: datetime, *, queue: str | None = None
    ) -> dict[str, dict[str, int]]:
        """Per queue, how many of its calls in the period have each category."""
        ...

    def callback_counts(
        self, today: tuple[datetime, datetime], now: datetime, *, queue: str | None = None
    ) -> dict[str, tuple[int, int]]:
        """Per queue, the pending (open or dialling) callback agreements with a
        deadline in ``today`` [start, end), and with a deadline before ``now``."""
        ...

    def operator_totals(self, since: datetime, until: datetime) -> dict[str, tuple[int, float]]:
        """Per operator (username): calls they answered first that started in the
        period, and those calls' talk seconds."""
        ...

    def operator_hours(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, datetime, int, float]]:
        """``operator_totals`` per UTC hour of the calls' start: (username, hour,
        calls, talk seconds), by username then hour."""
        ...
