"""What the operator console needs from storage, as small interfaces.

Each has its SQL side in ``store/`` and a memory twin in ``store/memory/``, and one
contract suite runs on the three (``tests/unit/store/test_contract_*.py``):

* ``CustomerSearch``: the search screen (``store/search.py``);
* the customer view is the pop's read (``cti_bridge.pop.ports.PopContextRead``,
  ``for_customer``), so a customer found by search reads exactly like a pop;
* ``AgreementBook``: the agreements an operator makes from the console, and what the
  callback dialer will claim and dial (``store/agreements.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

__all__ = ["AgreementBook", "CustomerSearch"]


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

    def get_agreement(self, agreement_id: int) -> dict[str, Any] | None: ...

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
