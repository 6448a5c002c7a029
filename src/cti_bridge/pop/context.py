"""Everything a pop shows about a call, read in one trip to the database thread pool.

``PopContextBuilder.build`` is synchronous and runs in the pool (``service.py`` sends it
there). It runs at every first ring, so it is built to be cheap: the store reads the
whole context at once (``ports.PopContextRead``: on SQL one connection, one read
statement, ``store/pop_read.py``) and makes the call's record row when there is none, and
this module shapes those rows into the pop, in plain Python.

The pop needs the call's record id (the console PATCHes notes onto it) before the record
writer may have seen the call, so the store gets or creates the record row on
``(pbx, linkedid)``, exactly like the writer does (insert-or-nothing on the unique key,
by the calls' one owner, ``store/records.py``); whichever comes first creates it and the
other merges into it. On SQLite that insert waits for the single write lock, which the
record writer holds while it writes a batch; the process's writers queue for it in the
order they came (``store/db.py``), so the pop waits for the batch under way and no
more (tens of ms; 170 ms at worst measured under a flood of 5,000-event batches). Only
a database stuck for over ``lock_wait`` (1 s) sends a pop with everything else and
``call_id`` null; ``call_id(request)`` then gets the id afterwards (``service.py`` asks
for it), so that the call's next messages carry it. A lock wait never costs the pop its
customer.

Everything returned is plain JSON data. Text from the caller and from imported files is
carried as text; nothing here (or anywhere in the pop) builds markup.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cti_bridge.calls.events import Call
from cti_bridge.store.customers import CUSTOMER_FIELDS
from cti_bridge.store.numbers import caller_number
from cti_bridge.store.pop_read import MAX_AGREEMENTS, NOTES_PREVIEW
from cti_bridge.store.records import clean_text
from cti_bridge.store.types import iso_utc

from .ports import PopContextRead

__all__ = [
    "MAX_AGREEMENTS",
    "ContextRequest",
    "PopContextBuilder",
    "fallback_context",
    "local_today",
]

HISTORY = 10
UPSELL_DAYS = 30
#: How long a pop waits for SQLite's write lock to create its call's record row: for one
#: record batch at most (the write queue is first come, first served); this bound is
#: for a database that is stuck.
LOCK_WAIT = 1.0


def local_today(
    clock: Callable[[], float] = time.time, zone: str | None = None
) -> Callable[[], date]:
    """Today in the site's time zone (``[dialer] timezone``): contracts are dated in the
    helpdesk's days. Without ``zone`` (a script that reads no config), the server's."""
    if zone is None:
        return lambda: datetime.fromtimestamp(clock()).date()
    tz = ZoneInfo(zone)
    return lambda: datetime.fromtimestamp(clock(), tz).date()


@dataclass(frozen=True, slots=True)
class ContextRequest:
    """What the builder needs of a call: the snapshot at its first ring, trimmed."""

    pbx: str
    linkedid: str
    direction: str
    started_at: float
    caller_number_raw: str | None
    caller_name: str | None
    caller_withheld: bool
    agreement_ref: str | None
    complete: bool = True
    #: ``CTI_ATTEMPT`` of an originated callback: which attempt this ring is.
    attempt_ref: str | None = None

    @classmethod
    def of(cls, call: Call) -> ContextRequest:
        return cls(
            pbx=call.pbx,
            linkedid=call.linkedid,
            direction=call.direction.value,
            started_at=call.started_at,
            caller_number_raw=call.caller_number_raw,
            caller_name=call.caller_name,
            caller_withheld=call.caller_withheld,
            agreement_ref=call.agreement_id,
            complete=call.complete,
            attempt_ref=call.variables.get("CTI_ATTEMPT"),
        )


def caller_of(request: ContextRequest, region: str) -> dict[str, Any]:
    raw = clean_text(request.caller_number_raw, 128)
    number = caller_number(raw, region, withheld=request.caller_withheld)
    return {
        "number": number.e164,
        "number_raw": raw,
        "name": clean_text(request.caller_name, 512),
        "withheld": number.withheld,
    }


def fallback_context(request: ContextRequest, region: str, problem: str) -> dict[str, Any]:
    """The pop without the database: who is calling, and that the rest is missing."""
    return {
        "call_id": None,
        "caller": caller_of(request, region),
        "customer": None,
        "in_contract": False,
        "contracts": [],
        "history": [],
        "agreements": [],
        "agreement": None,
        "scripts": [],
        "upsell": None,
        "degraded": True,
        "problem": problem,
    }


class PopContextBuilder:
    def __init__(
        self,
        rows: PopContextRead,
        *,
        default_region: str = "BE",
        clock: Callable[[], float] = time.time,
        today: Callable[[], date] | None = None,
        zone: str | None = None,
        history: int = HISTORY,
        lock_wait: float = LOCK_WAIT,
        seen_by: Callable[[int], Collection[str]] | None = None,
    ) -> None:
        self._rows = rows
        #: ``[web] call_history = "own"``: who may see each earlier call of a pop's
        #: history (usernames); the pop core shows an operator only theirs.
        self._seen_by = seen_by
        self._region = default_region
        self._clock = clock
        self._today = today or local_today(clock, zone)
        self._history = history
        self._lock_wait = lock_wait

    def build(self, request: ContextRequest) -> dict[str, Any]:
        caller = caller_of(request, self._region)
        today = self._today()
        now = datetime.fromtimestamp(self._clock(), UTC)
        found, call_id = self._rows.for_call(
            request,
            number=caller["number"],
            agreement_id=_agreement_id(request.agreement_ref),
            limit=self._history,
            lock_wait=self._lock_wait,
        )
        shown = _shown(found, today, now, self._history)
        callback = _json(found["agreement"])
        return {
            "call_id": call_id,
            "caller": caller,
            "customer": shown["customer"],
            "in_contract": shown["in_contract"],
            "contracts": shown["contracts"],
            "history": self._marked(shown["history"]),
            "agreements": shown["agreements"],
            "agreement": None
            if callback is None
            else _agreement(callback, now) | {"attempt": _agreement_id(request.attempt_ref)},
            "scripts": shown["scripts"],
            "upsell": shown["upsell"],
            "degraded": False,
            # No id yet (the write lock was busy): the service asks call_id() later.
            "call_id_pending": call_id is None,
        }

    def _marked(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The history, each call saying who may see it (``seen_by``) when that matters."""
        seen_by = self._seen_by
        if seen_by is None:
            return history
        return [
            {**item, "seen_by": sorted(seen_by(item["id"]))} if item["type"] == "call" else item
            for item in history
        ]

    def customer_context(self, customer_id: int) -> dict[str, Any] | None:
        """What a pop shows about a customer, without a call: for the console's customer
        view (search -> card), so a looked-up customer reads exactly like a pop."""
        today = self._today()
        now = datetime.fromtimestamp(self._clock(), UTC)
        found = self._rows.for_customer(customer_id, limit=self._history)
        shown = _shown(found, today, now, self._history)
        return None if shown["customer"] is None else shown

    def call_id(self, request: ContextRequest) -> int | None:
        """The call's record id, creating the row if needed and waiting for the write lock
        as long as the store does: for a pop that went out without one."""
        return self._rows.ensure_call(request, None)


