"""The memory twin of ``CustomerSearch`` (``store/search.py``): the console's search."""

from __future__ import annotations

from typing import Any

from ..numbers import normalize_number
from ..search import number_fragment
from .customers import Service, numbers_of

__all__ = ["MemoryCustomerSearch"]


class MemoryCustomerSearch(Service):
    def search_customers(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        text = text.strip()
        needle = text.lower()
        t = self._t
        with t.lock:
            found: set[int] = {
                c["id"]
                for c in t.customers.values()
                if any(
                    c[name] is not None and needle in c[name].lower()
                    for name in ("name", "company", "external_ref")
                )
            }
            fragment = number_fragment(text)
            if fragment is not None:
                e164 = normalize_number(text, self._region)
                if e164 is not None and e164 in t.owners:
                    found.add(t.owners[e164])
                found.update(
                    n["customer_id"] for n in t.numbers.values() if fragment in n["number"]
                )
            rows = sorted((t.customers[i] for i in found), key=lambda c: (c["name"], c["id"]))
            return [
                {
                    "id": c["id"],
                    "external_ref": c["external_ref"],
                    "name": c["name"],
                    "company": c["company"],
                    "language": c["language"],
                    "knowledge_level": c["knowledge_level"],
                    "tier": c["tier"],
                    "numbers": numbers_of(t, c["id"]),
                }
                for c in rows[:limit]
            ]
