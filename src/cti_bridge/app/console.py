"""Store reads and request checks behind the operator console's search screens.

Blocking (the backend runs them in its thread pool). The customer view answers in the
shape of a pop's context (``pop/context.py``: customer, contracts, history, agreements,
scripts, upsell) so that the page draws a pop and a customer found by search with one
renderer. These reads belong with the customers in ``store/`` and ``pop/`` once those
grow a per-customer entry point; they live here meanwhile to keep the workstreams apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from cti_bridge.store import Store
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
from cti_bridge.store.types import iso_utc
from cti_bridge.web.api import BadRequest

__all__ = ["agreement_request", "console_customer_context", "console_search_customers"]

HISTORY = 10
UPSELL_DAYS = 30
MAX_NOTES = 20_000
_LIKE_SPECIAL = re.compile(r"([\\%_])")


def _like(text: str) -> str:
    """A LIKE pattern that matches ``text`` literally anywhere (``%`` and ``_`` escaped)."""
    return "%" + _LIKE_SPECIAL.sub(r"\\\1", text.lower()) + "%"


def console_search_customers(store: Store, text: str, limit: int = 20) -> list[dict[str, Any]]:
    """Customers whose name, company or reference contains ``text``, or with a number that
    is ``text`` (in any format) or contains its digits; best matches first."""
    text = text.strip()
    conditions = [
        func.lower(Customer.name).like(_like(text), escape="\\"),
        func.lower(Customer.company).like(_like(text), escape="\\"),
        func.lower(Customer.external_ref).like(_like(text), escape="\\"),
    ]
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 4 and len(digits) >= len(text.replace(" ", "")) - 2:
        # "0470 12 34 56" is "+32470123456" once normalised (the store's default region);
        # a fragment ("123456") matches inside the stored E.164 numbers.
        exact = store.customers.customer_for_number(text)
        if exact is not None:
            conditions.append(Customer.id == exact["id"])
        by_fragment = select(CustomerNumber.customer_id).where(
            CustomerNumber.number.like(_like(digits.lstrip("0") or digits), escape="\\")
        )
        conditions.append(Customer.id.in_(by_fragment))
    with store.sessions() as session:
        rows = session.scalars(
            select(Customer)
            .where(or_(*conditions))
            .order_by(Customer.name, Customer.id)
            .limit(limit)
        ).all()
        numbers = _numbers(session, [row.id for row in rows])
        return [
            {
                "id": row.id,
                "external_ref": row.external_ref,
                "name": row.name,
                "company": row.company,
                "language": row.language,
                "knowledge_level": row.knowledge_level,
                "tier": row.tier,
                "numbers": numbers.get(row.id, []),
            }
            for row in rows
        ]


def _numbers(session: Session, customer_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if customer_ids:
        rows = session.execute(
            select(CustomerNumber.customer_id, CustomerNumber.number)
            .where(CustomerNumber.customer_id.in_(customer_ids))
            .order_by(CustomerNumber.id)
        )
        for customer_id, number in rows:
            found.setdefault(customer_id, []).append(number)
    return found


def console_customer_context(
    store: Store,
    customer_id: int,
    *,
    today: date | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any] | None:
    """Everything the console shows about one customer, in the pop's shape."""
    now = clock()
    today = today or datetime.now().date()  # contracts are dated in the helpdesk's days
    with store.sessions() as session:
        row = session.get(Customer, customer_id)
        if row is None:
            return None
        products = session.execute(
            select(Product.id, Product.code, Product.name, CustomerProduct.serial)
            .join(CustomerProduct, CustomerProduct.product_id == Product.id)
            .where(CustomerProduct.customer_id == customer_id)
            .order_by(Product.code)
        ).all()
        numbers = _numbers(session, [customer_id]).get(customer_id, [])
        customer = {
            "id": row.id,
            "external_ref": row.external_ref,
            "name": row.name,
            "company": row.company,
            "language": row.language,
            "knowledge_level": row.knowledge_level,
            "tier": row.tier,
            "timezone": row.timezone,
            "notes": row.notes,
            "numbers": numbers,
            "products": [
                {"id": pid, "code": code, "name": name, "serial": serial}
                for pid, code, name, serial in products
            ],
        }
        contracts = _contracts(session, customer_id, today)
        history_ids = session.scalars(
            select(CallRecord.id)
            .where(
                or_(CallRecord.customer_id == customer_id, CallRecord.caller_number.in_(numbers))
            )
            .order_by(CallRecord.started_at.desc(), CallRecord.id.desc())
            .limit(HISTORY)
        ).all()
        agreements = _open_agreements(session, customer_id, now)
        product_ids = {p[0] for p in products} | {
            c["product"]["id"] for c in contracts if c["product"]
        }
        scripts = _latest_scripts(session, product_ids)
    history = [store.queries.get_call(call_id) for call_id in history_ids]
    return {
        "customer": customer,
        "in_contract": any(c["valid_today"] for c in contracts),
        "contracts": contracts,
        "history": history,
        "agreements": agreements,
        "scripts": scripts,
        "upsell": _upsell(contracts),
    }


