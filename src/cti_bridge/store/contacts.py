"""Contacts that are not calls: a mail, chat, visit or letter an operator logs for a customer.

The one owner of the ``contacts`` table. The console logs them (``POST /api/contacts``);
the pop's read (``pop_read.py``) reads a customer's newest ones beside their calls, so
they show in the history of pops and of the customer view. Everything in a contact but
its channel and disposition is the operator's free text, or text pasted from a mail or
a chat: attacker text, stored as text (``clean_text``) and cut to its column, never
interpreted.

``checked_contact`` and ``contact_dict`` are shared with the memory twin
(``memory/contacts.py``), so both refuse the same input with the same words and answer
in the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from cti_bridge.vocabulary import CONTACT_CHANNELS

from .customers import InvalidRecord
from .db import StoreService, writing
from .models import DISPOSITIONS, Contact, Customer, Operator
from .records import clean_text
from .types import iso_utc

__all__ = [
    "CONTACT_CHANNELS",
    "MAX_CATEGORY",
    "MAX_LIMIT",
    "MAX_NOTES",
    "MAX_SUBJECT",
    "Contacts",
    "checked_contact",
    "contact_dict",
]

#: The columns' lengths (``models.Contact``); notes are text, cut as a call's are.
MAX_SUBJECT = 256
MAX_CATEGORY = 100
MAX_NOTES = 20_000
MAX_LIMIT = 500
#: How far ahead of the store's clock a contact's ``at`` may be (another machine's clock).
MAX_AHEAD = timedelta(minutes=5)


def _text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRecord(f"{name} must be text")
    if len(value) > limit:
        raise InvalidRecord(f"{name} is longer than {limit} characters")
    return clean_text(value, limit) if value.strip() else None


def checked_contact(
    channel: str,
    *,
    subject: str | None,
    notes: str | None,
    category: str | None,
    disposition: str | None,
    at: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """A new contact's columns, checked; ``InvalidRecord`` starts with the field's name.
    ``at`` defaults to ``now`` and may not be later than a few minutes after it."""
    if channel not in CONTACT_CHANNELS:
        raise InvalidRecord(f"channel must be one of {', '.join(CONTACT_CHANNELS)}")
    if disposition is not None and disposition not in DISPOSITIONS:
        raise InvalidRecord(f"disposition must be one of {', '.join(DISPOSITIONS)} or null")
    if at is not None and at.tzinfo is None:
        raise InvalidRecord("at must carry its time zone (ISO 8601 with Z or an offset)")
    if at is not None and at > now + MAX_AHEAD:
        raise InvalidRecord("at is in the future")
    return {
        "channel": channel,
        "at": now if at is None else at,
        "subject": _text("subject", subject, MAX_SUBJECT),
        "notes": _text("notes", notes, MAX_NOTES),
        "category": _text("category", category, MAX_CATEGORY),
        "disposition": disposition,
    }


def contact_dict(row: Mapping[str, Any], operator: str | None) -> dict[str, Any]:
    """A contact as the API shows it (docs/console.md): ``type`` "contact", the operator
    who logged it by username beside their id, times in ISO 8601 UTC."""
    return {
        "id": row["id"],
        "type": "contact",
        "customer_id": row["customer_id"],
        "channel": row["channel"],
        "at": iso_utc(row["at"]),
        "subject": row["subject"],
        "notes": row["notes"],
        "category": row["category"],
        "disposition": row["disposition"],
        "operator": operator,
        "operator_id": row["operator_id"],
        "created_at": iso_utc(row["created_at"]),
    }


_COLUMNS = (
    "id",
    "customer_id",
    "channel",
    "at",
    "subject",
    "notes",
    "category",
    "disposition",
    "operator_id",
    "created_at",
)


class Contacts(StoreService):
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
        """Log a contact with an existing customer (else ``InvalidRecord`` naming
        ``customer_id``); the contact as ``contact_dict`` shows it."""
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
        with writing(self._sessions) as session:
            if session.get(Customer, customer_id) is None:
                raise InvalidRecord("customer_id: no such customer")
            contact = Contact(
                customer_id=customer_id, operator_id=by_operator, created_at=now, **values
            )
            session.add(contact)
            session.flush()
            operator = None
            if by_operator is not None:
                operator = session.scalar(
                    select(Operator.username).where(Operator.id == by_operator)
                )
            return contact_dict({c: getattr(contact, c) for c in _COLUMNS}, operator)

    def list_contacts(self, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """A customer's contacts, newest first (then the last logged first); at most
        ``limit`` (1..500). An unknown customer has none."""
        limit = max(1, min(int(limit), MAX_LIMIT))
        query = (
            select(Contact, Operator.username)
            .outerjoin(Operator, Operator.id == Contact.operator_id)
            .where(Contact.customer_id == customer_id)
            .order_by(Contact.at.desc(), Contact.id.desc())
            .limit(limit)
        )
        with self._sessions() as session:
            return [
                contact_dict({c: getattr(contact, c) for c in _COLUMNS}, username)
                for contact, username in session.execute(query)
            ]
