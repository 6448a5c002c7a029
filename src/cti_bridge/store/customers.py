"""Customers, products, contracts and scripts: create and read (agreements: ``agreements.py``).

Only what the tables need to be exercised now; the screen-pop work adds the lookups
(everything a pop shows for a number) and the importers on top of these. Numbers are
stored in E.164 so a caller's number finds its customer with one indexed lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from .db import StoreService, writing
from .models import (
    Contract,
    Customer,
    CustomerNumber,
    CustomerProduct,
    Product,
    Script,
)
from .numbers import normalize_number
from .records import clean_text
from .types import iso_utc

__all__ = ["CUSTOMER_FIELDS", "Customers", "InvalidRecord", "customer_fields"]


#: A customer's own fields as the API, the pop and the console show them.
CUSTOMER_FIELDS = (
    "id",
    "external_ref",
    "name",
    "company",
    "language",
    "knowledge_level",
    "tier",
    "timezone",
)


def customer_fields(row: Customer) -> dict[str, Any]:
    """A customer row's ``CUSTOMER_FIELDS``."""
    return {name: getattr(row, name) for name in CUSTOMER_FIELDS}


class InvalidRecord(ValueError):
    user_facing = True


def checked_numbers(numbers: Iterable[str], region: str) -> list[tuple[str, str | None]]:
    """A new customer's numbers as (E.164, as written); InvalidRecord names a bad one.
    The SQL store and its memory twin check them the same way."""
    normalised = []
    for raw in numbers:
        e164 = normalize_number(raw, region)
        if e164 is None:
            raise InvalidRecord(f"{raw[:40]!r} is not a phone number")
        normalised.append((e164, clean_text(raw, 64)))
    return normalised


class Customers(StoreService):
    # Added for the importer and the pop (store/importer.py, pop/): what numbers are
    # normalised against, and the store's clock.
    @property
    def default_region(self) -> str:
        return self._region

    def now(self) -> datetime:
        return self._now()

    # --- customers and numbers ---------------------------------------------------------

    def add_customer(
        self,
        name: str,
        *,
        numbers: Iterable[str] = (),
        company: str | None = None,
        language: str | None = None,
        knowledge_level: str | None = None,
        tier: str | None = None,
        timezone: str | None = None,
        external_ref: str | None = None,
    ) -> int:
        normalised = checked_numbers(numbers, self._region)
        now = self._now()
        with writing(self._sessions) as session:
            customer = Customer(
                name=clean_text(name, 256) or "",
                company=clean_text(company, 256),
                language=clean_text(language, 16),
                knowledge_level=clean_text(knowledge_level, 32),
                tier=clean_text(tier, 32),
                timezone=clean_text(timezone, 64),
                external_ref=clean_text(external_ref, 64),
                created_at=now,
                updated_at=now,
            )
            session.add(customer)
            session.flush()
            for e164, raw_text in normalised:
                session.add(CustomerNumber(customer_id=customer.id, number=e164, raw=raw_text))
            return customer.id

    def customer_for_number(self, number: str) -> dict[str, Any] | None:
        e164 = normalize_number(number, self._region)
        if e164 is None:
            return None
        with self._sessions() as session:
            customer_id = session.scalar(
                select(CustomerNumber.customer_id).where(CustomerNumber.number == e164)
            )
        return None if customer_id is None else self.get_customer(customer_id)

    def get_customer(self, customer_id: int) -> dict[str, Any] | None:
        with self._sessions() as session:
            row = session.scalar(
                select(Customer)
                .where(Customer.id == customer_id)
                .options(selectinload(Customer.numbers))
            )
            if row is None:
                return None
            return {**customer_fields(row), "numbers": [n.number for n in row.numbers]}

    # --- products, contracts, scripts --------------------------------------------------

    def add_product(self, code: str, name: str) -> int:
        with writing(self._sessions) as session:
            product = Product(code=code, name=name)
            session.add(product)
            session.flush()
            return product.id

    def give_product(self, customer_id: int, product_id: int, *, serial: str | None = None) -> int:
        with writing(self._sessions) as session:
            owned = CustomerProduct(customer_id=customer_id, product_id=product_id, serial=serial)
            session.add(owned)
            session.flush()
            return owned.id

    def products_of(self, customer_id: int) -> list[dict[str, Any]]:
        with self._sessions() as session:
            rows = session.execute(
                select(Product, CustomerProduct.serial)
                .join(CustomerProduct, CustomerProduct.product_id == Product.id)
                .where(CustomerProduct.customer_id == customer_id)
                .order_by(Product.code)
            )
            return [{"id": p.id, "code": p.code, "name": p.name, "serial": s} for p, s in rows]

    def add_contract(
        self,
        customer_id: int,
        *,
        valid_from: date,
        covered: Sequence[str],
        valid_until: date | None = None,
        product_id: int | None = None,
        service_level_hours: int | None = None,
        reference: str | None = None,
    ) -> int:
        if valid_until is not None and valid_until < valid_from:
            raise InvalidRecord("a contract cannot end before it starts")
        with writing(self._sessions) as session:
            contract = Contract(
                customer_id=customer_id,
                product_id=product_id,
                reference=reference,
                covered=list(covered),
                service_level_hours=service_level_hours,
                valid_from=valid_from,
                valid_until=valid_until,
            )
            session.add(contract)
            session.flush()
            return contract.id

    def contracts_of(self, customer_id: int) -> list[dict[str, Any]]:
        with self._sessions() as session:
            rows = session.scalars(
                select(Contract)
                .where(Contract.customer_id == customer_id)
                .order_by(Contract.valid_from, Contract.id)
            )
            return [
                {
                    "id": c.id,
                    "reference": c.reference,
                    "product_id": c.product_id,
                    "covered": list(c.covered),
                    "service_level_hours": c.service_level_hours,
                    "valid_from": c.valid_from.isoformat(),
                    "valid_until": None if c.valid_until is None else c.valid_until.isoformat(),
                }
                for c in rows
            ]

    def add_script_version(
        self,
        product_id: int,
        name: str,
        *,
        title: str,
        body: str,
        by_operator: int | None = None,
    ) -> int:
        """Store a new version of a script (1 for a new one); returns its version."""
        with writing(self._sessions) as session:
            latest = session.scalar(
                select(func.max(Script.version)).where(
                    Script.product_id == product_id, Script.name == name
                )
            )
            version = (latest or 0) + 1
            session.add(
                Script(
                    product_id=product_id,
                    name=name,
                    version=version,
                    title=title,
                    body=body,
                    created_at=self._now(),
                    created_by_operator_id=by_operator,
                )
            )
            return version

    def get_script(
        self, product_id: int, name: str, version: int | None = None
    ) -> dict[str, Any] | None:
        """A given version, or the newest one."""
        query = select(Script).where(Script.product_id == product_id, Script.name == name)
        if version is None:
            query = query.order_by(Script.version.desc()).limit(1)
        else:
            query = query.where(Script.version == version)
        with self._sessions() as session:
            row = session.scalar(query)
            if row is None:
                return None
            return {
                "product_id": row.product_id,
                "name": row.name,
                "version": row.version,
                "title": row.title,
                "body": row.body,
                "created_at": iso_utc(row.created_at),
            }
