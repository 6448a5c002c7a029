"""The agreement book: what an operator promised a caller, and the tries to keep it.

The one owner of the ``agreements`` and ``agreement_attempts`` tables. The console makes
agreements, the pop reads the open ones, the callback dialer will claim them one attempt
at a time: the database refuses a second open attempt of one agreement (a partial unique
index), so two nodes can never dial one agreement at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from .customers import InvalidRecord
from .db import StoreService, writing
from .models import (
    AGREEMENT_KINDS,
    AGREEMENT_STATUSES,
    ATTEMPT_OUTCOMES,
    Agreement,
    AgreementAttempt,
    AgreementEvent,
    Operator,
)
from .numbers import normalize_number
from .records import clean_text
from .types import iso_utc

__all__ = [
    "CHANGES",
    "CLOSED",
    "CLOSING",
    "DUE",
    "EVENT_KINDS",
    "MAX_NOTES",
    "PENDING",
    "Agreements",
    "add_event",
    "checked_agreement",
    "checked_changes",
    "checked_filters",
]

#: An agreement's notes are cut here (the column is text; the console sends up to this).
MAX_NOTES = 20_000
#: What ``update_agreement`` changes, and the statuses it may set.
CHANGES = frozenset({"status", "deadline", "owner_operator_id", "window", "notes"})
CLOSING = ("done", "cancelled")
#: A closed agreement's status stays; the pending ones are what "due" looks at.
CLOSED = ("done", "cancelled")
PENDING = ("open", "dialling")
DUE = ("today", "overdue")
#: What an agreement's history records (``agreement_events.kind``; SPEC-10).
EVENT_KINDS = (
    "created",
    "changed",
    "closed",
    "attempt_started",
    "attempt_ended",
    "flagged",
    "missed_call",
    "resolved_by_call",
)


def checked_event(kind: str, at: datetime) -> None:
    """The checks of a history event (the memory twin runs them too): a known kind, an
    aware time (the history is compared and ordered in UTC)."""
    if kind not in EVENT_KINDS:
        raise InvalidRecord(f"event kind must be one of {', '.join(EVENT_KINDS)}")
    if at.tzinfo is None:
        raise ValueError("naive datetime refused: pass an aware (UTC) datetime")


def add_event(
    session: Session,
    agreement_id: int,
    kind: str,
    at: datetime,
    *,
    operator_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Write one history event in the caller's transaction (it commits with the change
    it records, so the history never tells of a change that was rolled back). Every
    writer of the agreement book uses this: the console's changes, the dialer's
    attempts, the missed-call room's joins and resolutions. ``details`` must be JSON
    (``{field: [old, new]}`` for ``changed``; times as ISO text)."""
    checked_event(kind, at)
    session.add(
        AgreementEvent(
            agreement_id=agreement_id,
            kind=kind,
            at=at,
            operator_id=operator_id,
            details=dict(details or {}),
        )
    )


def checked_agreement(
    kind: str,
    callback_number: str | None,
    window: tuple[datetime, datetime] | None,
    region: str,
) -> str | None:
    """The checks of a new agreement (``InvalidRecord`` says what is wrong); returns the
    callback number in E.164. The memory twin runs the same checks."""
    if kind not in AGREEMENT_KINDS:
        raise InvalidRecord(f"kind must be one of {', '.join(AGREEMENT_KINDS)}")
    number = None
    if callback_number is not None:
        number = normalize_number(callback_number, region)
        if number is None:
            raise InvalidRecord(f"{callback_number[:40]!r} is not a phone number")
    if window is not None and window[1] <= window[0]:
        raise InvalidRecord("a callback window must end after it starts")
    return number


def checked_status(status: str) -> None:
    if status not in AGREEMENT_STATUSES:
        raise InvalidRecord(f"status must be one of {', '.join(AGREEMENT_STATUSES)}")


def checked_outcome(outcome: str) -> None:
    if outcome not in ATTEMPT_OUTCOMES:
        raise InvalidRecord(f"outcome must be one of {', '.join(ATTEMPT_OUTCOMES)}")


