"""The console's business rules: who may change a call, what an agreement request holds.

Pure checks (no store, no Twisted): ``console/service.py`` asks them before it writes.
A refusal is the web's ``BadRequest`` (400, naming the field) or ``Forbidden`` (403).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from cti_bridge.vocabulary import AGREEMENT_DISPOSITIONS
from cti_bridge.web.auth import Principal
from cti_bridge.web.http import BadRequest, parse_utc

__all__ = [
    "AGREEMENT_CHANGES",
    "AGREEMENT_FIELDS",
    "MAX_NOTES",
    "PATCHABLE",
    "agreement_changes",
    "agreement_request",
    "check_patch",
    "due_from",
    "flagged_filter",
    "involved",
    "may_change_call",
    "may_handle_agreement",
    "may_see_call",
    "may_set_owner",
    "service_hours",
    "true_or_false",
    "unowned_filter",
]

#: What an operator may change on a call record.
PATCHABLE = ("notes", "category", "disposition")
MAX_NOTES = 20_000


def involved(principal: Principal, call: Mapping[str, Any]) -> bool:
    """Did this operator ring, answer or talk on the call?"""
    name = principal.username
    if call.get("answered_by") == name or name in call.get("rang", ()):
        return True
    return any(s.get("operator") == name for s in call.get("segments", ()))


def _involved_by_device(principal: Principal, call: Mapping[str, Any]) -> bool:
    """Did one of the operator's devices ring or talk where the record names nobody?"""
    devices = principal.devices
    if call.get("answered_by_device") in devices and call.get("answered_by") == call.get(
        "answered_by_device"
    ):
        return True
    return any(
        part.get("operator") is None and part.get("device") in devices
        for part in (*(call.get("rings") or ()), *(call.get("segments") or ()))
    )


def may_see_call(
    principal: Principal,
    call: Mapping[str, Any],
    history: str = "shared",
    ringing: Collection[tuple[str, str]] = (),
) -> bool:
    """May this principal read the call (docs/security.md, "Which calls an operator
    sees")? Supervisors and admins every call. An operator the calls they are involved
    in (rang for, answered, talked on; by username, or by one of their devices where the
    record names nobody), and with ``history = "shared"`` (``[web] call_history``) every
    ended call as well: a live call rings on somebody's phone and is theirs until it
    ends. The store's ``CallViewer`` is the same rule in the list's query."""
    if principal.sees_everything:
        return True
    if history == "shared" and call.get("ended_at") is not None:
        return True
    if (call.get("pbx"), call.get("linkedid")) in ringing:
        return True  # popped on their screen now; the record may not name the ring yet
    return involved(principal, call) or _involved_by_device(principal, call)


def may_change_call(principal: Principal, call: Mapping[str, Any]) -> bool:
    """May this principal change the call's notes, category and disposition, or make an
    agreement on it (docs/security.md)? Supervisors and admins always. An operator
    when they talked on it: they answered it, or answered a part of it (a transfer's
    target, a callback's operator: a talk segment). Being rung is enough only while
    nobody has answered it (notes begun during the ring, a missed call's note): once
    somebody answered, the call is theirs, not every phone's that rang."""
    if principal.sees_everything:
        return True
    name = principal.username
    segments = list(call.get("segments") or ())
    if call.get("answered_by") == name or any(s.get("operator") == name for s in segments):
        return True
    answered = call.get("answered_by") is not None or call.get("answered_at") is not None
    return not answered and not segments and name in call.get("rang", ())


def may_handle_agreement(principal: Principal, agreement: Mapping[str, Any]) -> bool:
    """Supervisors and admins every agreement; an operator the ones they own, the ones
    nobody owns (the pool: a missed call's callback, until somebody takes it), and the
    one whose last attempt rang their phone (after the owner's grace the dialer rings
    any operator of the queue: that operator reads and closes the callback they are on).
    """
    owner = agreement.get("owner_operator_id")
    if principal.sees_everything or owner is None or owner == principal.operator_id:
        return True
    attempts = list(agreement.get("attempts") or ())
    return bool(attempts) and attempts[-1].get("operator") == principal.username


def may_set_owner(principal: Principal, agreement: Mapping[str, Any], owner: str | None) -> bool:
    """Supervisors and admins hand any agreement to anybody (or to nobody); an operator
    may only take one nobody owns, or keep their own."""
    if principal.sees_everything:
        return True
    if owner != principal.username:
        return False
    return agreement.get("owner_operator_id") in (None, principal.operator_id)


def check_patch(changes: Mapping[str, Any]) -> None:
    """A PATCH /api/calls/{id} body changes only ``PATCHABLE`` fields, to text or null."""
    unknown = sorted(set(changes) - set(PATCHABLE))
    if unknown:
        raise BadRequest(f"cannot change {', '.join(unknown)}; only {', '.join(PATCHABLE)}")
    if not changes:
        raise BadRequest(f"nothing to change; give one of {', '.join(PATCHABLE)}")
    for name, value in changes.items():
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name} must be a string or null")


# -- POST /api/agreements ---------------------------------------------------------------


