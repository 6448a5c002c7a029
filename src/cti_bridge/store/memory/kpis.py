"""The memory twin of ``Kpis`` (``store/kpis.py``): the same aggregates, over the
twin's rows, under its lock."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..agreement_rules import PENDING
from ..kpis import TALLY_KEYS, Levels
from .customers import Service
from .tables import Row

__all__ = ["MemoryKpis"]


def _empty() -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(TALLY_KEYS, 0)
    out.update(answered_wait_sum=0.0, answered_talk_sum=0.0, longest_wait=None)
    return out


class MemoryKpis(Service):
    def _calls(self, since: datetime, until: datetime) -> list[Row]:
        since, until = _utc(since), _utc(until)
        with self._t.lock:
            return [
                dict(row) for row in self._t.calls.values() if since <= row["started_at"] < until
            ]

    def queue_tallies(
        self,
        since: datetime,
        until: datetime,
        *,
        queue: str | None = None,
        default: Levels = (20.0, 5.0),
        levels: Mapping[str, Levels] | None = None,
    ) -> dict[str, dict[str, Any]]:
        levels = levels or {}
        out: dict[str, dict[str, Any]] = {}
        for row in self._calls(since, until):
            name = row["queue"]
            if name is None or (queue is not None and name != queue):
                continue
            threshold, short = levels.get(name, default)
            t = out.setdefault(name, _empty())
            wait = 0.0 if row["wait_seconds"] is None else row["wait_seconds"]
            t["offered"] += 1
            if row["wait_seconds"] is not None and (
                t["longest_wait"] is None or wait > t["longest_wait"]
            ):
                t["longest_wait"] = wait
            if row["answered_at"] is not None:
                t["answered"] += 1
                t["answered_within"] += wait <= threshold
                t["answered_wait_sum"] += wait
                if row["talk_seconds"] is not None:
                    t["answered_talked"] += 1
                    t["answered_talk_sum"] += row["talk_seconds"]
            elif row["outcome"] == "abandoned":
                t["abandoned"] += 1
                t["abandoned_within"] += wait <= threshold
                t["short_abandoned"] += wait < short
        return out

    def category_counts(
        self, since: datetime, until: datetime, *, queue: str | None = None
    ) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for row in self._calls(since, until):
            name, category = row["queue"], row["category"]
            if name is None or category is None or (queue is not None and name != queue):
                continue
            counts = out.setdefault(name, {})
            counts[category] = counts.get(category, 0) + 1
        return out

    def callback_counts(
        self, today: tuple[datetime, datetime], now: datetime, *, queue: str | None = None
    ) -> dict[str, tuple[int, int]]:
        start, end, now = _utc(today[0]), _utc(today[1]), _utc(now)
        counts: dict[str, list[int]] = {}
        with self._t.lock:
            for row in self._t.agreements.values():
                name, deadline = row["queue"], row["deadline"]
                if row["kind"] != "callback" or row["status"] not in PENDING or not name:
                    continue
                if (queue is not None and name != queue) or deadline is None:
                    continue
                pair = counts.setdefault(name, [0, 0])
                pair[0] += start <= deadline < end
                pair[1] += deadline < now
        return {q: (d, o) for q, (d, o) in counts.items() if d or o}

    def _answered_by(self, since: datetime, until: datetime) -> list[tuple[str, Row]]:
        rows = self._calls(since, until)
        with self._t.lock:
            named = [(self._t.username(row["answered_by_operator_id"]), row) for row in rows]
        return [(name, row) for name, row in named if name is not None]

    def operator_totals(self, since: datetime, until: datetime) -> dict[str, tuple[int, float]]:
        out: dict[str, tuple[int, float]] = {}
        for name, row in self._answered_by(since, until):
            calls, talk = out.get(name, (0, 0.0))
            out[name] = (calls + 1, talk + (row["talk_seconds"] or 0.0))
        return out

    def operator_hours(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, datetime, int, float]]:
        out: dict[tuple[str, datetime], tuple[int, float]] = {}
        for name, row in self._answered_by(since, until):
            hour = row["started_at"].astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            calls, talk = out.get((name, hour), (0, 0.0))
            out[(name, hour)] = (calls + 1, talk + (row["talk_seconds"] or 0.0))
        return [(name, hour, n, talk) for (name, hour), (n, talk) in sorted(out.items())]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: pass an aware (UTC) datetime")
    return moment.astimezone(UTC)
