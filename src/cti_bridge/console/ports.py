"""What the operator console needs from storage, as small interfaces.

Each has its SQL side in ``store/`` and a memory twin in ``store/memory/``, and one
contract suite runs on the three (``tests/unit/store/test_contract_*.py``):

* ``CustomerSearch``: the search screen (``store/search.py``);
* the customer view is the pop's read (``cti_bridge.pop.ports.PopContextRead``,
  ``for_customer``), so a customer found by search reads exactly like a pop;
* ``AgreementBook``: the agreements an operator makes, lists, changes and closes from
  the console (``store/agreements.py``; the dialer's side of the same book is
  ``dialer/ports.py``'s ``CallbackBook``).
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
    """Agreements, their attempts and their history, as the console makes, lists,
    changes and closes them. Errors: ``InvalidRecord`` (a bad kind, status, disposition,
    origin, number or window; no such agreement), naming the field where there is one.
    The dialer's side of the same book is ``cti_bridge.dialer.ports.CallbackBook``."""

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
        queue: str | None = None,
        due_at: datetime | None = None,
        origin: str = "operator",
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """A new open agreement, with a ``created`` history event by ``by_operator``
        (``details`` adds facts to it: a missed call's pbx and linkedid). A callback
        falls due at ``due_at``, else when ``window`` opens, else now, and the dialer
        first looks at it then (``next_attempt_at``); other kinds are never dialled.
        ``origin``: ``operator`` or ``missed_call`` (``AGREEMENT_ORIGINS``)."""
        ...

    def get_agreement(self, agreement_id: int) -> dict[str, Any] | None:
        """One agreement: id, kind, status, customer_id, customer_name, call_id,
        owner_operator_id, owner (username), queue, origin, flagged, disposition,
        deadline, due_at, next_attempt_at, callback_number, window_start, window_end,
        notes, created_at, updated_at, closed_at (times ISO 8601 UTC); its attempts
        oldest first (number, operator_id, operator (username), call_id, node, pbx,
        channel_id, started_at, ended_at, outcome, detail; ``call_id`` is the callback
        call's record, found by pbx + linkedid = channel_id when none is stored); its
        history oldest first (at, kind, operator (username or null), details)."""
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
        flagged: bool | None = None,
        kind: str | None = None,
        unowned: bool = False,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Agreements (as ``get_agreement``) matching every filter given (``unowned``:
        those without an owner). ``due``:
        ``overdue`` is pending (open or dialling) with a deadline before ``now``;
        ``today`` is pending with a deadline in ``today`` (start included, end not; the
        caller gives the site's day, there is no clock in here). Soonest deadline
        first, those without one last, then by id; at most ``limit``."""
        ...

    def update_agreement(
        self, agreement_id: int, changes: Mapping[str, Any], *, by_operator: int | None = None
    ) -> None:
        """Set ``status`` (done|cancelled, on an open, dialling or failed agreement;
        ``InvalidRecord`` once done or cancelled), ``disposition``
        (``AGREEMENT_DISPOSITIONS`` or None; closing a callback ``done`` needs one),
        ``deadline``, ``owner_operator_id``, ``window`` ((start, end) or None),
        ``notes`` and ``queue``; keys left out stay. Closing sets ``closed_at``, clears
        ``next_attempt_at`` and adds a ``closed`` event (status, disposition); a new
        deadline or window of an open callback sets ``next_attempt_at`` to
        ``max(now, due_at)``; whatever else changed is one ``changed`` event
        ``{field: [old, new]}`` by ``by_operator``. ``InvalidRecord`` names the
        field."""
        ...

    def open_agreements(
        self, *, customer_id: int | None = None, number: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The open agreements of a customer or to call ``number`` back (any format)."""
        ...


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