def involved_in(store: Any, call_id: int) -> set[str]:
    """Who rang for, answered or talked on a stored call (usernames; ``store`` is a
    ``cti_bridge.store.Store``): the operators who may see it with ``call_history =
    "own"`` (``console/rules.py`` ``involved``, the same rule by name)."""
    try:
        call = store.queries.get_call(call_id)
    except LookupError:  # CallNotFound: gone meanwhile
        return set()
    names = {*call.get("rang", ()), call.get("answered_by")}
    names.update(s.get("operator") for s in call.get("segments", ()))
    return {name for name in names if isinstance(name, str)}


def _agreement_id(ref: str | None) -> int | None:
    """The agreement a callback was originated for (CTI_AGREEMENT_ID on the call), or
    the attempt (CTI_ATTEMPT): a number, else nothing (the variable is PBX text)."""
    if ref is None or not (ref.isascii() and ref.isdigit()) or len(ref) > 18:
        return None
    return int(ref)


# -- from the database's JSON to the pop's ------------------------------------------------------


def _json(value: Any) -> Any:
    """SQLite hands JSON over as text, psycopg already parsed."""
    return json.loads(value) if isinstance(value, str) else value


def _rows(value: Any) -> list[dict[str, Any]]:
    return _json(value) or []  # PostgreSQL aggregates no rows to null


