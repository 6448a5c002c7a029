"""The KPIs' reads on SQL (the queues room's port: ``queues/kpi_ports.py`` ``KpiReads``;
the memory twin: ``memory/kpis.py``).

Every figure is one aggregate statement: ``SUM``/``COUNT``/``MAX`` over ``CASE``, grouped
by queue, over ``started_at`` in [since, until), so the ``(queue, started_at)`` index
finds the rows and no row leaves the database. The thresholds come in as values (per
queue a ``CASE queue WHEN ...``), so the definitions stay in the room's pure module
(``queues/kpis.py``); ``TALLY_KEYS`` here must equal that module's (a test checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, select
from sqlalchemy.orm import Session

from .agreement_rules import PENDING
from .db import StoreService
from .models import Agreement, CallRecord, Operator

__all__ = ["TALLY_KEYS", "Kpis", "tally_statement"]

TALLY_KEYS = (
    "offered",
    "answered",
    "answered_within",
    "abandoned",
    "abandoned_within",
    "short_abandoned",
    "answered_wait_sum",
    "answered_talked",
    "answered_talk_sum",
    "longest_wait",
)

Levels = tuple[float, float]


def _per_queue(values: Mapping[str, float], default: float) -> ColumnElement[Any]:
    if not values:
        return literal(default)
    return case(values, value=CallRecord.queue, else_=literal(default))


def tally_statement(
    since: datetime,
    until: datetime,
    *,
    queue: str | None = None,
    default: Levels = (20.0, 5.0),
    levels: Mapping[str, Levels] | None = None,
) -> Select[Any]:
    """The aggregate (also what the benchmark EXPLAINs)."""
    levels = dict(levels or {})
    if queue is not None:  # one queue: its thresholds are plain values
        default = levels.get(queue, default)
        levels = {}
    threshold = _per_queue({q: v[0] for q, v in levels.items()}, default[0])
    short = _per_queue({q: v[1] for q, v in levels.items()}, default[1])
    wait = func.coalesce(CallRecord.wait_seconds, 0.0)
    answered = CallRecord.answered_at.is_not(None)
    abandoned = and_(CallRecord.answered_at.is_(None), CallRecord.outcome == "abandoned")

    def count(*conditions: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

    def total(condition: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, value), else_=0.0)), 0.0)

    talked = and_(answered, CallRecord.talk_seconds.is_not(None))
    query = select(
        CallRecord.queue,
        func.count().label("offered"),
        count(answered).label("answered"),
        count(answered, wait <= threshold).label("answered_within"),
        count(abandoned).label("abandoned"),
        count(abandoned, wait <= threshold).label("abandoned_within"),
        count(abandoned, wait < short).label("short_abandoned"),
        total(answered, wait).label("answered_wait_sum"),
        count(talked).label("answered_talked"),
        total(talked, CallRecord.talk_seconds).label("answered_talk_sum"),
        func.max(CallRecord.wait_seconds).label("longest_wait"),
    ).where(CallRecord.started_at >= since, CallRecord.started_at < until)
    if queue is not None:
        query = query.where(CallRecord.queue == queue)
    else:
        query = query.where(CallRecord.queue.is_not(None))
    grouped: Select[Any] = query.group_by(CallRecord.queue)
    return grouped


def _hour(session: Session) -> ColumnElement[str]:
    """The UTC hour a call started in, as ``YYYY-MM-DD HH:00:00`` text on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        utc = func.timezone("UTC", CallRecord.started_at)
        return func.to_char(utc, "YYYY-MM-DD HH24:00:00")
    return func.strftime("%Y-%m-%d %H:00:00", CallRecord.started_at)


class Kpis(StoreService):
    def queue_tallies(
        self,
        since: datetime,
        until: datetime,
        *,
        queue: str | None = None,
        default: Levels = (20.0, 5.0),
        levels: Mapping[str, Levels] | None = None,
    ) -> dict[str, dict[str, Any]]:
        statement = tally_statement(since, until, queue=queue, default=default, levels=levels)
        with self._sessions() as session:
            rows = session.execute(statement).all()
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            values = dict(zip(TALLY_KEYS, row[1:], strict=True))
            for key in ("answered_wait_sum", "answered_talk_sum"):
                values[key] = float(values[key])
            for key in (*TALLY_KEYS[:6], "answered_talked"):
                values[key] = int(values[key])
            if values["longest_wait"] is not None:
                values["longest_wait"] = float(values["longest_wait"])
            out[row[0]] = values
        return out

    def category_counts(
        self, since: datetime, until: datetime, *, queue: str | None = None
    ) -> dict[str, dict[str, int]]:
        query = (
            select(CallRecord.queue, CallRecord.category, func.count())
            .where(
                CallRecord.started_at >= since,
                CallRecord.started_at < until,
                CallRecord.category.is_not(None),
            )
            .group_by(CallRecord.queue, CallRecord.category)
        )
        query = query.where(
            CallRecord.queue == queue if queue is not None else CallRecord.queue.is_not(None)
        )
        out: dict[str, dict[str, int]] = {}
        with self._sessions() as session:
            for name, category, n in session.execute(query):
                if name is not None and category is not None:
                    out.setdefault(name, {})[category] = int(n)
        return out

    def callback_counts(
        self, today: tuple[datetime, datetime], now: datetime, *, queue: str | None = None
    ) -> dict[str, tuple[int, int]]:
        due = and_(Agreement.deadline >= today[0], Agreement.deadline < today[1])
        query = (
            select(
                Agreement.queue,
                func.coalesce(func.sum(case((due, 1), else_=0)), 0),
                func.coalesce(func.sum(case((Agreement.deadline < now, 1), else_=0)), 0),
            )
            .where(Agreement.kind == "callback", Agreement.status.in_(PENDING))
            .group_by(Agreement.queue)
        )
        query = query.where(
            Agreement.queue == queue if queue is not None else Agreement.queue.is_not(None)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        return {q: (int(d), int(o)) for q, d, o in rows if q and (d or o)}

    def operator_totals(self, since: datetime, until: datetime) -> dict[str, tuple[int, float]]:
        query = (
            select(
                Operator.username,
                func.count(),
                func.coalesce(func.sum(func.coalesce(CallRecord.talk_seconds, 0.0)), 0.0),
            )
            .join(Operator, Operator.id == CallRecord.answered_by_operator_id)
            .where(CallRecord.started_at >= since, CallRecord.started_at < until)
            .group_by(Operator.username)
        )
        with self._sessions() as session:
            return {name: (int(n), float(talk)) for name, n, talk in session.execute(query)}

    def operator_hours(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, datetime, int, float]]:
        with self._sessions() as session:
            hour = _hour(session).label("hour")
            query = (
                select(
                    Operator.username,
                    hour,
                    func.count(),
                    func.coalesce(func.sum(func.coalesce(CallRecord.talk_seconds, 0.0)), 0.0),
                )
                .join(Operator, Operator.id == CallRecord.answered_by_operator_id)
                .where(CallRecord.started_at >= since, CallRecord.started_at < until)
                .group_by(Operator.username, hour)
                .order_by(Operator.username, hour)
            )
            rows = session.execute(query).all()
        return [
            (name, datetime.fromisoformat(text).replace(tzinfo=UTC), int(n), float(talk))
            for name, text, n, talk in rows
        ]
