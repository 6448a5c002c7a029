"""The operator console's customer search, on SQL (the console's port: ``console/ports.py``;
the memory twin: ``store/memory/``).

A customer is found by a piece of their name, company or reference, or by a number:
``text`` in any format (normalised in the store's default region), or digits that occur
inside one of their E.164 numbers. Best matches first: by name, then id.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from .db import StoreService
from .models import Customer, CustomerNumber
from .numbers import normalize_number

__all__ = ["CustomerSearch", "like_pattern", "number_fragment"]

_LIKE_SPECIAL = re.compile(r"([\\%_])")


def like_pattern(text: str) -> str:
    """A LIKE pattern that matches ``text`` literally anywhere (``%`` and ``_`` escaped)."""
    return "%" + _LIKE_SPECIAL.sub(r"\\\1", text.lower()) + "%"


def number_fragment(text: str) -> str | None:
    """The digits to look for inside stored numbers, when ``text`` looks like a number
    (at least 4 digits, and little else); None when it does not."""
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 4 and len(digits) >= len(text.replace(" ", "")) - 2:
        # "0470 12 34 56" is "+32470123456" once normalised (the store's default region);
        # a fragment ("123456") matches inside the stored E.164 numbers.
        return digits.lstrip("0") or digits
    return None


class CustomerSearch(StoreService):
    def search_customers(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Customers whose name, company or reference contains ``text``, or with a number
        that is ``text`` (in any format) or contains its digits; best matches first."""
        text = text.strip()
        conditions: list[ColumnElement[bool]] = [
            func.lower(Customer.name).like(like_pattern(text), escape="\\"),
            func.lower(Customer.company).like(like_pattern(text), escape="\\"),
            func.lower(Customer.external_ref).like(like_pattern(text), escape="\\"),
        ]
        fragment = number_fragment(text)
        with self._sessions() as session:
            if fragment is not None:
                e164 = normalize_number(text, self._region)
                if e164 is not None:
                    exact = session.scalar(
                        select(CustomerNumber.customer_id).where(CustomerNumber.number == e164)
                    )
                    if exact is not None:
                        conditions.append(Customer.id == exact)
                by_fragment = select(CustomerNumber.customer_id).where(
                    CustomerNumber.number.like(like_pattern(fragment), escape="\\")
                )
                conditions.append(Customer.id.in_(by_fragment))
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