def _utc(value: str | None) -> datetime | None:
    """A time from the database's JSON: naive UTC text (SQLite, as ``UTCDateTime`` stores
    it) or ISO 8601 with the session's offset (PostgreSQL)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _shown(found: Mapping[str, Any], today: date, now: datetime, history: int) -> dict[str, Any]:
    """The customer part of a pop (and of the console's customer view); ``history``
    items at most."""
    customer = _customer(found)
    contracts = _contracts(_rows(found["contracts"]), today)
    return {
        "customer": customer,
        "in_contract": any(c["valid_today"] for c in contracts),
        "contracts": contracts,
        "history": _history(_rows(found["history"]), _rows(found["contacts"]), history),
        "agreements": [
            _agreement(row, now)
            for row in sorted(_rows(found["agreements"]), key=_deadline_order)[:MAX_AGREEMENTS]
        ],
        "scripts": _scripts(_rows(found["scripts"])),
        "upsell": _upsell(contracts),
    }


def _customer(found: Mapping[str, Any]) -> dict[str, Any] | None:
    card = _json(found["customer"])
    if card is None:
        return None
    numbers = sorted(_rows(found["numbers"]), key=lambda n: n["id"])
    products = sorted(_rows(found["products"]), key=lambda p: (p["code"], p["owned"]))
    return {
        **{name: card[name] for name in CUSTOMER_FIELDS},  # what the API shows, too
        "notes": card["notes"],
        "numbers": [n["number"] for n in numbers],
        "products": [
            {"id": p["id"], "code": p["code"], "name": p["name"], "serial": p["serial"]}
            for p in products
        ],
    }


def valid_on(valid_from: date, valid_until: date | None, day: date) -> bool:
    return valid_from <= day and (valid_until is None or day <= valid_until)


def _contracts(rows: list[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    contracts: list[dict[str, Any]] = []
    for row in rows:
        valid_from = _day(row["valid_from"])
        until = _day(row["valid_until"])
        assert valid_from is not None
        contracts.append(
            {
                "id": row["id"],
                "reference": row["reference"],
                "product": None
                if row["product_id"] is None
                else {
                    "id": row["product_id"],
                    "code": row["product_code"],
                    "name": row["product_name"],
                },
                "covered": list(_json(row["covered"]) or []),
                "service_level_hours": row["service_level_hours"],
                "valid_from": valid_from.isoformat(),
                "valid_until": None if until is None else until.isoformat(),
                "valid_today": valid_on(valid_from, until, today),
                "days_left": None if until is None else (until - today).days,
                "notes": row["notes"],
            }
        )
    # Valid ones first, the one ending soonest first; then the others, newest first.
    valid = [c for c in contracts if c["valid_today"]]
    other = [c for c in contracts if not c["valid_today"]]
    valid.sort(key=lambda c: (c["valid_until"] or "9999-12-31", c["id"]))
    other.sort(key=lambda c: (c["valid_from"], c["id"]), reverse=True)
    return valid + other


def _history(
    calls: list[dict[str, Any]], contacts: list[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """The customer's last calls and contacts that are not calls, merged: newest first
    (a call by its start, a contact by its ``at``; at one instant contacts first, then the
    higher id), at most ``limit``; each item says its ``type``. When nobody has the
    number, the number's calls."""
    items = [(_utc(row["started_at"]), 0, row["id"], _call_item(row)) for row in calls]
    items += [(_utc(row["at"]), 1, row["id"], _contact_item(row)) for row in contacts]
    items.sort(key=lambda item: item[:3], reverse=True)
    return [item for *_, item in items[:limit]]


def _call_item(row: dict[str, Any]) -> dict[str, Any]:
    notes, cut = _preview(row["notes"])
    return {
        "id": row["id"],
        "type": "call",
        "started_at": iso_utc(_utc(row["started_at"])),
        "direction": row["direction"],
        "caller_number": row["caller_number"],
        "queue": row["queue"],
        "answered_by": row["answered_by"],
        "outcome": row["outcome"],
        "wait_seconds": _rounded(row["wait_seconds"]),
        "talk_seconds": _rounded(row["talk_seconds"]),
        "category": row["category"],
        "disposition": row["disposition"],
        "notes": notes,
        "notes_truncated": cut,
    }


def _contact_item(row: dict[str, Any]) -> dict[str, Any]:
    """A contact in the history: as ``POST /api/contacts`` answers it, notes cut."""
    notes, cut = _preview(row["notes"])
    return {
        "id": row["id"],
        "type": "contact",
        "customer_id": row["customer_id"],
        "channel": row["channel"],
        "at": iso_utc(_utc(row["at"])),
        "subject": row["subject"],
        "category": row["category"],
        "disposition": row["disposition"],
        "operator": row["operator"],
        "notes": notes,
        "notes_truncated": cut,
    }


def _deadline_order(row: dict[str, Any]) -> tuple[bool, datetime, int]:
    deadline = _utc(row["deadline"])
    return deadline is None, deadline or datetime.min.replace(tzinfo=UTC), row["id"]


def _agreement(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    notes, cut = _preview(row["notes"])
    deadline = _utc(row["deadline"])
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "deadline": iso_utc(deadline),
        "overdue": row["status"] == "open" and deadline is not None and deadline < now,
        "owner": row["owner"],
        "call_id": row["call_id"],
        "callback_number": row["callback_number"],
        "window_start": iso_utc(_utc(row["window_start"])),
        "window_end": iso_utc(_utc(row["window_end"])),
        "notes": notes,
        "notes_truncated": cut,
        "created_at": iso_utc(_utc(row["created_at"])),
    }


def _scripts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest version of every script of the customer's products."""
    rows.sort(key=lambda r: (r["product_code"], r["name"]))
    return [
        {
            "product": {
                "id": r["product_id"],
                "code": r["product_code"],
                "name": r["product_name"],
            },
            "name": r["name"],
            "version": r["version"],
            "title": r["title"],
            "body": r["body"],
            "created_at": iso_utc(_utc(r["created_at"])),
        }
        for r in rows
    ]


def _upsell(contracts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """A renewal to offer: the valid contract that ends soonest, within 30 days."""
    ending = [
        c
        for c in contracts
        if c["valid_today"] and c["days_left"] is not None and c["days_left"] <= UPSELL_DAYS
    ]
    if not ending:
        return None
    soonest = min(ending, key=lambda c: c["days_left"])
    days = soonest["days_left"]
    when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
    label = soonest["reference"] or (soonest["product"] or {}).get("code") or "the contract"
    return {
        "kind": "contract_renewal",
        "contract_id": soonest["id"],
        "contract": soonest["reference"],
        "valid_until": soonest["valid_until"],
        "days_left": days,
        "text": f"Contract {label} ends {when}: offer a renewal.",
    }


def _preview(text: str | None) -> tuple[str | None, bool]:
    if text is None or len(text) <= NOTES_PREVIEW:
        return text, False
    return text[:NOTES_PREVIEW], True


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
