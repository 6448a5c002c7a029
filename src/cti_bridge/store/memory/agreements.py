"""The memory twin of ``Agreements`` (``store/agreements.py``): the agreement book and
the dialer's side of it, on the shared tables. The rules are ``agreement_rules``'s, as
on SQL; one lock around every operation stands for the database's transactions (so a
claim is atomic here as ``FOR UPDATE`` makes it there)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cti_bridge.callbacks import Attempt, DueCallback, OpenAttempt

from ..agreement_rules import (
    MAX_DETAIL,
    MAX_NOTES,
    MAX_QUEUE,
    PENDING,
    agreement_view,
    checked_agreement,
    checked_changes,
    checked_event,
    checked_filters,
    checked_flag,
    checked_outcome,
    dialable,
    first_due,
    planned_change,
)
from ..customers import InvalidRecord
from ..merge import clean_text
from ..numbers import normalize_number
from .customers import Service
from .fences import check_fence
from .tables import Row, Tables

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
            "at": _at(at),
            "kind": kind,
            "operator_id": operator_id,
            # as the JSON column gives it back: lists for tuples, text keys
            "details": json.loads(json.dumps(dict(details or {}))),
        }
    )


class MemoryAgreements(Service):
    # -- the book ------------------------------------------------------------------------

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
        queue: str | None = None,
        due_at: datetime | None = None,
        origin: str = "operator",
        details: Mapping[str, Any] | None = None,
    ) -> int:
        number = checked_agreement(kind, callback_number, window, self._region, origin)
        now = self._now()
        due, next_at = first_due(kind, number, _utc(due_at), _window(window), now)
        t = self._t
        with t.lock:
            t.check("customers", customer_id)
            t.check("calls", call_id)
            t.check("operators", owner_operator_id)
            t.check("operators", by_operator)
            agreement_id = t.next_id("agreements")
            t.agreements[agreement_id] = {
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
                "queue": clean_text(queue, MAX_QUEUE) or None,
                "flagged": False,
                "disposition": None,
                "closed_at": None,
                "origin": origin,
                "due_at": due,
                "next_attempt_at": next_at,
            }
            t.attempts[agreement_id] = []
            facts = {"kind": kind, "origin": origin, **(details or {})}
            add_event(t, agreement_id, "created", now, operator_id=by_operator, details=facts)
            return agreement_id

    def update_agreement(
        self, agreement_id: int, changes: Mapping[str, Any], *, by_operator: int | None = None
    ) -> None:
        now = self._now()
        t = self._t
        with t.lock:
            row = t.agreements.get(agreement_id)
            if row is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            checked_changes(row, changes)
            t.check("operators", changes.get("owner_operator_id"))
            t.check("operators", by_operator)
            wanted = dict(changes)
            if "deadline" in wanted:
                wanted["deadline"] = _utc(wanted["deadline"])
            if "window" in wanted:
                wanted["window"] = _window(wanted["window"])
            change = planned_change(row, wanted, now, t.username)
            row.update(change.values)
            if change.changed:
                add_event(
                    t, agreement_id, "changed", now, operator_id=by_operator,
                    details=change.changed,
                )  # fmt: skip
            if change.closed is not None:
                add_event(
                    t, agreement_id, "closed", now, operator_id=by_operator, details=change.closed
                )

    def list_agreements(
        self,
        *,
        status: str | None = None,
        owner_operator_id: int | None = None,
        customer_id: int | None = None,
        due: str | None = None,
        now: datetime | None = None,
        today: tuple[datetime, datetime] | None = None,
        flagged: bool | None = None,
        kind: str | None = None,
        unowned: bool = False,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        checked_filters(status, due, now, today, kind)
        now = _utc(now)
        day = _window(today)
        equal = {
            "status": status,
            "owner_operator_id": owner_operator_id,
            "customer_id": customer_id,
            "flagged": flagged,
            "kind": kind,
        }

        def wanted(a: Row) -> bool:
            deadline = a["deadline"]
            if any(value is not None and a[name] != value for name, value in equal.items()):
                return False
            if unowned and a["owner_operator_id"] is not None:
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

    # -- the dialer's side ---------------------------------------------------------------

    def due_callbacks(self, now: datetime, limit: int = 100) -> list[DueCallback]:
        now = _at(now)
        t = self._t
        with t.lock:
            rows = sorted(
                (
                    a
                    for a in t.agreements.values()
                    if a["next_attempt_at"] is not None
                    and a["next_attempt_at"] <= now
                    and dialable(a)
                ),
                key=lambda a: (a["next_attempt_at"], a["id"]),
            )[:limit]
            due: list[DueCallback] = []
            for a in rows:
                customer = t.customers.get(a["customer_id"]) if a["customer_id"] else None
                due.append(
                    DueCallback(
                        agreement_id=a["id"],
                        callback_number=a["callback_number"],
                        due_at=a["due_at"] or a["next_attempt_at"],
                        next_attempt_at=a["next_attempt_at"],
                        deadline=a["deadline"],
                        owner=t.username(a["owner_operator_id"]),
                        queue=a["queue"],
                        customer_id=a["customer_id"],
                        customer_name=None if customer is None else customer["name"],
                        timezone=None if customer is None else customer["timezone"],
                        window_start=a["window_start"],
                        window_end=a["window_end"],
                        attempts=tuple(
                            Attempt(x["number"], x["started_at"], x["ended_at"], x["outcome"])
                            for x in t.attempts[a["id"]]
                        ),
                    )
                )
            return due

    def claim_attempt(
        self,
        agreement_id: int,
        number: int,
        *,
        now: datetime,
        operator: str | None,
        node: str | None,
        pbx: str,
        channel_id: str,
        action_id: str,
        fence: int | None = None,
    ) -> bool:
        now = _at(now)
        t = self._t
        with t.lock:
            if fence is not None:
                check_fence(t, pbx, fence)
            row = t.agreements.get(agreement_id)
            due = None if row is None else row["next_attempt_at"]
            if row is None or row["status"] != "open" or due is None or due > now:
                return False
            attempts = t.attempts[agreement_id]
            if number != max((a["number"] for a in attempts), default=0) + 1:
                return False
            if any(a["ended_at"] is None for a in attempts):
                return False  # what the partial unique index refuses on SQL
            operator_id = next(
                (o["id"] for o in t.operators.values() if o["username"] == operator), None
            )
            attempts.append(
                {
                    "id": t.next_id("agreement_attempts"),
                    "number": number,
                    "operator_id": operator_id,
                    "call_id": None,
                    "node": node,
                    "started_at": now,
                    "ended_at": None,
                    "outcome": None,
                    "pbx": pbx,
                    "channel_id": channel_id,
                    "action_id": action_id,
                    "detail": None,
                }
            )
            row.update(status="dialling", next_attempt_at=None, updated_at=now)
            facts = {"number": number, "operator": operator, "node": node}
            add_event(t, agreement_id, "attempt_started", now, details=facts)
            return True

    def finish_attempt(
        self,
        agreement_id: int,
        number: int,
        outcome: str,
        *,
        now: datetime,
        detail: str | None = None,
        next_attempt_at: datetime | None = None,
        flag: str | None = None,
        fence: int | None = None,
    ) -> dict[str, Any] | None:
        checked_outcome(outcome)
        if flag is not None:
            checked_flag(flag)
        now = _at(now)
        t = self._t
        with t.lock:
            row = t.agreements.get(agreement_id)
            if row is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            found = [
                a
                for a in t.attempts[agreement_id]
                if a["number"] == number and a["ended_at"] is None
            ]
            if not found:
                return None
            if fence is not None:
                check_fence(t, found[0]["pbx"] or "", fence)
            text = clean_text(detail, MAX_DETAIL)
            found[0].update(ended_at=now, outcome=outcome, detail=text)
            facts = {"number": number, "outcome": outcome, "detail": text}
            add_event(t, agreement_id, "attempt_ended", now, details=facts)
            if row["status"] == "dialling":  # closed meanwhile: it stays closed
                if flag is not None:
                    self._flag(row, flag, now)
                else:
                    next_at = None if outcome == "answered" else _utc(next_attempt_at)
                    row.update(status="open", next_attempt_at=next_at)
                row["updated_at"] = now
            return self._agreement(row)

    def reschedule(self, agreement_id: int, next_attempt_at: datetime | None) -> bool:
        with self._t.lock:
            row = self._t.agreements.get(agreement_id)
            if row is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            if not dialable(row):
                return False
            row["next_attempt_at"] = _utc(next_attempt_at)
            return True

    def flag_agreement(
        self, agreement_id: int, reason: str, *, now: datetime
    ) -> dict[str, Any] | None:
        checked_flag(reason)
        now = _at(now)
        with self._t.lock:
            row = self._t.agreements.get(agreement_id)
            if row is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            if row["status"] != "open":
                return None
            self._flag(row, reason, now)
            row["updated_at"] = now
            return self._agreement(row)

    def open_attempts(self, pbx: str | None = None) -> list[OpenAttempt]:
        t = self._t
        with t.lock:
            found = [
                (agreement_id, a)
                for agreement_id, attempts in t.attempts.items()
                for a in attempts
                if a["ended_at"] is None and (pbx is None or a["pbx"] == pbx)
            ]
            found.sort(key=lambda pair: (pair[1]["started_at"], pair[1]["id"]))  # as SQL
            return [
                OpenAttempt(
                    agreement_id=agreement_id,
                    number=a["number"],
                    started_at=a["started_at"],
                    pbx=a["pbx"],
                    channel_id=a["channel_id"],
                    action_id=a["action_id"],
                    operator=t.username(a["operator_id"]),
                    node=a["node"],
                )
                for agreement_id, a in found
            ]

    # -- shared --------------------------------------------------------------------------

    def _flag(self, row: Row, reason: str, now: datetime) -> None:
        row.update(status="failed", flagged=True, next_attempt_at=None)
        add_event(self._t, row["id"], "flagged", now, details={"reason": reason})

    def _agreement(self, row: Row) -> dict[str, Any]:
        t = self._t
        customer = t.customers.get(row["customer_id"]) if row["customer_id"] else None

        def call_of(attempt: Mapping[str, Any]) -> int | None:
            stored: int | None = attempt["call_id"]
            if stored is not None:
                return stored
            return t.call_keys.get((attempt["pbx"], attempt["channel_id"]))

        return agreement_view(
            row,
            t.attempts[row["id"]],
            t.events.get(row["id"], ()),
            username=t.username,
            customer_name=None if customer is None else customer["name"],
            call_of=call_of,
        )


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


def _at(moment: datetime) -> datetime:
    at = _utc(moment)
    assert at is not None
    return at


def _window(window: tuple[datetime, datetime] | None) -> tuple[datetime, datetime] | None:
    if window is None:
        return None
    start, end = _utc(window[0]), _utc(window[1])
    assert start is not None and end is not None
    return start, end