def _when(body: Mapping[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO 8601 date and time")
    if len(value) > 40:
        raise BadRequest(f"{name} is too long")
    try:
        return parse_utc(value, name)  # also out of range once in UTC
    except BadRequest:
        raise BadRequest(f"{name} must be an ISO 8601 date and time") from None


def _id(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise BadRequest(f"{name} must be a positive whole number or null")
    return value


def _text(body: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string or null")
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


AGREEMENT_FIELDS = frozenset(
    {"kind", "deadline", "call_id", "customer_id", "callback_number", "window_start",
     "window_end", "notes", "queue", "due_at"}
)  # fmt: skip
MAX_QUEUE = 128


def agreement_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The checked fields of a POST /api/agreements body (BadRequest names the field)."""
    unknown = sorted(set(body) - AGREEMENT_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown)}")
    kind = body.get("kind")
    if not isinstance(kind, str) or not kind:
        raise BadRequest("kind is required")
    start, end = _when(body, "window_start"), _when(body, "window_end")
    if (start is None) != (end is None):
        raise BadRequest("window_start and window_end go together")
    return {
        "kind": kind,
        "deadline": _when(body, "deadline"),
        "call_id": _id(body, "call_id"),
        "customer_id": _id(body, "customer_id"),
        "callback_number": _text(body, "callback_number", 64),
        "window": None if start is None or end is None else (start, end),
        "notes": _text(body, "notes", MAX_NOTES),
        "queue": _text(body, "queue", MAX_QUEUE),
        "due_at": _when(body, "due_at"),
    }


def service_hours(contracts: Iterable[Mapping[str, Any]], today: date, default: float) -> float:
    """The business hours a new agreement's deadline lies ahead: the best service level
    among the customer's contracts valid ``today`` (the fewest hours: the customer paid
    for that promise), else ``default`` (``[agreements] default_service_hours``).
    ``contracts`` as the store lists them (``valid_from``/``valid_until`` ISO dates)."""
    levels = [
        c["service_level_hours"]
        for c in contracts
        if c.get("service_level_hours") is not None
        and date.fromisoformat(c["valid_from"]) <= today
        and (c.get("valid_until") is None or today <= date.fromisoformat(c["valid_until"]))
    ]
    return float(min(levels)) if levels else default


def due_from(request: Mapping[str, Any], now: datetime) -> datetime:
    """Where a default deadline is counted from: when the agreement falls due (its
    ``due_at``, else its window's start), never before ``now``. An agreement due in three
    days is not late before it is due."""
    window = request.get("window")
    due = request.get("due_at") or (window[0] if window is not None else None)
    return now if due is None else max(now, due)


def true_or_false(name: str, value: str | None) -> bool | None:
    """A ``true``/``false`` query parameter; absent or empty: ``None``."""
    if value is None or value == "":
        return None
    if value not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false")
    return value == "true"


def flagged_filter(value: str | None) -> bool | None:
    """``GET /api/agreements?flagged=true|false``."""
    return true_or_false("flagged", value)


def unowned_filter(value: str | None) -> bool:
    """``GET /api/agreements?unowned=true``: only those nobody owns."""
    return bool(true_or_false("unowned", value))


# -- PATCH /api/agreements/{id} -----------------------------------------------------------

AGREEMENT_CHANGES = frozenset(
    {"status", "disposition", "deadline", "owner", "window_start", "window_end", "notes",
     "queue"}
)  # fmt: skip


def agreement_changes(body: Mapping[str, Any]) -> dict[str, Any]:
    """The checked fields of a PATCH body: ``status``, ``disposition``
    (``AGREEMENT_DISPOSITIONS`` or null), ``deadline``, ``owner`` (a username or null:
    resolved by the service), the window (both or neither; both null clears it),
    ``notes`` and ``queue``; BadRequest names the field. Whether a status may be set
    (and a callback closed without a disposition) is the store's rule: its refusal
    names the field too."""
    unknown = sorted(set(body) - AGREEMENT_CHANGES)
    if unknown:
        raise BadRequest(f"unknown field {', '.join(unknown)}")
    if not body:
        raise BadRequest(f"nothing to change; give one of {', '.join(sorted(AGREEMENT_CHANGES))}")
    changes: dict[str, Any] = {}
    if "status" in body:
        if not isinstance(body["status"], str):
            raise BadRequest("status must be one of done, cancelled")
        changes["status"] = body["status"]
    if "disposition" in body:
        disposition = body["disposition"]
        if disposition is not None and disposition not in AGREEMENT_DISPOSITIONS:
            raise BadRequest(f"disposition must be one of {', '.join(AGREEMENT_DISPOSITIONS)}")
        changes["disposition"] = disposition
    if "deadline" in body:
        changes["deadline"] = _when(body, "deadline")
    if "owner" in body:
        owner = body["owner"]
        if owner is not None and (not isinstance(owner, str) or not owner or len(owner) > 64):
            raise BadRequest("owner must be a username or null")
        changes["owner"] = owner
    if ("window_start" in body) != ("window_end" in body):
        raise BadRequest("window_start and window_end go together")
    if "window_start" in body:
        start, end = _when(body, "window_start"), _when(body, "window_end")
        if (start is None) != (end is None):
            raise BadRequest("window_start and window_end go together")
        changes["window"] = None if start is None or end is None else (start, end)
    if "notes" in body:
        changes["notes"] = _text(body, "notes", MAX_NOTES)
    if "queue" in body:
        changes["queue"] = _text(body, "queue", MAX_QUEUE)
    return changes