def checked_filters(
    status: str | None,
    due: str | None,
    now: datetime | None,
    today: tuple[datetime, datetime] | None,
) -> None:
    """The checks of ``list_agreements``'s filters (the memory twin runs them too)."""
    if status is not None:
        checked_status(status)
    if due is not None and due not in DUE:
        raise InvalidRecord(f"due must be one of {', '.join(DUE)}")
    if due == "overdue" and now is None:
        raise TypeError("due='overdue' needs now")
    if due == "today" and today is None:
        raise TypeError("due='today' needs today=(start, end)")


def checked_changes(current_status: str, changes: Mapping[str, Any]) -> None:
    """The checks of ``update_agreement`` (``InvalidRecord`` starts with the field's
    name): a known field, a closing status on an agreement not closed yet, a window that
    ends after it starts."""
    unknown = sorted(set(changes) - CHANGES)
    if unknown:
        raise TypeError(f"update_agreement cannot change {', '.join(unknown)}")
    if "status" in changes:
        status = changes["status"]
        if status not in CLOSING:
            raise InvalidRecord(f"status must be one of {', '.join(CLOSING)}")
        if current_status in CLOSED:
            raise InvalidRecord(f"status: the agreement is already {current_status}")
    window = changes.get("window")
    if window is not None and window[1] <= window[0]:
        raise InvalidRecord("window_end: a callback window must end after it starts")


