"""Store reads behind the operator console's search screens.

Blocking (the console's service runs them in the node's pool). The customer view is the
pop's own context builder (``pop/context.py``), so a customer found by search reads
exactly like a pop and the page draws both with one renderer. The customer search belongs with the
customers in ``store/`` once that grows one; it lives here to keep the workstreams apart.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cti_bridge.pop import PopContextBuilder
from cti_bridge.store import Store
from cti_bridge.store.models import Customer, CustomerNumber

__all__ = ["console_customer_context", "console_search_customers"]

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
    return PopContextBuilder(store.sessions).customer_context(customer_id)
