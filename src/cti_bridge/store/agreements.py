"""The agreement book: what an operator promised a caller, and the tries to keep it.

The one owner of the ``agreements``, ``agreement_attempts`` and ``agreement_events``
tables. The console makes, lists, changes and closes agreements (``AgreementBook``,
``console/ports.py``); the callback dialer reads the due callbacks and claims them one
attempt at a time (``CallbackBook``, ``dialer/ports.py``). What a change does is decided
on plain values in ``agreement_rules.py``, shared with the memory twin; this module
applies it to rows in one transaction, with its history (``add_event``).

Never two attempts of one agreement at once: ``claim_attempt`` takes the agreement row
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite has one writer at a time) and commits
the attempt before anything is dialled, and the database refuses a second open attempt
of one agreement (a partial unique index) whatever happens, so two nodes can never dial
one agreement at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, inspect, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from cti_bridge.callbacks import Attempt, DueCallback, OpenAttempt

from .agreement_rules import (
    CHANGES,
    CLOSED,
    CLOSING,
    DUE,
    EVENT_KINDS,
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
from .customers import InvalidRecord
from .db import StoreService, writing
from .fences import check_fence
from .merge import clean_text
from .models import Agreement, AgreementAttempt, AgreementEvent, CallRecord, Customer, Operator
from .numbers import normalize_number

__all__ = [
    "CHANGES",
    "CLOSED",
    "CLOSING",
    "DUE",
    "EVENT_KINDS",
    "MAX_NOTES",
    "NEXT_ATTEMPT_INDEX",
    "PENDING",
    "Agreements",
    "add_event",
    "checked_agreement",
    "checked_changes",
    "checked_filters",
    "due_query",
]


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


#: The index the scheduling pass reads (``models.Agreement.next_attempt_at``).
NEXT_ATTEMPT_INDEX = "ix_agreements_next_attempt_at"


def due_query(now: datetime, limit: int) -> Select[Agreement]:
    """The scheduling pass's read: nothing but a range of the index on
    ``next_attempt_at``, soonest first. Only an open callback with a number to call
    ever has a ``next_attempt_at`` (every writer here keeps it so: closing, claiming
    and flagging clear it), so no other condition is needed, and none is given: with
    one (``status = 'open'``) SQLite, and PostgreSQL on a small table, would read the
    index on status and deadline instead, every open agreement, and sort them."""
    return (
        select(Agreement)
        .where(Agreement.next_attempt_at <= now)
        .order_by(Agreement.next_attempt_at, Agreement.id)
        .limit(limit)
    )


class Agreements(StoreService):
    # -- the book (console/ports.py AgreementBook) ----------------------------------------

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
        due, next_at = first_due(kind, number, due_at, window, now)
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
                queue=clean_text(queue, MAX_QUEUE) or None,
                flagged=False,
                origin=origin,
                due_at=due,
                next_attempt_at=next_at,
            )
            session.add(agreement)
            session.flush()
            facts = {"kind": kind, "origin": origin, **(details or {})}
            add_event(session, agreement.id, "created", now, operator_id=by_operator, details=facts)
            return agreement.id

    def update_agreement(
        self, agreement_id: int, changes: Mapping[str, Any], *, by_operator: int | None = None
    ) -> None:
        """Apply ``changes`` (``agreement_rules.checked_changes`` and ``planned_change``
        say what is allowed and what it does) and write its ``changed`` / ``closed``
        history by ``by_operator``. No such agreement is ``InvalidRecord`` too."""
        now = self._now()
        with writing(self._sessions) as session:
            agreement = session.get(Agreement, agreement_id, with_for_update=True)
            if agreement is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            row = _columns(agreement)
            checked_changes(row, changes)
            names = _usernames(
                session, [row["owner_operator_id"], changes.get("owner_operator_id")]
            )
            change = planned_change(row, changes, now, names.get)
            for name, value in change.values.items():
                setattr(agreement, name, value)
            if change.changed:
                add_event(
                    session, agreement_id, "changed", now, operator_id=by_operator,
                    details=change.changed,
                )  # fmt: skip
            if change.closed is not None:
                add_event(
                    session, agreement_id, "closed", now, operator_id=by_operator,
                    details=change.closed,
                )  # fmt: skip

    def get_agreement(self, agreement_id: int) -> dict[str, Any] | None:
        with self._sessions() as session:
            row = session.scalar(
                _with_children(select(Agreement).where(Agreement.id == agreement_id))
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
        flagged: bool | None = None,
        kind: str | None = None,
        unowned: bool = False,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Agreements by status, owner (``unowned``: nobody), customer, flag and kind;
        ``due='overdue'``: pending (open or dialling) with a deadline before ``now``;
        ``due='today'``: pending with a deadline in ``today`` (start included, end not:
        the site's day, from the caller). Soonest deadline first, those without one
        last, then by id."""
        checked_filters(status, due, now, today, kind)
        which: list[ColumnElement[bool]] = []
        if status is not None:
            which.append(Agreement.status == status)
        if owner_operator_id is not None:
            which.append(Agreement.owner_operator_id == owner_operator_id)
        if unowned:
            which.append(Agreement.owner_operator_id.is_(None))
        if customer_id is not None:
            which.append(Agreement.customer_id == customer_id)
        if flagged is not None:
            which.append(Agreement.flagged.is_(flagged))
        if kind is not None:
            which.append(Agreement.kind == kind)
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
        )
        with self._sessions() as session:
            return _agreements(session, list(session.scalars(_with_children(query))))

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
        query = query.order_by(
            Agreement.deadline.is_(None), Agreement.deadline, Agreement.id
        ).limit(limit)
        with self._sessions() as session:
            return _agreements(session, list(session.scalars(_with_children(query))))

    # -- the dialer's side (dialer/ports.py CallbackBook) ---------------------------------

    def due_callbacks(self, now: datetime, limit: int = 100) -> list[DueCallback]:
        with self._sessions() as session:
            query = due_query(now, limit).options(selectinload(Agreement.attempts))
            rows = [r for r in session.scalars(query) if dialable(_columns(r))]  # a guard
            owners = _usernames(session, (r.owner_operator_id for r in rows))
            customers = _customers(session, (r.customer_id for r in rows))
            due: list[DueCallback] = []
            for r in rows:
                assert r.callback_number is not None and r.next_attempt_at is not None
                name, zone = customers.get(r.customer_id) or (None, None)
                due.append(
                    DueCallback(
                        agreement_id=r.id,
                        callback_number=r.callback_number,
                        due_at=r.due_at or r.next_attempt_at,
                        next_attempt_at=r.next_attempt_at,
                        deadline=r.deadline,
                        owner=owners.get(r.owner_operator_id),
                        queue=r.queue,
                        customer_id=r.customer_id,
                        customer_name=name,
                        timezone=zone,
                        window_start=r.window_start,
                        window_end=r.window_end,
                        attempts=tuple(
                            Attempt(a.number, a.started_at, a.ended_at, a.outcome)
                            for a in r.attempts
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
        try:
            with writing(self._sessions) as session:
                if fence is not None:  # first: a stale owner claims nothing, waits for nothing
                    check_fence(session.connection(), pbx, fence)
                # SKIP LOCKED: a row another node is claiming is not waited for, it is
                # lost (SQLite leaves the clause out: it has one writer at a time). By
                # the id alone (the primary key; with the due conditions in the WHERE
                # PostgreSQL planned it on the next_attempt_at index, reading every due
                # row), then checked here, under the lock.
                agreement = session.scalar(
                    select(Agreement)
                    .where(Agreement.id == agreement_id)
                    .with_for_update(skip_locked=True)
                )
                if agreement is None or not _claimable(agreement, now):
                    return False
                latest = session.scalar(
                    select(func.max(AgreementAttempt.number)).where(
                        AgreementAttempt.agreement_id == agreement_id
                    )
                )
                if number != (latest or 0) + 1:
                    return False
                operator_id = None
                if operator is not None:
                    operator_id = session.scalar(
                        select(Operator.id).where(Operator.username == operator)
                    )
                session.add(
                    AgreementAttempt(
                        agreement_id=agreement_id,
                        number=number,
                        operator_id=operator_id,
                        node=node,
                        started_at=now,
                        pbx=pbx,
                        channel_id=channel_id,
                        action_id=action_id,
                    )
                )
                agreement.status = "dialling"
                agreement.next_attempt_at = None
                agreement.updated_at = now
                facts = {"number": number, "operator": operator, "node": node}
                add_event(session, agreement_id, "attempt_started", now, details=facts)
                session.flush()  # the partial unique index speaks here, or at commit
        except IntegrityError:
            return False
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
        with writing(self._sessions) as session:
            agreement = session.get(Agreement, agreement_id, with_for_update=True)
            if agreement is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            attempt = session.scalar(
                select(AgreementAttempt).where(
                    AgreementAttempt.agreement_id == agreement_id,
                    AgreementAttempt.number == number,
                    AgreementAttempt.ended_at.is_(None),
                )
            )
            if attempt is None:
                return None
            if fence is not None:  # the token of the PBX the attempt was dialled on
                check_fence(session.connection(), attempt.pbx or "", fence)
            attempt.ended_at = now
            attempt.outcome = outcome
            attempt.detail = clean_text(detail, MAX_DETAIL)
            facts = {"number": number, "outcome": outcome, "detail": attempt.detail}
            add_event(session, agreement_id, "attempt_ended", now, details=facts)
            if agreement.status == "dialling":  # closed meanwhile: it stays closed
                if flag is not None:
                    _flag(session, agreement, flag, now)
                else:
                    agreement.status = "open"
                    agreement.next_attempt_at = None if outcome == "answered" else next_attempt_at
                agreement.updated_at = now
            session.flush()
            return _agreements(session, [agreement])[0]

    def reschedule(self, agreement_id: int, next_attempt_at: datetime | None) -> bool:
        with writing(self._sessions) as session:
            agreement = session.get(Agreement, agreement_id, with_for_update=True)
            if agreement is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            if not dialable(_columns(agreement)):
                return False
            agreement.next_attempt_at = next_attempt_at
            return True

    def flag_agreement(
        self, agreement_id: int, reason: str, *, now: datetime
    ) -> dict[str, Any] | None:
        checked_flag(reason)
        with writing(self._sessions) as session:
            agreement = session.get(Agreement, agreement_id, with_for_update=True)
            if agreement is None:
                raise InvalidRecord(f"no agreement {agreement_id}")
            if agreement.status != "open":
                return None
            _flag(session, agreement, reason, now)
            agreement.updated_at = now
            session.flush()
            return _agreements(session, [agreement])[0]

    def open_attempts(self, pbx: str | None = None) -> list[OpenAttempt]:
        query = (
            select(AgreementAttempt, Operator.username)
            .outerjoin(Operator, Operator.id == AgreementAttempt.operator_id)
            .where(AgreementAttempt.ended_at.is_(None))
            .order_by(AgreementAttempt.started_at, AgreementAttempt.id)
        )
        if pbx is not None:
            query = query.where(AgreementAttempt.pbx == pbx)
        with self._sessions() as session:
            return [
                OpenAttempt(
                    agreement_id=a.agreement_id,
                    number=a.number,
                    started_at=a.started_at,
                    pbx=a.pbx,
                    channel_id=a.channel_id,
                    action_id=a.action_id,
                    operator=username,
                    node=a.node,
                )
                for a, username in session.execute(query)
            ]


def _flag(session: Session, agreement: Agreement, reason: str, now: datetime) -> None:
    agreement.status = "failed"
    agreement.flagged = True
    agreement.next_attempt_at = None
    add_event(session, agreement.id, "flagged", now, details={"reason": reason})


def _with_children(query: Select[Agreement]) -> Select[Agreement]:
    return query.options(selectinload(Agreement.attempts), selectinload(Agreement.events))


def _columns(row: Any) -> dict[str, Any]:
    """A mapped row's column values by attribute name (what ``agreement_rules`` reads)."""
    return {attr.key: getattr(row, attr.key) for attr in inspect(row).mapper.column_attrs}


def _agreements(session: Session, rows: list[Agreement]) -> list[dict[str, Any]]:
    """The rows as the API shows them: names, customers and callback calls in one
    query each, whatever the number of rows."""
    attempts = [a for r in rows for a in r.attempts]
    events = [e for r in rows for e in r.events]
    names = _usernames(
        session,
        [r.owner_operator_id for r in rows]
        + [a.operator_id for a in attempts]
        + [e.operator_id for e in events],
    )
    customers = _customers(session, (r.customer_id for r in rows))
    calls = _callback_calls(session, attempts)

    def call_of(attempt: Mapping[str, Any]) -> int | None:
        stored: int | None = attempt["call_id"]
        return stored if stored is not None else calls.get((attempt["pbx"], attempt["channel_id"]))

    return [
        agreement_view(
            _columns(r),
            [_columns(a) for a in r.attempts],
            [_columns(e) for e in r.events],
            username=names.get,
            customer_name=(customers.get(r.customer_id) or (None, None))[0],
            call_of=call_of,
        )
        for r in rows
    ]


def _usernames(session: Session, ids: Iterable[int | None]) -> dict[int | None, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    found = session.execute(select(Operator.id, Operator.username).where(Operator.id.in_(wanted)))
    return {row.id: row.username for row in found}


def _customers(
    session: Session, ids: Iterable[int | None]
) -> dict[int | None, tuple[str, str | None]]:
    """customer id -> (name, time zone)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    found = session.execute(
        select(Customer.id, Customer.name, Customer.timezone).where(Customer.id.in_(wanted))
    )
    return {row.id: (row.name, row.timezone) for row in found}


def _callback_calls(
    session: Session, attempts: Iterable[AgreementAttempt]
) -> dict[tuple[str | None, str | None], int]:
    """(pbx, linkedid) -> call id, for the attempts whose call is not stored: the
    callback call's Linkedid is the operator leg's ChannelId, the attempt's
    ``channel_id``."""
    keys: set[tuple[str, str]] = {
        (a.pbx, a.channel_id)
        for a in attempts
        if a.call_id is None and a.pbx is not None and a.channel_id is not None
    }
    if not keys:
        return {}
    found = session.execute(callback_calls_query(keys))
    return {(r.pbx, r.linkedid): r.id for r in found}


def _claimable(agreement: Agreement, now: datetime) -> bool:
    """Open and due: what the dialer may claim an attempt of."""
    due = agreement.next_attempt_at
    return agreement.status == "open" and due is not None and due <= now


def callback_calls_query(keys: Iterable[tuple[str, str]]) -> Select[int, str, str]:
    """The calls of these (pbx, linkedid) pairs, by the pairs: the calls' unique index
    answers them (linkedid alone has no index of its own: that was a scan of every call
    record at each attempt's end)."""
    by_pbx: dict[str, set[str]] = {}
    for pbx, linkedid in keys:
        by_pbx.setdefault(pbx, set()).add(linkedid)
    # One "pbx = ? AND linkedid IN (...)" per PBX (a row-value IN is scanned by SQLite).
    return select(CallRecord.id, CallRecord.pbx, CallRecord.linkedid).where(
        or_(
            *(
                (CallRecord.pbx == pbx) & CallRecord.linkedid.in_(sorted(ids))
                for pbx, ids in sorted(by_pbx.items())
            )
        )
    )
