"""The agreement book: what an operator promised a caller, and the tries to keep it.

The one owner of the ``agreements`` and ``agreement_attempts`` tables. The console makes
agreements, the pop reads the open ones, the callback dialer will claim them one attempt
at a time: the database refuses a second open attempt of one agreement (a partial unique
index), so two nodes can never dial one agreement at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from .customers import InvalidRecord
from .db import StoreService, writing
from .models import (
    AGREEMENT_KINDS,
    AGREEMENT_STATUSES,
    ATTEMPT_OUTCOMES,
    Agreement,
    AgreementAttempt,
)
from .numbers import normalize_number
from .records import clean_text
from .types import iso_utc

__all__ = ["MAX_NOTES", "Agreements", "checked_agreement"]

#: An agreement's notes are cut here (the column is text; the console sends up to this).
MAX_NOTES = 20_000


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

    def get_agreement(self, agreement_id: int) -> dict[str, Any] | None:
        with self._sessions() as session:
            row = session.scalar(
                select(Agreement)
                .where(Agreement.id == agreement_id)
                .options(selectinload(Agreement.attempts))
            )
            return None if row is None else _agreement(row)

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
            return [_agreement(row) for row in session.scalars(query)]


def _agreement(row: Agreement) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "customer_id": row.customer_id,
        "call_id": row.call_id,
        "owner_operator_id": row.owner_operator_id,
        "deadline": iso_utc(row.deadline),
        "callback_number": row.callback_number,
        "window_start": iso_utc(row.window_start),
        "window_end": iso_utc(row.window_end),
        "notes": row.notes,
        "created_at": iso_utc(row.created_at),
        "attempts": [
            {
                "number": a.number,
                "operator_id": a.operator_id,
                "call_id": a.call_id,
                "node": a.node,
                "started_at": iso_utc(a.started_at),
                "ended_at": iso_utc(a.ended_at),
                "outcome": a.outcome,
            }
            for a in row.attempts
        ],
    }
