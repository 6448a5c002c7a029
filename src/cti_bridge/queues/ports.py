"""What the supervisors' views need from elsewhere, as small interfaces.

``TodayFigures`` and ``OperatorTotals`` are the KPI room's (``KpiService``, the node part
``"kpis"``): today's figures per queue and per operator, from the stored records. Without
that part a queue has no ``today`` and an agent's ``calls_today``/``talk_seconds_today``
are null. ``CallIds`` finds a live call's record id (the pop's ``call_id``) by its
``(pbx, linkedid)``: the store's ``CallStore.call_ids``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

__all__ = ["CallIds", "OperatorTotals", "TodayFigures"]


class TodayFigures(Protocol):
    def today(self, queues: list[str]) -> Deferred[dict[str, dict[str, Any]]]:
        """Per queue name, today's ``offered``, ``answered``, ``abandoned``,
        ``service_level``, ... (``GET /api/kpis``'s figures)."""
        ...


class OperatorTotals(Protocol):
    def operators_today(self) -> Deferred[dict[str, dict[str, Any]]]:
        """Per username, ``{"calls_today": n, "talk_seconds_today": s}``."""
        ...


class CallIds(Protocol):
    def __call__(self, pbx: str, linkedids: Iterable[str]) -> dict[str, int]:
        """Synchronous (run in the node's pool): the record ids of those calls that
        have a record row yet, by linkedid."""
        ...
