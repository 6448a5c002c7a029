"""The memory twin of ``CallerDirectory`` (``store/callers.py``): the AGI caller lookup."""

from __future__ import annotations

from ..callers import CallerRecord
from .customers import Service

__all__ = ["MemoryCallerDirectory"]


class MemoryCallerDirectory(Service):
    def caller(self, e164: str) -> CallerRecord | None:
        t = self._t
        with t.lock:
            customer_id = t.owners.get(e164)
            customer = None if customer_id is None else t.customers.get(customer_id)
            if customer is None:
                return None
            return CallerRecord(
                customer_id=customer["id"],
                name=customer["name"],
                language=customer["language"],
                tier=customer["tier"],
                contracts=tuple(
                    (c["valid_from"], c["valid_until"])
                    for c in t.contracts.values()
                    if c["customer_id"] == customer["id"]
                ),
            )
