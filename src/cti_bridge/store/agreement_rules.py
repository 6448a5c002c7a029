"""The agreement book's rules, on plain values: shared by the SQL store and its twin.

What a new agreement may be, when a callback first falls due, what a change does (the
closing rules, the history it writes, when the dialer must look again) and how an
agreement reads in the API. ``store/agreements.py`` applies them to rows in a
transaction, ``store/memory/agreements.py`` to dicts under its lock; neither decides
anything of its own, so the two cannot drift apart. Pure: no session, no clock (``now``
is handed in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cti_bridge.vocabulary import (
    AGREEMENT_DISPOSITIONS,
    AGREEMENT_KINDS,
    AGREEMENT_ORIGINS,
    AGREEMENT_STATUSES,
    ATTEMPT_OUTCOMES,
)

from .customers import InvalidRecord
from .merge import clean_text
from .numbers import normalize_number
from .types import iso_utc

__all__ = [
    "CHANGES",
    "CLOSED",
    "CLOSING",
    "DUE",
    "EVENT_KINDS",
    "FLAG_REASONS",
    "MAX_DETAIL",
    "MAX_NOTES",
    "MAX_QUEUE",
    "PENDING",
    "Change",
    "agreement_view",
    "checked_agreement",
    "checked_changes",
    "checked_event",
    "checked_filters",
    "checked_flag",
    "checked_outcome",
    "checked_status",
    "first_due",
    "planned_change",
]

#: An agreement's notes are cut here (the column is text; the console sends up to this).
MAX_NOTES = 20_000
MAX_QUEUE = 128  # the column's length
MAX_DETAIL = 256  # an attempt's detail
#: What ``update_agreement`` changes, and the statuses it may set.
CHANGES = frozenset(
    {"status", "disposition", "deadline", "owner_operator_id", "window", "notes", "queue"}
)
CLOSING = ("done", "cancelled")
#: A closed agreement's status stays; the pending ones are what "due" looks at.
CLOSED = ("done", "cancelled")
PENDING = ("open", "dialling")
DUE = ("today", "overdue")
#: Why the dialer gave an agreement up (``finish_attempt``'s ``flag``, ``flag_agreement``).
FLAG_REASONS = ("attempts_exhausted", "deadline_passed", "no_calling_time")
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


def _one_of(name: str, value: object, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidRecord(f"{name} must be one of {', '.join(allowed)}")


def checked_status(status: str) -> None:
    _one_of("status", status, AGREEMENT_STATUSES)


def checked_outcome(outcome: str) -> None:
    _one_of("outcome", outcome, ATTEMPT_OUTCOMES)


def checked_flag(reason: str) -> None:
    _one_of("flag", reason, FLAG_REASONS)


def checked_event(kind: str, at: datetime) -> None:
    """A known kind, an aware time (the history is compared and ordered in UTC)."""
    _one_of("event kind", kind, EVENT_KINDS)
    _aware(at)


def checked_agreement(
    kind: str,
    callback_number: str | None,
    window: tuple[datetime, datetime] | None,
    region: str,
    origin: str = "operator",
) -> str | None:
    """The checks of a new agreement (``InvalidRecord`` says what is wrong); returns the
    callback number in E.164."""
    _one_of("kind", kind, AGREEMENT_KINDS)
    _one_of("origin", origin, AGREEMENT_ORIGINS)
    number = None
    if callback_number is not None:
        number = normalize_number(callback_number, region)
        if number is None:
            raise InvalidRecord(f"{callback_number[:40]!r} is not a phone number")
    if window is not None and window[1] <= window[0]:
        raise InvalidRecord("a callback window must end after it starts")
    return number


def first_due(
    kind: str,
    due_at: datetime | None,
    window: tuple[datetime, datetime] | None,
    now: datetime,
) -> tuple[datetime | None, datetime | None]:
    """``(due_at, next_attempt_at)`` of a new agreement. A callback falls due at
    ``due_at``, else when the customer's window opens, else now; the dialer first looks
    at it then. Other kinds keep the ``due_at`` given and are never dialled."""
    if kind != "callback":
        return due_at, None
    due = due_at or (window[0] if window is not None else now)
    return due, due


def checked_filters(
    status: str | None,
    due: str | None,
    now: datetime | None,
    today: tuple[datetime, datetime] | None,
    kind: str | None = None,
) -> None:
    """The checks of ``list_agreements``'s filters."""
    if status is not None:
        checked_status(status)
    if kind is not None:
        _one_of("kind", kind, AGREEMENT_KINDS)
    if due is not None:
        _one_of("due", due, DUE)
    if due == "overdue" and now is None:
        raise TypeError("due='overdue' needs now")
    if due == "today" and today is None:
        raise TypeError("due='today' needs today=(start, end)")