class Agreements(StoreService):
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
        with writing(self._sessions) as session:
            agreement = Agreement(
                kind=kind,
                status="open",
                customer_id=customer_id,
                call_id=call_id,
                owner_operator_id=owner_operator_id,
                deadline=deadline,
                callback_number=number,
                window_start=None if window is None else window[0],
                window_end=None if window is None else window[1],
                notes=clean_text(notes, MAX_NOTES),
                created_at=now,
                updated_at=now,
                created_by_operator_id=by_operator,
            )
            session.add(agreement)
            session.flush()
            return agreement.id

    def set_agreement_status(self, agreement_id: int, status: str) -> None:
        checked_status(status)
        with writing(self._sessions) as session:
            agreement = session.get(Agreement, agreement_id, with_for_update=True)
            if agreement is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            agreement.status = status
            agreement.updated_at = self._now()

    def start_attempt(
        self, agreement_id: int, *, operator_id: int | None = None, node: str | None = None
    ) -> int:
        """Open the next attempt. The database refuses a second open attempt (an
        ``IntegrityError``), so two nodes can never dial one agreement at once."""
        with writing(self._sessions) as session:
            agreement = session.get(Agreement, agreement_id, with_for_update=True)
            if agreement is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            latest = session.scalar(
                select(func.max(AgreementAttempt.number)).where(
                    AgreementAttempt.agreement_id == agreement_id
                )
            )
            attempt = AgreementAttempt(
                agreement_id=agreement_id,
                number=(latest or 0) + 1,
                operator_id=operator_id,
                node=node,
                started_at=self._now(),
            )
            session.add(attempt)
            session.flush()
            return attempt.number

    def end_attempt(
        self, agreement_id: int, number: int, outcome: str, *, call_id: int | None = None
    ) -> None:
        checked_outcome(outcome)
        with writing(self._sessions) as session:
            attempt = session.scalar(
                select(AgreementAttempt).where(
                    AgreementAttempt.agreement_id == agreement_id,
                    AgreementAttempt.number == number,
                )
            )
            if attempt is None or attempt.ended_at is not None:
                raise InvalidRecord(f"no open attempt {number} of agreement {agreement_id}")
            attempt.ended_at = self._now()
            attempt.outcome = outcome
            attempt.call_id = call_id

    def update_agreement(self, agreement_id: int, changes: Mapping[str, Any]) -> None:
        """Change ``status`` (done|cancelled, not on a closed agreement), ``deadline``,
        ``owner_operator_id``, ``window`` (a (start, end) pair or None) and ``notes``;
        a key left out stays as it is. No such agreement is ``InvalidRecord`` too."""
        with writing(self._sessions) as session:
            agreement = session.get(Agreement, agreement_id, with_for_update=True)
            if agreement is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            checked_changes(agreement.status, changes)
            if "status" in changes:
                agreement.status = changes["status"]
            if "deadline" in changes:
                agreement.deadline = changes["deadline"]
            if "owner_operator_id" in changes:
                agreement.owner_operator_id = changes["owner_operator_id"]
            if "window" in changes:
                window = changes["window"]
                agreement.window_start = None if window is None else window[0]
                agreement.window_end = None if window is None else window[1]
            if "notes" in changes:
                agreement.notes = clean_text(changes["notes"], MAX_NOTES)
            agreement.updated_at = self._now()

    def get_agreement(self, agreement_id: int) -> dict[str, Any] | None:
        with self._sessions() as session:
            row = session.scalar(
                select(Agreement)
                .where(Agreement.id == agreement_id)
                .options(selectinload(Agreement.attempts))
            )
            return None if row is None else _agreements(session, [row])[0]

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
        """Agreements by status, owner and customer; ``due='overdue'``: pending (open or
        dialling) with a deadline before ``now``; ``due='today'``: pending with a
        deadline in ``today`` (start included, end not: the site's day, from the
        caller). Soonest deadline first, those without one last, then by id."""
        checked_filters(status, due, now, today)
        which: list[ColumnElement[bool]] = []
        if status is not None:
            which.append(Agreement.status == status)
        if owner_operator_id is not None:
            which.append(Agreement.owner_operator_id == owner_operator_id)
        if customer_id is not None:
            which.append(Agreement.customer_id == customer_id)
        if due is not None:
            which.append(Agreement.status.in_(PENDING))
        if due == "overdue" and now is not None:
            which.append(Agreement.deadline < now)
        if due == "today" and today is not None:
            which += [Agreement.deadline >= today[0], Agreement.deadline < today[1]]
        query = (
            select(Agreement)
            .where(*which)
            .order_by(Agreement.deadline.is_(None), Agreement.deadline, Agreement.id)
            .limit(limit)
            .options(selectinload(Agreement.attempts))
        )
        with self._sessions() as session:
            return _agreements(session, list(session.scalars(query)))

    def open_agreements(
        self, *, customer_id: int | None = None, number: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The open agreements of a customer, or to call a number back (in any format);
        soonest deadline first, those without one last."""
        if (customer_id is None) == (number is None):
            raise TypeError("open_agreements takes a customer_id or a number")
        query = select(Agreement).where(Agreement.status == "open")
        if customer_id is not None:
            query = query.where(Agreement.customer_id == customer_id)
        else:
            e164 = normalize_number(number or "", self._region)
            if e164 is None:
                return []
            query = query.where(Agreement.callback_number == e164)
        query = (
            query.order_by(Agreement.deadline.is_(None), Agreement.deadline, Agreement.id)
            .limit(limit)
            .options(selectinload(Agreement.attempts))
        )
        with self._sessions() as session:
            return _agreements(session, list(session.scalars(query)))


def _agreements(session: Session, rows: list[Agreement]) -> list[dict[str, Any]]:
    ids = {r.owner_operator_id for r in rows} | {a.operator_id for r in rows for a in r.attempts}
    return [_agreement(row, _usernames(session, ids)) for row in rows]


def _usernames(session: Session, ids: Iterable[int | None]) -> dict[int | None, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    found = session.execute(select(Operator.id, Operator.username).where(Operator.id.in_(wanted)))
    return {row.id: row.username for row in found}


def _agreement(row: Agreement, usernames: Mapping[int | None, str]) -> dict[str, Any]:
    """An agreement as the API shows it (docs/console.md): ``owner`` and each attempt's
    ``operator`` by username, beside their ids; times in ISO 8601 UTC."""
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "customer_id": row.customer_id,
        "call_id": row.call_id,
        "owner_operator_id": row.owner_operator_id,
        "owner": usernames.get(row.owner_operator_id),
        "deadline": iso_utc(row.deadline),
        "callback_number": row.callback_number,
        "window_start": iso_utc(row.window_start),
        "window_end": iso_utc(row.window_end),
        "notes": row.notes,
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
        "attempts": [
            {
                "number": a.number,
                "operator_id": a.operator_id,
                "operator": usernames.get(a.operator_id),
                "call_id": a.call_id,
                "node": a.node,
                "started_at": iso_utc(a.started_at),
                "ended_at": iso_utc(a.ended_at),
                "outcome": a.outcome,
            }
            for a in row.attempts
        ],
    }
