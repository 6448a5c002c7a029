"""The memory twin of ``Customers`` (``store/customers.py``): customers, their numbers,
products, contracts and versioned scripts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ..customers import CUSTOMER_FIELDS, InvalidRecord, checked_numbers
from ..numbers import normalize_number
from ..records import clean_text
from ..types import iso_utc
from .tables import Tables, refused

__all__ = ["MemoryCustomers", "Service", "numbers_of"]


class Service:
    def __init__(
        self, tables: Tables, *, default_region: str = "BE", clock: Callable[[], float] = time.time
    ) -> None:
        self._t = tables
        self._region = default_region
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


class MemoryCustomers(Service):
    @property
    def default_region(self) -> str:
        return self._region

    def now(self) -> datetime:
        return self._now()

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
        t = self._t
        with t.lock:
            ref = clean_text(external_ref, 64)
            if ref is not None and any(c["external_ref"] == ref for c in t.customers.values()):
                refused("UNIQUE customers.external_ref")
            e164s = [e164 for e164, _ in normalised]
            if len(set(e164s)) < len(e164s) or any(e in t.owners for e in e164s):
                refused("UNIQUE customer_numbers.number")
            customer_id = t.next_id("customers")
            t.customers[customer_id] = {
                "id": customer_id,
                "name": clean_text(name, 256) or "",
                "company": clean_text(company, 256),
                "language": clean_text(language, 16),
                "knowledge_level": clean_text(knowledge_level, 32),
                "tier": clean_text(tier, 32),
                "timezone": clean_text(timezone, 64),
                "external_ref": ref,
                "notes": None,
                "created_at": now,
                "updated_at": now,
            }
            for e164, raw_text in normalised:
                number_id = t.next_id("customer_numbers")
                t.numbers[number_id] = {
                    "id": number_id,
                    "customer_id": customer_id,
                    "number": e164,
                    "raw": raw_text,
                }
                t.owners[e164] = customer_id
            return customer_id

    def customer_for_number(self, number: str) -> dict[str, Any] | None:
        e164 = normalize_number(number, self._region)
        if e164 is None:
            return None
        customer_id = self._t.owners.get(e164)
        return None if customer_id is None else self.get_customer(customer_id)

    def get_customer(self, customer_id: int) -> dict[str, Any] | None:
        with self._t.lock:
            row = self._t.customers.get(customer_id)
            if row is None:
                return None
            return {
                **{name: row[name] for name in CUSTOMER_FIELDS},
                "numbers": numbers_of(self._t, customer_id),
            }

    def add_product(self, code: str, name: str) -> int:
        with self._t.lock:
            if any(p["code"] == code for p in self._t.products.values()):
                refused("UNIQUE products.code")
            product_id = self._t.next_id("products")
            self._t.products[product_id] = {"id": product_id, "code": code, "name": name}
            return product_id

    def give_product(self, customer_id: int, product_id: int, *, serial: str | None = None) -> int:
        with self._t.lock:
            self._t.check("customers", customer_id)
            self._t.check("products", product_id)
            owned_id = self._t.next_id("customer_products")
            self._t.owned[owned_id] = {
                "id": owned_id,
                "customer_id": customer_id,
                "product_id": product_id,
                "serial": serial,
            }
            return owned_id

    def products_of(self, customer_id: int) -> list[dict[str, Any]]:
        with self._t.lock:
            rows = [
                {**self._t.products[o["product_id"]], "serial": o["serial"]}
                for o in self._t.owned.values()
                if o["customer_id"] == customer_id
            ]
        rows.sort(key=lambda p: p["code"])
        return [
            {"id": p["id"], "code": p["code"], "name": p["name"], "serial": p["serial"]}
            for p in rows
        ]

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
        with self._t.lock:
            self._t.check("customers", customer_id)
            self._t.check("products", product_id)
            if reference is not None and any(
                c["reference"] == reference for c in self._t.contracts.values()
            ):
                refused("UNIQUE contracts.reference")
            contract_id = self._t.next_id("contracts")
            self._t.contracts[contract_id] = {
                "id": contract_id,
                "customer_id": customer_id,
                "product_id": product_id,
                "reference": reference,
                "covered": list(covered),
                "service_level_hours": service_level_hours,
                "valid_from": valid_from,
                "valid_until": valid_until,
                "notes": None,
            }
            return contract_id

    def contracts_of(self, customer_id: int) -> list[dict[str, Any]]:
        with self._t.lock:
            rows = [c for c in self._t.contracts.values() if c["customer_id"] == customer_id]
        rows.sort(key=lambda c: (c["valid_from"], c["id"]))
        return [
            {
                "id": c["id"],
                "reference": c["reference"],
                "product_id": c["product_id"],
                "covered": list(c["covered"]),
                "service_level_hours": c["service_level_hours"],
                "valid_from": c["valid_from"].isoformat(),
                "valid_until": None if c["valid_until"] is None else c["valid_until"].isoformat(),
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
        with self._t.lock:
            self._t.check("products", product_id)
            self._t.check("operators", by_operator)
            versions = [
                s["version"]
                for s in self._t.scripts.values()
                if s["product_id"] == product_id and s["name"] == name
            ]
            version = max(versions, default=0) + 1
            script_id = self._t.next_id("scripts")
            self._t.scripts[script_id] = {
                "id": script_id,
                "product_id": product_id,
                "name": name,
                "version": version,
                "title": title,
                "body": body,
                "created_at": self._now(),
                "created_by_operator_id": by_operator,
            }
            return version

    def get_script(
        self, product_id: int, name: str, version: int | None = None
    ) -> dict[str, Any] | None:
        with self._t.lock:
            rows = [
                s
                for s in self._t.scripts.values()
                if s["product_id"] == product_id
                and s["name"] == name
                and (version is None or s["version"] == version)
            ]
        if not rows:
            return None
        row = max(rows, key=lambda s: s["version"])
        return {
            "product_id": row["product_id"],
            "name": row["name"],
            "version": row["version"],
            "title": row["title"],
            "body": row["body"],
            "created_at": iso_utc(row["created_at"]),
        }


def numbers_of(tables: Tables, customer_id: int) -> list[str]:
    """A customer's numbers in the order they were added (their row ids)."""
    return [
        n["number"]
        for n in sorted(tables.numbers.values(), key=lambda n: n["id"])
        if n["customer_id"] == customer_id
    ]