def checked_changes(row: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
    """The checks of ``update_agreement`` against the agreement as it is (``status``,
    ``kind``, ``disposition``); ``InvalidRecord`` starts with the field's name. A closing
    status (done|cancelled) on an agreement not closed yet (open, dialling, or failed: a
    supervisor closing a flagged one); closing a callback ``done`` needs a disposition
    (given now or before); a window that ends after it starts."""
    unknown = sorted(set(changes) - CHANGES)
    if unknown:
        raise TypeError(f"update_agreement cannot change {', '.join(unknown)}")
    if changes.get("disposition") is not None:
        _one_of("disposition", changes["disposition"], AGREEMENT_DISPOSITIONS)
    if "status" in changes:
        status = changes["status"]
        _one_of("status", status, CLOSING)
        if row["status"] in CLOSED:
            raise InvalidRecord(f"status: the agreement is already {row['status']}")
        disposition = changes.get("disposition", row["disposition"])
        if status == "done" and row["kind"] == "callback" and disposition is None:
            raise InvalidRecord(
                "disposition: closing a callback needs one of " + ", ".join(AGREEMENT_DISPOSITIONS)
            )
    window = changes.get("window")
    if window is not None and window[1] <= window[0]:
        raise InvalidRecord("window_end: a callback window must end after it starts")


@dataclass(frozen=True)
class Change:
    """What one ``update_agreement`` does: the columns to set, and its history."""

    values: dict[str, Any] = field(default_factory=dict)
    #: The ``changed`` event's details, ``{field: [old, new]}`` as JSON (empty: none).
    changed: dict[str, list[Any]] = field(default_factory=dict)
    #: The ``closed`` event's details (``None``: not closed now).
    closed: dict[str, Any] | None = None


def planned_change(
    row: Mapping[str, Any],
    changes: Mapping[str, Any],
    now: datetime,
    username: Callable[[int | None], str | None],
) -> Change:
    """The change ``changes`` makes to ``row`` (already checked): only what differs.

    Closing sets ``closed_at`` and clears ``next_attempt_at`` (the dialer leaves it; an
    attempt under way ends by itself). A new deadline or window on an open callback
    sets ``next_attempt_at`` to ``max(now, due_at)``, so the dialer decides again. The
    history names the API's fields: ``owner`` by username, times in ISO 8601 UTC."""
    wanted: dict[str, Any] = {}
    for name in ("status", "disposition", "deadline", "owner_operator_id"):
        if name in changes:
            wanted[name] = changes[name]
    if "window" in changes:
        window = changes["window"]
        wanted["window_start"] = None if window is None else window[0]
        wanted["window_end"] = None if window is None else window[1]
    if "notes" in changes:
        wanted["notes"] = clean_text(changes["notes"], MAX_NOTES)
    if "queue" in changes:
        wanted["queue"] = clean_text(changes["queue"], MAX_QUEUE) or None
    values = {k: v for k, v in wanted.items() if v != row[k]}
    closing = "status" in values
    times = ("deadline", "window_start", "window_end")
    changed: dict[str, list[Any]] = {}
    for name, new in values.items():
        if name == "status" or (closing and name == "disposition"):
            continue  # the ``closed`` event tells these
        if name == "owner_operator_id":
            changed["owner"] = [username(row[name]), username(new)]
        elif name in times:
            changed[name] = [iso_utc(row[name]), iso_utc(new)]
        else:
            changed[name] = [row[name], new]
    closed = None
    if closing:
        values["closed_at"] = now
        values["next_attempt_at"] = None
        disposition = values.get("disposition", row["disposition"])
        closed = {"status": values["status"], "disposition": disposition}
    elif (
        row["kind"] == "callback"
        and row["status"] == "open"
        and {"deadline", "window_start", "window_end"} & set(values)
    ):
        due = row["due_at"]
        values["next_attempt_at"] = now if due is None else max(now, due)
    if values:
        values["updated_at"] = now
    return Change(values=values, changed=changed, closed=closed)


def agreement_view(
    row: Mapping[str, Any],
    attempts: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    *,
    username: Callable[[int | None], str | None],
    customer_name: str | None,
    call_of: Callable[[Mapping[str, Any]], int | None],
) -> dict[str, Any]:
    """An agreement as the API shows it (docs/console.md, SPEC-10): owner and operators
    by username beside their ids, the customer's name, attempts and history oldest
    first, times in ISO 8601 UTC. ``call_of(attempt)`` is the attempt's call record: the
    one stored, else the call whose ``pbx`` and ``linkedid`` are the attempt's ``pbx``
    and ``channel_id`` (the callback call, recorded like any call)."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "customer_id": row["customer_id"],
        "customer_name": customer_name,
        "call_id": row["call_id"],
        "owner_operator_id": row["owner_operator_id"],
        "owner": username(row["owner_operator_id"]),
        "queue": row["queue"],
        "origin": row["origin"],
        "flagged": bool(row["flagged"]),
        "disposition": row["disposition"],
        "deadline": iso_utc(row["deadline"]),
        "due_at": iso_utc(row["due_at"]),
        "next_attempt_at": iso_utc(row["next_attempt_at"]),
        "callback_number": row["callback_number"],
        "window_start": iso_utc(row["window_start"]),
        "window_end": iso_utc(row["window_end"]),
        "notes": row["notes"],
        "created_at": iso_utc(row["created_at"]),
        "updated_at": iso_utc(row["updated_at"]),
        "closed_at": iso_utc(row["closed_at"]),
        "attempts": [
            {
                "number": a["number"],
                "operator_id": a["operator_id"],
                "operator": username(a["operator_id"]),
                "call_id": call_of(a),
                "node": a["node"],
                "pbx": a["pbx"],
                "channel_id": a["channel_id"],
                "started_at": iso_utc(a["started_at"]),
                "ended_at": iso_utc(a["ended_at"]),
                "outcome": a["outcome"],
                "detail": a["detail"],
            }
            for a in sorted(attempts, key=lambda a: a["number"])
        ],
        "history": [
            {
                "at": iso_utc(e["at"]),
                "kind": e["kind"],
                "operator": username(e["operator_id"]),
                "details": dict(e["details"] or {}),
            }
            for e in sorted(events, key=lambda e: (e["at"], e["id"]))
        ],
    }


def _aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: pass an aware (UTC) datetime")
