"""The memory twin of ``Agreements`` (``store/agreements.py``): the agreement book."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..agreements import (
    MAX_NOTES,
    PENDING,
    checked_agreement,
    checked_changes,
    checked_event,
    checked_filters,
    checked_outcome,
    checked_status,
)
from ..customers import InvalidRecord
from ..numbers import normalize_number
from ..records import clean_text
from ..types import iso_utc
from .customers import Service
from .tables import Row, Tables, refused

__all__ = ["MemoryAgreements", "add_event", "deadline_order"]


def add_event(
    tables: Tables,
    agreement_id: int,
    kind: str,
    at: datetime,
    *,
    operator_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """The twin of ``store.agreements.add_event``: one history event, with the same
    checks and foreign keys. Call it holding ``tables.lock``, in the same operation as
    the change it records."""
    checked_event(kind, at)
    tables.check("agreements", agreement_id)
    tables.check("operators", operator_id)
    tables.events.setdefault(agreement_id, []).append(
        {
            "id": tables.next_id("agreement_events"),
            "at": at.astimezone(UTC),
            "kind": kind,
            "operator_id": operator_id,
            # as the JSON column gives it back: lists for tuples, text keys
            "details": json.loads(json.dumps(dict(details or {}))),
        }
    )


class MemoryAgreements(Service):
    def add_agreement(
        self,
        kind: str,
        *,
        customer_id: int | None = None,
        call_id: int | None = None,
        owner_operator_id: int | None = None,
        deadline: datetime | None = None,
        callback_number: str | None = None,
        window: tuple[datetime, datetime] | None = None,
        notes: str | None = None,
        by_operator: int | None = None,
    ) -> int:
        number = checked_agreement(kind, callback_number, window, self._region)
        now = self._now()
        with self._t.lock:
            self._t.check("customers", customer_id)
            self._t.check("calls", call_id)
            self._t.check("operators", owner_operator_id)
            self._t.check("operators", by_operator)
            agreement_id = self._t.next_id("agreements")
            self._t.agreements[agreement_id] = {
                "id": agreement_id,
                "kind": kind,
                "status": "open",
                "customer_id": customer_id,
                "call_id": call_id,
                "owner_operator_id": owner_operator_id,
                "deadline": _utc(deadline),
                "callback_number": number,
                "window_start": None if window is None else _utc(window[0]),
                "window_end": None if window is None else _utc(window[1]),
                "notes": clean_text(notes, MAX_NOTES),
                "created_at": now,
                "updated_at": now,
                "created_by_operator_id": by_operator,
            }
            self._t.attempts[agreement_id] = []
            return agreement_id

    def set_agreement_status(self, agreement_id: int, status: str) -> None:
        checked_status(status)
        with self._t.lock:
            row = self._t.agreements.get(agreement_id)
            if row is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            row["status"] = status
            row["updated_at"] = self._now()

    def start_attempt(
        self, agreement_id: int, *, operator_id: int | None = None, node: str | None = None
    ) -> int:
        """Open the next attempt; a second open one is refused (``IntegrityError``), as the
        database's partial unique index refuses it."""
        with self._t.lock:
            if agreement_id not in self._t.agreements:
                raise InvalidRecord(f"no agreement {agreement_id}")
            self._t.check("operators", operator_id)
            attempts = self._t.attempts[agreement_id]
            if any(a["ended_at"] is None for a in attempts):
                refused("UNIQUE uq_agreement_attempts_open")
            number = max((a["number"] for a in attempts), default=0) + 1
            attempts.append(
                {
                    "number": number,
                    "operator_id": operator_id,
                    "call_id": None,
                    "node": node,
                    "started_at": self._now(),
                    "ended_at": None,
                    "outcome": None,
                }
            )
            return number

    def end_attempt(
        self, agreement_id: int, number: int, outcome: str, *, call_id: int | None = None
    ) -> None:
        checked_outcome(outcome)
        with self._t.lock:
            found = [a for a in self._t.attempts.get(agreement_id, ()) if a["number"] == number]
            if not found or found[0]["ended_at"] is not None:
                raise InvalidRecord(f"no open attempt {number} of agreement {agreement_id}")
            self._t.check("calls", call_id)
            found[0].update(ended_at=self._now(), outcome=outcome, call_id=call_id)

    def update_agreement(self, agreement_id: int, changes: Mapping[str, Any]) -> None:
        with self._t.lock:
            row = self._t.agreements.get(agreement_id)
            if row is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            checked_changes(row["status"], changes)
            if "owner_operator_id" in changes:
                self._t.check("operators", changes["owner_operator_id"])
            updated = dict(row)
            for name in ("status", "owner_operator_id"):
                if name in changes:
                    updated[name] = changes[name]
            if "deadline" in changes:
                updated["deadline"] = _utc(changes["deadline"])
            if "window" in changes:
                window = changes["window"]
                updated["window_start"] = None if window is None else _utc(window[0])
                updated["window_end"] = None if window is None else _utc(window[1])
            if "notes" in changes:
                updated["notes"] = clean_text(changes["notes"], MAX_NOTES)
            updated["updated_at"] = self._now()
            row.update(updated)

    def list_agreements(
        self,
        *,
        status: str | None = None,
        owner_operator_id: int | None = None,
        customer_id: int | None = None,
        due: str | None = None,
        now: datetime | None = None,
        today: tuple[datetime, datetime] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        checked_filters(status, due, now, today)
        now = _utc(now)
        day = None if today is None else (today[0].astimezone(UTC), today[1].astimezone(UTC))

        def wanted(a: Row) -> bool:
            deadline = a["deadline"]
            if status is not None and a["status"] != status:
                return False
            if owner_operator_id is not None and a["owner_operator_id"] != owner_operator_id:
                return False
            if customer_id is not None and a["customer_id"] != customer_id:
                return False
            if due is not None and (a["status"] not in PENDING or deadline is None):
                return False
            if due == "overdue" and not (now is not None and deadline < now):
                return False
            return not (due == "today" and not (day and day[0] <= deadline < day[1]))

        with self._t.lock:
            rows = [a for a in self._t.agreements.values() if wanted(a)]
            rows.sort(key=deadline_order)
            return [self._agreement(a) for a in rows[:limit]]

    def get_agreement(self, agreement_id: int) -> dict[str, Any] | None:
        with self._t.lock:
            row = self._t.agreements.get(agreement_id)
            return None if row is None else self._agreement(row)

    def open_agreements(
        self, *, customer_id: int | None = None, number: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        if (customer_id is None) == (number is None):
            raise TypeError("open_agreements takes a customer_id or a number")
        value: object
        if customer_id is not None:
            column, value = "customer_id", customer_id
        else:
            e164 = normalize_number(number or "", self._region)
            if e164 is None:
                return []
            column, value = "callback_number", e164
        with self._t.lock:
            rows = [
                a
                for a in self._t.agreements.values()
                if a["status"] == "open" and a[column] == value
            ]
            rows.sort(key=deadline_order)
            return [self._agreement(a) for a in rows[:limit]]

    def _agreement(self, row: Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "kind": row["kind"],
            "status": row["status"],
            "customer_id": row["customer_id"],
            "call_id": row["call_id"],
            "owner_operator_id": row["owner_operator_id"],
            "owner": self._t.username(row["owner_operator_id"]),
            "deadline": iso_utc(row["deadline"]),
            "callback_number": row["callback_number"],
            "window_start": iso_utc(row["window_start"]),
            "window_end": iso_utc(row["window_end"]),
            "notes": row["notes"],
            "created_at": iso_utc(row["created_at"]),
            "updated_at": iso_utc(row["updated_at"]),
            "attempts": [
                {
                    "number": a["number"],
                    "operator_id": a["operator_id"],
                    "operator": self._t.username(a["operator_id"]),
                    "call_id": a["call_id"],
                    "node": a["node"],
                    "started_at": iso_utc(a["started_at"]),
                    "ended_at": iso_utc(a["ended_at"]),
                    "outcome": a["outcome"],
                }
                for a in self._t.attempts[row["id"]]
            ],
        }


def deadline_order(row: Row) -> tuple[bool, datetime, int]:
    """Soonest deadline first, those without one last, then by id (as the SQL orders)."""
    deadline = row["deadline"]
    return deadline is None, deadline or datetime.min.replace(tzinfo=UTC), row["id"]


def _utc(moment: datetime | None) -> datetime | None:
    """As ``UTCDateTime`` keeps it: aware UTC; a naive datetime is refused."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: pass an aware (UTC) datetime")
    return moment.astimezone(UTC)
