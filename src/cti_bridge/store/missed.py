"""Missed calls in the promise book, on SQL (the missed room's port:
``missed/ports.py`` ``MissedCallBook``; the memory twin: ``memory/missed.py``).

A number has at most one open missed-call agreement: the first abandoned call makes it,
the next ones join it as ``missed_call`` events, an answered inbound call from the number
closes it. Each event's details carry the call's ``pbx`` and ``linkedid``, and that is
what makes both operations idempotent: a call already in a missed-call agreement's
history (a replay, a resync) changes nothing, and an answered call only closes
agreements that fell due before it was answered.

Two nodes that see the same PBX handle the same call at the same moment. The work on a
number is serialised in the database: on PostgreSQL a transaction-scoped advisory lock
on the number, on SQLite the write lock every write transaction takes at its start.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .agreement_rules import MAX_QUEUE, PENDING
from .agreements import add_event
from .db import StoreService, writing
from .merge import clean_text
from .models import Agreement, AgreementEvent, CallRecord

__all__ = ["JOINING", "MISSED_CALL", "SOLVED", "MissedCalls", "created", "is_call"]

#: The agreement's ``origin``, and the disposition an answered call closes it with.
MISSED_CALL = "missed_call"
SOLVED = "solved_on_inbound_call"
#: The events that name a missed call (the first one, and those that joined it).
JOINING = ("created", "missed_call")
#: The advisory lock's first key on PostgreSQL: "miss" (the second is the number's hash).
_LOCK_SPACE = 0x6D697373 - (1 << 31)

Recorded = Literal["created", "joined", "unchanged"]


class MissedCalls(StoreService):
    def record_missed_call(
        self,
        pbx: str,
        linkedid: str,
        number: str,
        *,
        queue: str,
        at: datetime,
        deadline: datetime,
        customer_id: int | None,
    ) -> tuple[Recorded, int]:
        now = self._now()
        queue = clean_text(queue, MAX_QUEUE) or ""
        with writing(self._sessions) as session:
            _lock_number(session, number)
            known = session.execute(
                select(AgreementEvent.agreement_id, AgreementEvent.details)
                .join(Agreement, Agreement.id == AgreementEvent.agreement_id)
                .where(
                    Agreement.callback_number == number,
                    Agreement.origin == MISSED_CALL,
                    AgreementEvent.kind.in_(JOINING),
                )
                .order_by(AgreementEvent.agreement_id)
            ).all()
            for agreement_id, details in known:
                if is_call(details, pbx, linkedid):
                    return "unchanged", agreement_id
            call_id = _call_id(session, pbx, linkedid)
            facts = {"pbx": pbx, "linkedid": linkedid, "call_id": call_id}
            joined = session.scalar(
                select(Agreement)
                .where(
                    Agreement.callback_number == number,
                    Agreement.origin == MISSED_CALL,
                    Agreement.status.in_(PENDING),
                )
                .order_by(Agreement.id)
                .limit(1)
                .with_for_update()
            )
            if joined is not None:
                add_event(session, joined.id, "missed_call", at, details=facts)
                if joined.customer_id is None:  # the number found its customer since
                    joined.customer_id = customer_id
                joined.updated_at = now
                return "joined", joined.id
            agreement = Agreement(
                kind="callback",
                status="open",
                origin=MISSED_CALL,
                customer_id=customer_id,
                call_id=call_id,
                queue=queue,
                callback_number=number,
                deadline=deadline,
                due_at=at,
                next_attempt_at=at,
                flagged=False,
                created_at=now,
                updated_at=now,
            )
            session.add(agreement)
            session.flush()
            add_event(session, agreement.id, "created", at, details=created(facts, queue))
            return "created", agreement.id

    def resolve_by_call(self, pbx: str, linkedid: str, number: str, at: datetime) -> list[int]:
        now = self._now()
        with writing(self._sessions) as session:
            _lock_number(session, number)
            rows = session.scalars(
                select(Agreement)
                .where(
                    Agreement.callback_number == number,
                    Agreement.origin == MISSED_CALL,
                    Agreement.status.in_(PENDING),
                    Agreement.due_at <= at,
                )
                .order_by(Agreement.id)
                .with_for_update()
            ).all()
            if not rows:
                return []
            facts = {
                "pbx": pbx,
                "linkedid": linkedid,
                "call_id": _call_id(session, pbx, linkedid),
                "status": "done",
                "disposition": SOLVED,
            }
            for agreement in rows:
                agreement.status = "done"
                agreement.disposition = SOLVED
                agreement.closed_at = at
                agreement.next_attempt_at = None
                agreement.updated_at = now
                add_event(session, agreement.id, "resolved_by_call", at, details=facts)
            return [agreement.id for agreement in rows]


def created(facts: Mapping[str, Any], queue: str) -> dict[str, Any]:
    """The ``created`` event's details: what every agreement's says (kind, origin), and
    the call that made it."""
    return {"kind": "callback", "origin": MISSED_CALL, **facts, "queue": queue}


def is_call(details: Mapping[str, Any] | None, pbx: str, linkedid: str) -> bool:
    """Do an event's details name the call ``pbx`` + ``linkedid``?"""
    if not details:
        return False
    return details.get("pbx") == pbx and details.get("linkedid") == linkedid


def _lock_number(session: Session, number: str) -> None:
    """Serialise the work on one number across nodes (SQLite: the write lock does)."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(number.encode()) - (1 << 31)  # a signed int4
        session.execute(select(func.pg_advisory_xact_lock(_LOCK_SPACE, key)))


def _call_id(session: Session, pbx: str, linkedid: str) -> int | None:
    """The call's record, if the record writer has written it already."""
    found: int | None = session.scalar(
        select(CallRecord.id).where(CallRecord.pbx == pbx, CallRecord.linkedid == linkedid)
    )
    return found
