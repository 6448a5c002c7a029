"""Everything a pop shows about a call, read in one trip to the database thread pool.

``PopContextBuilder.build`` is synchronous and runs in the pool (``service.py`` sends it
there); one call of it is one trip: every lookup runs in one session, each on an index
(``customer_numbers.number`` unique, ``calls(customer_id, started_at)``,
``calls(caller_number, started_at)``, ``contracts.customer_id``, ``agreements.customer_id``,
``scripts.product_id``, ``calls(pbx, linkedid)`` unique).

The pop needs the call's record id (the console PATCHes notes onto it) before the record
writer may have seen the call, so the builder gets or creates the record row on
``(pbx, linkedid)``, exactly like the writer does (insert-or-nothing on the unique key);
whichever comes first creates it and the other merges into it. Reading comes first and the
insert only happens when the row is missing, in its own short write transaction: on SQLite
a read transaction that later writes can fail at once instead of waiting for the lock.

Everything returned is plain JSON data. Text from the caller and from imported files is
carried as text; nothing here (or anywhere in the pop) builds markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, not_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from cti_bridge.calls.events import Call
from cti_bridge.store.customers import customer_fields
from cti_bridge.store.db import writing
from cti_bridge.store.models import (
    Agreement,
    CallRecord,
    Contract,
    Customer,
    CustomerNumber,
    CustomerProduct,
    Operator,
    Product,
    Script,
)
from cti_bridge.store.numbers import caller_number
from cti_bridge.store.records import clean_text
from cti_bridge.store.types import from_posix, iso_utc

__all__ = ["ContextRequest", "PopContextBuilder", "fallback_context", "local_today"]

HISTORY = 10
MAX_AGREEMENTS = 20
#: Notes in the history are cut here; the full text is one click away (GET /api/calls/{id}).
NOTES_PREVIEW = 1000
UPSELL_DAYS = 30

# The pop's statements, built once: a pop runs them all, and building SQLAlchemy
# statements costs more than SQLite takes to answer them.
_CALL_ID = select(CallRecord.id).where(
    CallRecord.pbx == bindparam("pbx"), CallRecord.linkedid == bindparam("linkedid")
)
_CUSTOMER_OF_NUMBER = select(CustomerNumber.customer_id).where(
    CustomerNumber.number == bindparam("number")
)
_NUMBERS = (
    select(CustomerNumber.number)
    .where(CustomerNumber.customer_id == bindparam("customer_id"))
    .order_by(CustomerNumber.id)
)
_PRODUCTS = (
    select(Product.id, Product.code, Product.name, CustomerProduct.serial)
    .join(CustomerProduct, CustomerProduct.product_id == Product.id)
    .where(CustomerProduct.customer_id == bindparam("customer_id"))
    .order_by(Product.code)
)
_CONTRACTS = (
    select(Contract, Product.code, Product.name)
    .outerjoin(Product, Product.id == Contract.product_id)
    .where(Contract.customer_id == bindparam("customer_id"))
)
_NOT_THIS_CALL = not_(
    and_(CallRecord.pbx == bindparam("pbx"), CallRecord.linkedid == bindparam("linkedid"))
)
_HISTORY = (
    select(CallRecord, Operator.username)
    .outerjoin(Operator, Operator.id == CallRecord.answered_by_operator_id)
    .order_by(CallRecord.started_at.desc(), CallRecord.id.desc())
    .limit(bindparam("limit"))
)
#: A customer's calls: by customer, or from any of their numbers (calls recorded before
#: the customer was imported have no customer id).
_HISTORY_OF_CUSTOMER = _HISTORY.where(
    or_(
        CallRecord.customer_id == bindparam("customer_id"),
        CallRecord.caller_number.in_(bindparam("numbers", expanding=True)),
    ),
    _NOT_THIS_CALL,
)
_HISTORY_OF_NUMBER = _HISTORY.where(CallRecord.caller_number == bindparam("number"), _NOT_THIS_CALL)


def _open_agreements_where(which: Any) -> Any:
    return (
        select(Agreement, Operator.username)
        .outerjoin(Operator, Operator.id == Agreement.owner_operator_id)
        .where(which, Agreement.status == "open")
        .order_by(Agreement.deadline.is_(None), Agreement.deadline, Agreement.id)
        .limit(MAX_AGREEMENTS)
    )


_AGREEMENTS_OF_CUSTOMER = _open_agreements_where(Agreement.customer_id == bindparam("customer_id"))
#: An unknown caller's earlier promises, by the number to call back.
_AGREEMENTS_OF_NUMBER = _open_agreements_where(Agreement.callback_number == bindparam("number"))
_LATEST_SCRIPTS = (
    select(Script.product_id, Script.name, func.max(Script.version).label("version"))
    .where(Script.product_id.in_(bindparam("product_ids", expanding=True)))
    .group_by(Script.product_id, Script.name)
    .subquery()
)
_SCRIPTS = (
    select(Script, Product.code, Product.name)
    .join(
        _LATEST_SCRIPTS,
        and_(
            Script.product_id == _LATEST_SCRIPTS.c.product_id,
            Script.name == _LATEST_SCRIPTS.c.name,
            Script.version == _LATEST_SCRIPTS.c.version,
        ),
    )
    .join(Product, Product.id == Script.product_id)
    .order_by(Product.code, Script.name)
)


def local_today(clock: Callable[[], float] = time.time) -> Callable[[], date]:
    """Today in the server's local time zone: contracts are dated in the helpdesk's days."""
    return lambda: datetime.fromtimestamp(clock()).date()


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
        sessions: sessionmaker[Session],
        *,
        default_region: str = "BE",
        clock: Callable[[], float] = time.time,
        today: Callable[[], date] | None = None,
        history: int = HISTORY,
    ) -> None:
        self._sessions = sessions
        self._region = default_region
        self._clock = clock
        self._today = today or local_today(clock)
        self._history = history

    def build(self, request: ContextRequest) -> dict[str, Any]:
        caller = caller_of(request, self._region)
        today = self._today()
        now = datetime.fromtimestamp(self._clock(), UTC)
        with self._sessions() as session:
            this_call = {"pbx": request.pbx, "linkedid": request.linkedid}
            call_id = session.scalar(_CALL_ID, this_call)
            agreement = _callback_agreement(session, request.agreement_ref)
            customer_id = agreement.customer_id if agreement is not None else None
            if customer_id is None and caller["number"] is not None:
                customer_id = session.scalar(_CUSTOMER_OF_NUMBER, {"number": caller["number"]})
            customer = None if customer_id is None else _customer(session, customer_id)
            contracts = [] if customer is None else _contracts(session, customer["id"], today)
            numbers = [caller["number"]] if caller["number"] else []
            if customer is not None:
                numbers = sorted(set(numbers) | set(customer["numbers"]))
            history = _history(session, this_call, customer_id, numbers, self._history)
            agreements = _open_agreements(session, customer_id, caller["number"], now)
            product_ids = {p["id"] for p in customer["products"]} if customer else set()
            product_ids |= {c["product"]["id"] for c in contracts if c["product"]}
            scripts = _scripts(session, product_ids)
            callback = None
            if agreement is not None:
                callback = _agreement_dict(agreement, _username(session, agreement), now)
        if call_id is None:
            call_id = self._create_call(request)
        return {
            "call_id": call_id,
            "caller": caller,
            "customer": customer,
            "in_contract": any(c["valid_today"] for c in contracts),
            "contracts": contracts,
            "history": history,
            "agreements": agreements,
            "agreement": callback,
            "scripts": scripts,
            "upsell": _upsell(contracts),
            "degraded": False,
        }

    def customer_context(self, customer_id: int) -> dict[str, Any] | None:
        """What a pop shows about a customer, without a call: for the console's customer
        view (search -> card), so a looked-up customer reads exactly like a pop."""
        today = self._today()
        now = datetime.fromtimestamp(self._clock(), UTC)
        with self._sessions() as session:
            customer = _customer(session, customer_id)
            if customer is None:
                return None
            contracts = _contracts(session, customer_id, today)
            nowhere = {"pbx": "", "linkedid": ""}
            history = _history(session, nowhere, customer_id, customer["numbers"], self._history)
            agreements = _open_agreements(session, customer_id, None, now)
            product_ids = {p["id"] for p in customer["products"]}
            product_ids |= {c["product"]["id"] for c in contracts if c["product"]}
            scripts = _scripts(session, product_ids)
        return {
            "customer": customer,
            "in_contract": any(c["valid_today"] for c in contracts),
            "contracts": contracts,
            "history": history,
            "agreements": agreements,
            "scripts": scripts,
            "upsell": _upsell(contracts),
        }

    def _create_call(self, request: ContextRequest) -> int:
        now = datetime.fromtimestamp(self._clock(), UTC)
        with writing(self._sessions) as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = insert(CallRecord).values(
                pbx=request.pbx,
                linkedid=request.linkedid,
                direction=request.direction,
                caller_withheld=request.caller_withheld,
                queues=[],
                started_at=from_posix(request.started_at),
                complete=request.complete,
                created_at=now,
                updated_at=now,
            )
            session.execute(statement.on_conflict_do_nothing(index_elements=["pbx", "linkedid"]))
            this_call = {"pbx": request.pbx, "linkedid": request.linkedid}
            call_id = session.scalar(_CALL_ID, this_call)
        assert call_id is not None
        return call_id


# -- the lookups ------------------------------------------------------------------------


def _callback_agreement(session: Session, ref: str | None) -> Agreement | None:
    """The agreement a callback was originated for (CTI_AGREEMENT_ID on the call)."""
    if ref is None or not ref.isdigit() or len(ref) > 18:
        return None
    return session.get(Agreement, int(ref))


def _customer(session: Session, customer_id: int) -> dict[str, Any] | None:
    row = session.get(Customer, customer_id)
    if row is None:
        return None
    numbers = session.scalars(_NUMBERS, {"customer_id": customer_id}).all()
    products = session.execute(_PRODUCTS, {"customer_id": customer_id}).all()
    return {
        **customer_fields(row),
        "notes": row.notes,
        "numbers": list(numbers),
        "products": [
            {"id": pid, "code": code, "name": name, "serial": serial}
            for pid, code, name, serial in products
        ],
    }


def valid_on(valid_from: date, valid_until: date | None, day: date) -> bool:
    return valid_from <= day and (valid_until is None or day <= valid_until)


def _contracts(session: Session, customer_id: int, today: date) -> list[dict[str, Any]]:
    rows = session.execute(_CONTRACTS, {"customer_id": customer_id}).all()
    contracts: list[dict[str, Any]] = []
    for contract, code, name in rows:
        valid_today = valid_on(contract.valid_from, contract.valid_until, today)
        until = contract.valid_until
        contracts.append(
            {
                "id": contract.id,
                "reference": contract.reference,
                "product": None
                if contract.product_id is None
                else {"id": contract.product_id, "code": code, "name": name},
                "covered": list(contract.covered or []),
                "service_level_hours": contract.service_level_hours,
                "valid_from": contract.valid_from.isoformat(),
                "valid_until": None if until is None else until.isoformat(),
                "valid_today": valid_today,
                "days_left": None if until is None else (until - today).days,
                "notes": contract.notes,
            }
        )
    # Valid ones first, the one ending soonest first; then the others, newest first.
    valid = [c for c in contracts if c["valid_today"]]
    other = [c for c in contracts if not c["valid_today"]]
    valid.sort(key=lambda c: (c["valid_until"] or "9999-12-31", c["id"]))
    other.sort(key=lambda c: (c["valid_from"], c["id"]), reverse=True)
    return valid + other


def _history(
    session: Session,
    this_call: dict[str, str],
    customer_id: int | None,
    numbers: Sequence[str],
    limit: int,
) -> list[dict[str, Any]]:
    """The last calls of the customer, or of the number when nobody has it."""
    params: dict[str, Any] = {**this_call, "limit": limit}
    if customer_id is not None:
        statement = _HISTORY_OF_CUSTOMER
        params |= {"customer_id": customer_id, "numbers": list(numbers)}
    elif numbers:
        statement = _HISTORY_OF_NUMBER
        params["number"] = numbers[0]
    else:
        return []  # withheld or not a phone number: "anonymous" is not one caller
    rows = session.execute(statement, params).all()
    history = []
    for row, username in rows:
        notes, cut = _preview(row.notes)
        history.append(
            {
                "id": row.id,
                "started_at": iso_utc(row.started_at),
                "direction": row.direction,
                "caller_number": row.caller_number,
                "queue": row.queue,
                "answered_by": username or row.answered_by_device,
                "outcome": row.outcome,
                "wait_seconds": _rounded(row.wait_seconds),
                "talk_seconds": _rounded(row.talk_seconds),
                "category": row.category,
                "disposition": row.disposition,
                "notes": notes,
                "notes_truncated": cut,
            }
        )
    return history


def _open_agreements(
    session: Session, customer_id: int | None, number: str | None, now: datetime
) -> list[dict[str, Any]]:
    if customer_id is not None:
        rows = session.execute(_AGREEMENTS_OF_CUSTOMER, {"customer_id": customer_id}).all()
    elif number is not None:
        rows = session.execute(_AGREEMENTS_OF_NUMBER, {"number": number}).all()
    else:
        return []
    return [_agreement_dict(agreement, username, now) for agreement, username in rows]


def _username(session: Session, agreement: Agreement) -> str | None:
    if agreement.owner_operator_id is None:
        return None
    return session.scalar(
        select(Operator.username).where(Operator.id == agreement.owner_operator_id)
    )


def _agreement_dict(agreement: Agreement, owner: str | None, now: datetime) -> dict[str, Any]:
    notes, cut = _preview(agreement.notes)
    deadline = agreement.deadline
    return {
        "id": agreement.id,
        "kind": agreement.kind,
        "status": agreement.status,
        "deadline": iso_utc(deadline),
        "overdue": agreement.status == "open" and deadline is not None and deadline < now,
        "owner": owner,
        "call_id": agreement.call_id,
        "callback_number": agreement.callback_number,
        "window_start": iso_utc(agreement.window_start),
        "window_end": iso_utc(agreement.window_end),
        "notes": notes,
        "notes_truncated": cut,
        "created_at": iso_utc(agreement.created_at),
    }


def _scripts(session: Session, product_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The newest version of every script of these products."""
    ids = sorted(product_ids)
    if not ids:
        return []
    rows = session.execute(_SCRIPTS, {"product_ids": ids}).all()
    return [
        {
            "product": {"id": script.product_id, "code": code, "name": name},
            "name": script.name,
            "version": script.version,
            "title": script.title,
            "body": script.body,
            "created_at": iso_utc(script.created_at),
        }
        for script, code, name in rows
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
    return None if value is None else round(value, 3)
