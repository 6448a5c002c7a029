"""Reading call records in the JSON shape of PRODUCT.md, and operators annotating them.

Synchronous: the HTTP API runs these in its thread pool. The dicts returned are what
the API sends, so names and types here are the public interface: times are ISO 8601 UTC
strings with ``Z``, durations are seconds (float, millisecond precision), operators are
usernames (a device where nobody was bound to it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload

from .db import StoreService, writing
from .models import DISPOSITIONS, CallNoteChange, CallRecord, CallRing, CallSegment, Operator
from .numbers import normalize_number
from .ports import CallViewer
from .records import clean_text
from .types import iso_utc, parse_time

__all__ = ["CallNotFound", "CallQueries", "InvalidAnnotation", "note_change"]

MAX_LIMIT = 500
UNSET: Any = object()


class CallNotFound(LookupError):
    pass


class InvalidAnnotation(ValueError):
    """A PATCH with a value operators may not set (unknown disposition, too long, ...)."""

    user_facing = True


class CallQueries(StoreService):
    def list_calls(
        self,
        number: str | None = None,
        since: datetime | str | float | None = None,
        limit: int = 50,
        operator_id: int | None = None,
        *,
        until: datetime | str | float | None = None,
        before_id: int | None = None,
        queue: str | None = None,
        customer_id: int | None = None,
        outcome: str | None = None,
        viewer: CallViewer | None = None,
    ) -> list[dict[str, Any]]:
        """Calls, newest first. ``number`` in any format is normalised before matching
        (so ``0470 12 34 56`` finds ``+32470123456``); a number that does not normalise
        matches the raw caller ID exactly. ``operator_id`` keeps the calls the operator
        rang for, answered or talked on. ``before_id`` pages on from an earlier answer.
        ``viewer``: only the calls that operator may see, filtered here, in the query, so
        a page is never short (``CallViewer``)."""
        limit = max(1, min(int(limit), MAX_LIMIT))
        query = select(CallRecord)
        if number is not None and number.strip():
            e164 = normalize_number(number, self._region)
            if e164 is not None:
                query = query.where(CallRecord.caller_number == e164)
            else:
                query = query.where(CallRecord.caller_number_raw == clean_text(number, 128))
        if (start := parse_time(since)) is not None:
            query = query.where(CallRecord.started_at >= start)
        if (end := parse_time(until)) is not None:
            query = query.where(CallRecord.started_at < end)
        if operator_id is not None:
            query = query.where(_involving(operator_id))
        if queue is not None:
            query = query.where(CallRecord.queue == queue)
        if customer_id is not None:
            query = query.where(CallRecord.customer_id == customer_id)
        if outcome is not None:
            query = query.where(CallRecord.outcome == outcome)
        if viewer is not None:
            query = query.where(_visible(viewer))
        if before_id is not None:
            query = _before(query, before_id)
        query = query.order_by(CallRecord.started_at.desc(), CallRecord.id.desc()).limit(limit)
        with self._sessions() as session:
            rows = session.scalars(_with_children(query)).all()
            return _render(session, rows)

    def get_call(self, call_id: int) -> dict[str, Any]:
        """One call, with ``notes_history``: every change to its notes, category and
        disposition, oldest first (the lists leave it out)."""
        with self._sessions() as session:
            row = session.scalar(_with_children(select(CallRecord).where(CallRecord.id == call_id)))
            if row is None:
                raise CallNotFound(call_id)
            call = _render(session, [row])[0]
            changes = session.execute(
                select(CallNoteChange, Operator.username)
                .outerjoin(Operator, Operator.id == CallNoteChange.operator_id)
                .where(CallNoteChange.call_id == call_id)
                .order_by(CallNoteChange.at, CallNoteChange.id)
            ).all()
            call["notes_history"] = [note_change(c, username) for c, username in changes]
            return call

    def find_call(self, pbx: str, linkedid: str) -> dict[str, Any] | None:
        """The record of a call the model knows by its key (for pops and call updates)."""
        with self._sessions() as session:
            row = session.scalar(
                _with_children(
                    select(CallRecord).where(CallRecord.pbx == pbx, CallRecord.linkedid == linkedid)
                )
            )
            return None if row is None else _render(session, [row])[0]

    def patch_call(
        self,
        call_id: int,
        *,
        notes: str | None = UNSET,
        category: str | None = UNSET,
        disposition: str | None = UNSET,
        by_operator: int | None = None,
    ) -> dict[str, Any]:
        """Set what operators own; an argument left out is left alone, None clears it."""
        changes = checked_annotation(notes, category, disposition)
        with writing(self._sessions) as session:
            row = session.get(CallRecord, call_id, with_for_update=True)
            if row is None:
                raise CallNotFound(call_id)
            if changes:
                now = self._now()
                for name, value in changes.items():
                    old = getattr(row, name)
                    if old != value:
                        session.add(
                            CallNoteChange(
                                call_id=call_id,
                                at=now,
                                operator_id=by_operator,
                                field=name,
                                old=old,
                                new=value,
                            )
                        )
                    setattr(row, name, value)
                row.annotated_at = now
                row.annotated_by_operator_id = by_operator
        return self.get_call(call_id)


def checked_annotation(
    notes: str | None, category: str | None, disposition: str | None
) -> dict[str, str | None]:
    """What operators set on a call, checked: the arguments given (not ``UNSET``), None
    clears one. The SQL store and its memory twin take the same changes."""
    changes: dict[str, str | None] = {}
    if notes is not UNSET:
        changes["notes"] = checked_text("notes", notes, 20_000)
    if category is not UNSET:
        changes["category"] = checked_text("category", category, 100)
    if disposition is not UNSET:
        if disposition is not None and disposition not in DISPOSITIONS:
            raise InvalidAnnotation(
                f"disposition must be one of {', '.join(DISPOSITIONS)}, not {disposition!r}"
            )
        changes["disposition"] = disposition
    return changes


def note_change(change: Any, username: str | None) -> dict[str, Any]:
    """One entry of a call's ``notes_history`` (a ``CallNoteChange`` or its twin's row)."""
    return {
        "at": iso_utc(change.at),
        "operator": username,
        "field": change.field,
        "old": change.old,
        "new": change.new,
    }


def checked_text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidAnnotation(f"{name} must be text")
    if len(value) > limit:
        raise InvalidAnnotation(f"{name} is longer than {limit} characters")
    return clean_text(value, limit) or None


def _involving(operator_id: int) -> Any:
    return or_(
        CallRecord.answered_by_operator_id == operator_id,
        CallRecord.id.in_(select(CallRing.call_id).where(CallRing.operator_id == operator_id)),
        CallRecord.id.in_(
            select(CallSegment.call_id).where(CallSegment.operator_id == operator_id)
        ),
    )


def _visible(viewer: CallViewer) -> Any:
    """The calls ``viewer`` may see: those they are involved in (by operator id, on the
    indexed ``operator_id`` columns, or by device where the record names none), and every
    ended call unless ``own``."""
    me, devices = viewer.operator_id, list(viewer.devices)
    rung = select(CallRing.call_id).where(CallRing.operator_id == me)
    talked = select(CallSegment.call_id).where(CallSegment.operator_id == me)
    mine = [CallRecord.answered_by_operator_id == me]
    if devices:
        unbound_ring = (CallRing.operator_id.is_(None)) & CallRing.device.in_(devices)
        unbound_talk = (CallSegment.operator_id.is_(None)) & CallSegment.device.in_(devices)
        rung = select(CallRing.call_id).where((CallRing.operator_id == me) | unbound_ring)
        talked = select(CallSegment.call_id).where((CallSegment.operator_id == me) | unbound_talk)
        mine.append(
            CallRecord.answered_by_operator_id.is_(None)
            & CallRecord.answered_by_device.in_(devices)
        )
    involved = or_(*mine, CallRecord.id.in_(rung), CallRecord.id.in_(talked))
    return involved if viewer.own else or_(CallRecord.ended_at.is_not(None), involved)


def _before(query: Select[CallRecord], before_id: int) -> Select[CallRecord]:
    """Keyset paging in (started_at, id) order."""
    anchor = select(CallRecord.started_at).where(CallRecord.id == before_id).scalar_subquery()
    return query.where(
        or_(
            CallRecord.started_at < anchor,
            (CallRecord.started_at == anchor) & (CallRecord.id < before_id),
        )
    )


def _with_children(query: Select[CallRecord]) -> Select[CallRecord]:
    return query.options(
        selectinload(CallRecord.rings),
        selectinload(CallRecord.segments),
        selectinload(CallRecord.transfers),
    )


def _render(session: Session, rows: Iterable[CallRecord]) -> list[dict[str, Any]]:
    rows = list(rows)
    ids: set[int] = set()
    for row in rows:
        ids.update(
            i for i in (row.answered_by_operator_id, row.annotated_by_operator_id) if i is not None
        )
        ids.update(r.operator_id for r in row.rings if r.operator_id is not None)
        ids.update(s.operator_id for s in row.segments if s.operator_id is not None)
        for t in row.transfers:
            ids.update(i for i in (t.from_operator_id, t.to_operator_id) if i is not None)
    names: dict[int, str] = {}
    if ids:
        query = select(Operator.id, Operator.username).where(Operator.id.in_(ids))
        names = dict(session.execute(query).all())
    return [call_dict(row, names) for row in rows]


def _who(names: dict[int, str], operator_id: int | None, device: str | None) -> str | None:
    if operator_id is not None and operator_id in names:
        return names[operator_id]
    return device


def _ended_with(row: CallRecord, names: dict[int, str]) -> str | None:
    """Who ended up with the call: talking now, or the last to stop talking."""
    if not row.segments:
        return None
    open_now = [s for s in row.segments if s.ended_at is None]
    last = open_now[-1] if open_now else max(row.segments, key=lambda s: s.ended_at or s.started_at)
    return _who(names, last.operator_id, last.device)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def call_dict(row: CallRecord, names: dict[int, str]) -> dict[str, Any]:
    rang: list[str] = []
    for ring in row.rings:
        if ring.outside:
            continue  # the customer's phone on a callback
        who = _who(names, ring.operator_id, ring.device)
        if who is not None and who not in rang:
            rang.append(who)
    return {
        "id": row.id,
        "pbx": row.pbx,
        "linkedid": row.linkedid,
        "direction": row.direction,
        "caller_number": row.caller_number,
        "caller_number_raw": row.caller_number_raw,
        "caller_name": row.caller_name,
        "caller_withheld": row.caller_withheld,
        "dialled": row.dialled,
        "queue": row.queue,
        "queues": list(row.queues),
        "started_at": iso_utc(row.started_at),
        "queue_joined_at": iso_utc(row.queue_joined_at),
        "answered_at": iso_utc(row.answered_at),
        "ended_at": iso_utc(row.ended_at),
        "ended_at_approximate": row.ended_at_approximate,
        "wait_seconds": _seconds(row.wait_seconds),
        "talk_seconds": _seconds(row.talk_seconds),
        "rang": rang,
        "answered_by": _who(names, row.answered_by_operator_id, row.answered_by_device),
        "answered_by_device": row.answered_by_device,
        "outcome": row.outcome,
        "queue_result": row.queue_result,
        "ended_with": _ended_with(row, names),
        "hung_up_by": row.hung_up_by,
        "hangup_cause": row.hangup_cause,
        "transfers": [
            {
                "kind": t.kind,
                "at": iso_utc(t.at),
                "from": _who(names, t.from_operator_id, t.from_device),
                "to": _who(names, t.to_operator_id, t.to_target),
                "from_device": t.from_device,
                "to_target": t.to_target,
            }
            for t in row.transfers
        ],
        "rings": [
            {
                "device": r.device,
                "operator": names.get(r.operator_id) if r.operator_id is not None else None,
                "queue": r.queue,
                "member_name": r.member_name,
                "started_at": iso_utc(r.started_at),
                "ended_at": iso_utc(r.ended_at),
                "result": r.result,
                "outside": r.outside,
            }
            for r in row.rings
        ],
        "segments": [
            {
                "device": s.device,
                "operator": names.get(s.operator_id) if s.operator_id is not None else None,
                "started_at": iso_utc(s.started_at),
                "ended_at": iso_utc(s.ended_at),
            }
            for s in row.segments
        ],
        "customer_id": row.customer_id,
        "agreement_id": row.agreement_id,
        "agreement_ref": row.agreement_ref,
        "complete": row.complete,
        "notes": row.notes,
        "category": row.category,
        "disposition": row.disposition,
        "annotated_at": iso_utc(row.annotated_at),
        "annotated_by": names.get(row.annotated_by_operator_id)
        if row.annotated_by_operator_id is not None
        else None,
        "updated_at": iso_utc(row.updated_at),
    }
