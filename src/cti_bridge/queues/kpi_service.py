"""The KPIs' service: the figures of ``queues/kpis.py`` from the store's aggregates, run
in the node's pool; and ``install_kpis(node)``, which puts it on the node.

``figures`` answers ``GET /api/kpis``; ``today`` is for the live ``/api/queues``
(``today`` field) and ``operators_today`` for ``/api/agents`` (``calls_today``,
``talk_seconds_today``); ``operator_hours`` answers ``GET /api/kpis/operators``. Every
one is a handful of aggregate statements in one pool job, never a row per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred

from .kpi_ports import KpiReads
from .kpi_routes import add_kpi_routes
from .kpis import (
    USUAL_DAYS,
    Thresholds,
    category_figures,
    checked_period,
    figures,
    period_days,
    site_day,
)

if TYPE_CHECKING:
    from cti_bridge.app.config import KpisConfig
    from cti_bridge.app.node import Node

__all__ = ["KpiService", "install_kpis"]

T = TypeVar("T")
Runner = Callable[[Callable[[], T]], "Deferred[T]"]


class KpiService:
    def __init__(
        self,
        reads: Callable[[], KpiReads],
        run: Runner[Any],
        *,
        clock: Callable[[], float],
        zone: str,
        settings: KpisConfig,
    ) -> None:
        """``reads`` is looked up in each job (a test node may have a store without
        one); ``zone`` is the site's (``[dialer] timezone``): it says when today is."""
        self._reads = reads
        self._run = run
        self._clock = clock
        self._zone = zone
        self._settings = settings

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def thresholds(self, queue: str) -> Thresholds:
        return Thresholds(*self._settings.for_queue(queue))

    def period(self, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
        """The period asked for, today's bounds where one is left out (``PeriodError``)."""
        return checked_period(since, until, self.now(), self._zone)

    # -- what the API and the live views ask ----------------------------------------------

    def figures(
        self, queue: str | None, since: datetime | None, until: datetime | None
    ) -> Deferred[dict[str, Any]]:
        """One queue's figures, or ``{"since", "until", "queues": [...]}`` for every
        queue with a call or a pending callback (and every configured one)."""
        start, end = self.period(since, until)
        now = self.now()

        def work() -> dict[str, Any]:
            found = self._queues(start, end, now, [queue] if queue is not None else None)
            if queue is not None:
                return found[queue]
            return {"since": _iso(start), "until": _iso(end), "queues": list(found.values())}

        return self._run(work)

    def today(self, queues: Iterable[str] | None = None) -> Deferred[dict[str, dict[str, Any]]]:
        """Today's figures per queue: every one of ``queues`` (zeros where nothing
        happened), or every queue that has any."""
        now = self.now()
        start, end = site_day(now, self._zone)
        wanted = None if queues is None else list(queues)
        return self._run(lambda: self._queues(start, end, now, wanted))

    def operators_today(self) -> Deferred[dict[str, dict[str, Any]]]:
        """Per operator (username), the calls they answered first today and their talk."""
        start, end = site_day(self.now(), self._zone)

        def work() -> dict[str, dict[str, Any]]:
            totals = self._reads().operator_totals(start, end)
            return {
                name: {"calls_today": calls, "talk_seconds_today": round(talk, 3)}
                for name, (calls, talk) in sorted(totals.items())
            }

        return self._run(work)

    def operator_hours(
        self, since: datetime | None, until: datetime | None
    ) -> Deferred[dict[str, Any]]:
        """``GET /api/kpis/operators``: per operator, per UTC hour of the calls' start."""
        start, end = self.period(since, until)

        def work() -> dict[str, Any]:
            operators: dict[str, dict[str, Any]] = {}
            for name, hour, calls, talk in self._reads().operator_hours(start, end):
                row = operators.setdefault(
                    name, {"operator": name, "calls": 0, "talk_seconds": 0.0, "hours": []}
                )
                row["calls"] += calls
                row["talk_seconds"] = round(row["talk_seconds"] + talk, 3)
                row["hours"].append(
                    {"hour": _iso(hour), "calls": calls, "talk_seconds": round(talk, 3)}
                )
            return {
                "since": _iso(start),
                "until": _iso(end),
                "operators": [operators[name] for name in sorted(operators)],
            }

        return self._run(work)

    # -- in the pool ---------------------------------------------------------------------

    def _queues(
        self, since: datetime, until: datetime, now: datetime, wanted: list[str] | None
    ) -> dict[str, dict[str, Any]]:
        reads = self._reads()
        one = wanted[0] if wanted is not None and len(wanted) == 1 else None
        settings = self._settings
        levels = {
            q: (t.service_level_seconds, t.short_abandon_seconds)
            for q in self._settings.queues
            for t in [self.thresholds(q)]
        }
        tallies = reads.queue_tallies(
            since,
            until,
            queue=one,
            default=(settings.service_level_seconds, settings.short_abandon_seconds),
            levels=levels,
        )
        counts = reads.category_counts(since, until, queue=one)
        before = reads.category_counts(since - timedelta(days=USUAL_DAYS), since, queue=one)
        callbacks = reads.callback_counts(site_day(now, self._zone), now, queue=one)
        if wanted is None:
            names = sorted(set(tallies) | set(callbacks) | set(self._settings.queues))
        else:
            names = list(dict.fromkeys(wanted))
        days = period_days(since, until)
        return {
            name: figures(
                name,
                since,
                until,
                tallies.get(name),
                self.thresholds(name),
                callbacks=callbacks.get(name, (0, 0)),
                categories=category_figures(counts.get(name, {}), before.get(name, {}), days),
            )
            for name in names
        }


def install_kpis(node: Node) -> None:
    """The KPI service on the node (``node.part("kpis", KpiService)``) and its routes."""
    service = KpiService(
        lambda: node.store.kpis,
        node.run,
        clock=node.reactor.seconds,
        zone=node.config.dialer.timezone,
        settings=node.config.kpis,
    )
    add_kpi_routes(node.http, service)
    node.provide("kpis", service)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
