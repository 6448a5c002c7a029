"""The memory twin of ``Contacts`` (``store/contacts.py``): contacts that are not calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..contacts import MAX_LIMIT, checked_contact, contact_dict
from ..customers import InvalidRecord
from .customers import Service
from .tables import Row

__all__ = ["MemoryContacts", "contact_order"]


def contact_order(row: Row) -> tuple[datetime, int]:
    """Newest first, then the last logged first, as the SQL orders (sort reversed)."""
    return row["at"], row["id"]


class MemoryContacts(Service):
    def add_contact(
        self,
        customer_id: int,
        channel: str,
        *,
        subject: str | None = None,
        notes: str | None = None,
        category: str | None = None,
        disposition: str | None = None,
        at: datetime | None = None,
        by_operator: int | None = None,
    ) -> dict[str, Any]:
        now = self._now()
        values = checked_contact(
            channel,
            subject=subject,
            notes=notes,
            category=category,
            disposition=disposition,
            at=at,
            now=now,
        )
        values["at"] = values["at"].astimezone(UTC)  # as UTCDateTime keeps it
        with self._t.lock:
            if customer_id not in self._t.customers:
                raise InvalidRecord("customer_id: no such customer")
            self._t.check("operators", by_operator)
            contact_id = self._t.next_id("contacts")
            row = self._t.contacts[contact_id] = {
                "id": contact_id,
                "customer_id": customer_id,
                "operator_id": by_operator,
                "created_at": now,
                **values,
            }
            return contact_dict(row, self._t.username(by_operator))

    def list_contacts(self, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
        limit = max(1, min(int(limit), MAX_LIMIT))
        with self._t.lock:
            rows = [c for c in self._t.contacts.values() if c["customer_id"] == customer_id]
            rows.sort(key=contact_order, reverse=True)
            return [contact_dict(c, self._t.username(c["operator_id"])) for c in rows[:limit]]
