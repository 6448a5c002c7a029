"""What the operator console needs from storage, as small interfaces.

Each has its SQL side in ``store/`` and a memory twin in ``store/memory/``, and one
contract suite runs on the three (``tests/unit/store/test_contract_*.py``):

* ``CustomerSearch``: the search screen (``store/search.py``);
* the customer view is the pop's read (``cti_bridge.pop.ports.PopContextRead``,
  ``for_customer``), so a customer found by search reads exactly like a pop;
* ``AgreementBook``: the agreements an operator makes from the console, and what the
  callback dialer will claim and dial (``store/agreements.py``);
* ``ContactLog``: contacts that are not calls (mail, chat, visit, letter), logged for a
  customer (``store/contacts.py``); the pop's read shows them in the history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

__all__ = ["AgreementBook", "ContactLog", "CustomerSearch"]


class CustomerSearch(Protocol):
    def search_customers(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Customers whose name, company or reference contains ``text`` (any case), or
        with a number that is ``text`` in any format or contains its digits; by name,
        then id; at most ``limit``. Each: id, external_ref, name, company, language,
        knowledge_level, tier, numbers (E.164, in the order they were added)."""
        ...


class AgreementBook(Protocol):
    """Agreements and their attempts. Errors: ``InvalidRecord`` (a bad kind, status,
    outcome, number or window; no such agreement or open attempt); a second open attempt
    of one agreement is refused as ``sqlalchemy.exc.IntegrityError`` (on SQL, the
    database's partial unique index: whatever the number of nodes)."""

    def add_agreement(
        self,
        kind: str,
        *,
        customer_id: int | None = None,
        call_id: int | None = None,
        owner_operator_id: int | None = None,
        deadline: datetime | None = None,
        callback_number: str | None = None,
        window: tuple[datetime, datetime] | None = None,
        notes: str | None = None,
        by_operator: int | None = None,
    ) -> int: ...

    def get_agreement(self, agreement_id: int) -> dict[str, Any] | None:
        """One agreement: id, kind, status, customer_id, call_id, owner_operator_id,
        owner (username), deadline, callback_number, window_start, window_end, notes,
        created_at, updated_at (ISO 8601 UTC), and its attempts oldest first (number,
        operator_id, operator (username), call_id, node, started_at, ended_at,
        outcome)."""
        ...

    def list_agreements(
        self,
        *,
        status: str | None = None,
        owner_operator_id: int | None = None,
        customer_id: int | None = None,
        due: str | None = None,
        now: datetime | None = None,
        today: tuple[datetime, datetime] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Agreements (as ``get_agreement``) matching every filter given. ``due``:
        ``overdue`` is pending (open or dialling) with a deadline before ``now``;
        ``today`` is pending with a deadline in ``today`` (start included, end not; the
        caller gives the site's day, there is no clock in here). Soonest deadline
        first, those without one last, then by id; at most ``limit``."""
        ...

    def update_agreement(self, agreement_id: int, changes: Mapping[str, Any]) -> None:
        """Set ``status`` (done|cancelled; ``InvalidRecord`` once done or cancelled),
        ``deadline``, ``owner_operator_id``, ``window`` ((start, end) or None) and
        ``notes``; keys left out stay. ``InvalidRecord`` names the field."""
        ...

    def open_agreements(
        self, *, customer_id: int | None = None, number: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    def set_agreement_status(self, agreement_id: int, status: str) -> None: ...

    def start_attempt(
        self, agreement_id: int, *, operator_id: int | None = None, node: str | None = None
    ) -> int: ...

    def end_attempt(
        self, agreement_id: int, number: int, outcome: str, *, call_id: int | None = None
    ) -> None: ...


class ContactLog(Protocol):
    """A customer's contacts that are not calls. Errors: ``InvalidRecord``, its message
    starting with the field's name (a channel not in ``CONTACT_CHANNELS``, a disposition
    not in ``DISPOSITIONS``, a subject, category or notes too long, ``at`` without a time
    zone or in the future, no such customer); an unknown ``by_operator`` is
    ``sqlalchemy.exc.IntegrityError``."""

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
        """Log one (``at`` defaults to now); the contact: id, type ("contact"),
        customer_id, channel, at, subject, notes, category, disposition, operator
        (username), operator_id, created_at (ISO 8601 UTC). Text is stored as given,
        made storable (``clean_text``); empty or blank text is null."""
        ...

    def list_contacts(self, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """A customer's contacts (as ``add_contact`` answers), newest ``at`` first, then
        the last logged first; at most ``limit`` (1..500)."""
        ...
