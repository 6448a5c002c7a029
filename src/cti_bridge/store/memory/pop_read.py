"""The memory twin of the pop's read (``store/pop_read.py``): the same rows from dicts.

Values come as parsed JSON would: objects and arrays, times as ISO 8601 text in UTC,
days as ``YYYY-MM-DD``; the pop (``pop/context.py``) reads them as it reads the SQL ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..pop_read import MAX_AGREEMENTS, NOTES_PREVIEW
from ..records import NewCall
from .agreements import deadline_order
from .calls import MemoryCallStore
from .contacts import contact_order
from .tables import Row, Tables

__all__ = ["MemoryPopRead"]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _cut(text: str | None) -> str | None:
    return None if text is None else text[: NOTES_PREVIEW + 1]


class MemoryPopRead:
    def __init__(self, tables: Tables, calls: MemoryCallStore) -> None:
        self._t = tables
        self._calls = calls

    def for_call(
        self,
        call: NewCall,
        *,
        number: str | None,
        agreement_id: int | None,
        limit: int,
        lock_wait: float | None,
    ) -> tuple[dict[str, Any], int | None]:
        found = self._read(None, agreement_id, number, (call.pbx, call.linkedid), limit)
        call_id = found["call_id"]
        if call_id is None:
            call_id = self._calls.ensure_call(call, lock_wait)
        return found, call_id

    def for_customer(self, customer_id: int, *, limit: int) -> dict[str, Any]:
        return self._read(customer_id, None, None, ("", ""), limit)

    def ensure_call(self, call: NewCall, lock_wait: float | None = None) -> int | None:
        return self._calls.ensure_call(call, lock_wait)

    def _read(
        self,
        customer_id: int | None,
        agreement_id: int | None,
        number: str | None,
        key: tuple[str, str],
        limit: int,
    ) -> dict[str, Any]:
        t = self._t
        with t.lock:
            if customer_id is None and agreement_id is not None:
                agreement = t.agreements.get(agreement_id)
                customer_id = None if agreement is None else agreement["customer_id"]
            if customer_id is None and number is not None:
                customer_id = t.owners.get(number)
            customer = None if customer_id is None else t.customers.get(customer_id)
            if customer is None:
                customer_id = None
            numbers = [n for n in t.numbers.values() if n["customer_id"] == customer_id]
            callback = None if agreement_id is None else t.agreements.get(agreement_id)
            return {
                "call_id": t.call_keys.get(key),
                "customer": None if customer is None else self._card(customer),
                "numbers": [{"id": n["id"], "number": n["number"]} for n in numbers],
                "products": self._products(customer_id),
                "contracts": self._contracts(customer_id),
                "history": self._history(
                    customer_id, number, {n["number"] for n in numbers}, key, limit
                ),
                "contacts": self._contacts(customer_id, limit),
                "agreements": self._agreements(customer_id, number),
                "agreement": None if callback is None else self._agreement(callback),
                "scripts": self._scripts(customer_id),
            }

    @staticmethod
    def _card(row: Row) -> dict[str, Any]:
        names = ("id", "external_ref", "name", "company", "language", "knowledge_level")
        return {name: row[name] for name in (*names, "tier", "timezone", "notes")}

    def _products(self, customer_id: int | None) -> list[dict[str, Any]]:
        rows = []
        for owned in self._t.owned.values():
            if owned["customer_id"] == customer_id:
                product = self._t.products[owned["product_id"]]
                rows.append(
                    {
                        "owned": owned["id"],
                        "id": product["id"],
                        "code": product["code"],
                        "name": product["name"],
                        "serial": owned["serial"],
                    }
                )
        return rows

    def _contracts(self, customer_id: int | None) -> list[dict[str, Any]]:
        rows = []
        for c in self._t.contracts.values():
            if c["customer_id"] != customer_id:
                continue
            product = None if c["product_id"] is None else self._t.products[c["product_id"]]
            rows.append(
                {
                    "id": c["id"],
                    "reference": c["reference"],
                    "product_id": c["product_id"],
                    "product_code": None if product is None else product["code"],
                    "product_name": None if product is None else product["name"],
                    "covered": list(c["covered"]),
                    "service_level_hours": c["service_level_hours"],
                    "valid_from": c["valid_from"].isoformat(),
                    "valid_until": None
                    if c["valid_until"] is None
                    else c["valid_until"].isoformat(),
                    "notes": c["notes"],
                }
            )
        return rows

    def _history(
        self,
        customer_id: int | None,
        number: str | None,
        theirs: set[str],
        key: tuple[str, str],
        limit: int,
    ) -> list[dict[str, Any]]:
        """The newest ended calls of the customer or from any of their numbers or the
        caller's, the call itself left out (a live call is nobody's history yet)."""

        def wanted(row: Row) -> bool:
            if (row["pbx"], row["linkedid"]) == key or row["ended_at"] is None:
                return False
            if customer_id is not None and row["customer_id"] == customer_id:
                return True
            caller = row["caller_number"]
            return caller is not None and (caller == number or caller in theirs)

        rows = [r for r in self._t.calls.values() if wanted(r)]
        rows.sort(key=lambda r: (r["started_at"], r["id"]), reverse=True)
        return [
            {
                "id": r["id"],
                "started_at": _iso(r["started_at"]),
                "direction": r["direction"],
                "caller_number": r["caller_number"],
                "queue": r["queue"],
                "answered_by": self._t.username(r["answered_by_operator_id"])
                or r["answered_by_device"],
                "outcome": r["outcome"],
                "wait_seconds": r["wait_seconds"],
                "talk_seconds": r["talk_seconds"],
                "category": r["category"],
                "disposition": r["disposition"],
                "notes": _cut(r["notes"]),
            }
            for r in rows[:limit]
        ]

    def _contacts(self, customer_id: int | None, limit: int) -> list[dict[str, Any]]:
        """The customer's newest contacts that are not calls."""
        rows = [c for c in self._t.contacts.values() if c["customer_id"] == customer_id]
        rows.sort(key=contact_order, reverse=True)
        return [
            {
                "id": c["id"],
                "customer_id": c["customer_id"],
                "at": _iso(c["at"]),
                "channel": c["channel"],
                "subject": c["subject"],
                "category": c["category"],
                "disposition": c["disposition"],
                "operator": self._t.username(c["operator_id"]),
                "notes": _cut(c["notes"]),
            }
            for c in rows[:limit]
        ]

    def _agreements(self, customer_id: int | None, number: str | None) -> list[dict[str, Any]]:
        """Open ones: the customer's, or (nobody's number) those to call the number back."""
        rows = [
            a
            for a in self._t.agreements.values()
            if a["status"] == "open"
            and (
                (customer_id is not None and a["customer_id"] == customer_id)
                or (customer_id is None and number is not None and a["callback_number"] == number)
            )
        ]
        rows.sort(key=deadline_order)
        return [self._agreement(a) for a in rows[:MAX_AGREEMENTS]]

    def _agreement(self, row: Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "kind": row["kind"],
            "status": row["status"],
            "deadline": _iso(row["deadline"]),
            "owner": self._t.username(row["owner_operator_id"]),
            "call_id": row["call_id"],
            "callback_number": row["callback_number"],
            "window_start": _iso(row["window_start"]),
            "window_end": _iso(row["window_end"]),
            "notes": _cut(row["notes"]),
            "created_at": _iso(row["created_at"]),
        }

    def _scripts(self, customer_id: int | None) -> list[dict[str, Any]]:
        products = {
            o["product_id"] for o in self._t.owned.values() if o["customer_id"] == customer_id
        }
        products.update(
            c["product_id"]
            for c in self._t.contracts.values()
            if c["customer_id"] == customer_id and c["product_id"] is not None
        )
        newest: dict[tuple[int, str], Row] = {}
        for s in self._t.scripts.values():
            if s["product_id"] in products:
                seen = newest.get((s["product_id"], s["name"]))
                if seen is None or s["version"] > seen["version"]:
                    newest[(s["product_id"], s["name"])] = s
        rows = []
        for s in newest.values():
            product = self._t.products[s["product_id"]]
            rows.append(
                {
                    "product_id": s["product_id"],
                    "product_code": product["code"],
                    "product_name": product["name"],
                    "name": s["name"],
                    "version": s["version"],
                    "title": s["title"],
                    "body": s["body"],
                    "created_at": _iso(s["created_at"]),
                }
            )
        return rows
