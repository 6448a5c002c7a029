"""Store reads and request checks behind the operator console's search screens.

Blocking (the backend runs them in its thread pool). The customer view is the pop's own
context builder (``pop/context.py``), so a customer found by search reads exactly like a
pop and the page draws both with one renderer. The customer search belongs with the
customers in ``store/`` once that grows one; it lives here to keep the workstreams apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cti_bridge.pop import PopContextBuilder
from cti_bridge.store import Store
from cti_bridge.store.models import Customer, CustomerNumber
from cti_bridge.web.api import BadRequest

__all__ = ["agreement_request", "console_customer_context", "console_search_customers"]

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


def console_customer_context(store: Store, customer_id: int) -> dict[str, Any] | None:
    """Everything the console shows about one customer: exactly what a pop shows."""
    return PopContextBuilder(store.pop_read).customer_context(customer_id)


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