def _contracts(session: Session, customer_id: int, today: date) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Contract, Product.code, Product.name)
        .outerjoin(Product, Product.id == Contract.product_id)
        .where(Contract.customer_id == customer_id)
        .order_by(Contract.valid_from.desc(), Contract.id)
    ).all()
    contracts = []
    for contract, code, name in rows:
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
                "valid_today": contract.valid_from <= today and (until is None or today <= until),
                "days_left": None if until is None else (until - today).days,
                "notes": contract.notes,
            }
        )
    return sorted(contracts, key=lambda c: not c["valid_today"])


def _open_agreements(session: Session, customer_id: int, now: datetime) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Agreement, Operator.username)
        .outerjoin(Operator, Operator.id == Agreement.owner_operator_id)
        .where(Agreement.customer_id == customer_id, Agreement.status == "open")
        .order_by(Agreement.deadline.is_(None), Agreement.deadline, Agreement.id)
    ).all()
    return [
        {
            "id": agreement.id,
            "kind": agreement.kind,
            "status": agreement.status,
            "deadline": iso_utc(agreement.deadline),
            "overdue": agreement.deadline is not None and agreement.deadline < now,
            "owner": owner,
            "call_id": agreement.call_id,
            "callback_number": agreement.callback_number,
            "window_start": iso_utc(agreement.window_start),
            "window_end": iso_utc(agreement.window_end),
            "notes": agreement.notes,
            "created_at": iso_utc(agreement.created_at),
        }
        for agreement, owner in rows
    ]


def _latest_scripts(session: Session, product_ids: set[int]) -> list[dict[str, Any]]:
    if not product_ids:
        return []
    latest = (
        select(Script.product_id, Script.name, func.max(Script.version).label("version"))
        .where(Script.product_id.in_(sorted(product_ids)))
        .group_by(Script.product_id, Script.name)
        .subquery()
    )
    rows = session.execute(
        select(Script, Product.code, Product.name)
        .join(
            latest,
            and_(
                Script.product_id == latest.c.product_id,
                Script.name == latest.c.name,
                Script.version == latest.c.version,
            ),
        )
        .join(Product, Product.id == Script.product_id)
        .order_by(Product.code, Script.name)
    ).all()
    return [
        {
            "product": {"id": script.product_id, "code": code, "name": name},
            "name": script.name,
            "version": script.version,
            "title": script.title,
            "body": script.body,
        }
        for script, code, name in rows
    ]


def _upsell(contracts: list[dict[str, Any]]) -> dict[str, Any] | None:
    ending = [
        c
        for c in contracts
        if c["valid_today"] and c["days_left"] is not None and c["days_left"] <= UPSELL_DAYS
    ]
    if not ending:
        return None
    soonest = min(ending, key=lambda c: c["days_left"])
    label = soonest["reference"] or "the contract"
    return {
        "kind": "contract_renewal",
        "contract_id": soonest["id"],
        "contract": soonest["reference"],
        "valid_until": soonest["valid_until"],
        "days_left": soonest["days_left"],
        "text": f"Contract {label} ends in {soonest['days_left']} days: offer a renewal.",
    }


# -- POST /api/agreements ---------------------------------------------------------------


def _when(body: Mapping[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO 8601 date and time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date and time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _id(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
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
     "window_end", "notes"}
)  # fmt: skip


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
    }
