"""The dialplan's caller lookup, on SQL (the agi room's port: ``agi/ports.py``; the memory
twin: ``memory/callers.py``).

Two statements in one session: the number's customer, then their contracts' validity
periods. The lookup (``agi/lookup.py``) decides the routing from them; the AGI script
gives up after half a second, so this stays two index probes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from .db import StoreService
from .models import Contract, Customer, CustomerNumber

__all__ = ["CallerDirectory", "CallerRecord"]


@dataclass(frozen=True, slots=True)
class CallerRecord:
    """A number's customer as routing reads them (``cti_bridge.agi.ports.Caller``)."""

    customer_id: int
    name: str
    language: str | None
    tier: str | None
    #: Every contract's (valid_from, valid_until); valid_until None is open-ended.
    contracts: tuple[tuple[date, date | None], ...]


class CallerDirectory(StoreService):
    def caller(self, e164: str) -> CallerRecord | None:
        """The customer with the number ``e164`` (normalised by the caller), or None."""
        with self._sessions() as session:
            customer = session.scalar(
                select(Customer)
                .join(CustomerNumber, CustomerNumber.customer_id == Customer.id)
                .where(CustomerNumber.number == e164)
            )
            if customer is None:
                return None
            periods = session.execute(
                select(Contract.valid_from, Contract.valid_until).where(
                    Contract.customer_id == customer.id
                )
            ).all()
            return CallerRecord(
                customer_id=customer.id,
                name=customer.name,
                language=customer.language,
                tier=customer.tier,
                contracts=tuple((start, until) for start, until in periods),
            )
