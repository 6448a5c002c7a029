"""What the pop needs from storage, as one small interface.

``store/pop_read.py`` (``PopRead``) implements it on SQLite and PostgreSQL, the memory
twin in ``store/memory/`` on plain dicts; one contract suite runs on all three
(``tests/unit/pop/test_context.py``). ``context.py`` shapes what it returns into the pop.

The rows are what the store hands over, raw: a mapping with ``call_id`` (the call's
record id, or None), ``customer`` (an object or None), ``agreement`` (the callback's
agreement, an object or None) and ``numbers``, ``products``, ``contracts``, ``history``
(calls), ``contacts`` (the customer's contacts that are not calls), ``agreements``,
``scripts`` (arrays of objects, or None for none). Each value may come as
JSON text or already parsed; times as ISO 8601 text, naive (UTC) or with an offset; days
as ``YYYY-MM-DD``. The fields of each object are the ones ``store/pop_read.py`` selects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # a structural type: the pop's ContextRequest is one
    from cti_bridge.store.records import NewCall

__all__ = ["PopContextRead", "PopRows"]

#: One read's raw rows (see above).
PopRows = Mapping[str, Any]


class PopContextRead(Protocol):
    def for_call(
        self,
        call: NewCall,
        *,
        number: str | None,
        agreement_id: int | None,
        limit: int,
        lock_wait: float | None,
    ) -> tuple[PopRows, int | None]:
        """The rows for a ringing call (its customer: the agreement's, else the number's;
        the history without the call itself, at most ``limit`` calls, and at most
        ``limit`` of the customer's contacts, newest first), and the call's
        record id, made when missing; None when the write lock was not free within
        ``lock_wait`` seconds."""
        ...

    def for_customer(self, customer_id: int, *, limit: int) -> PopRows:
        """The rows of one customer without a call (``customer`` None: no such customer)."""
        ...

    def ensure_call(self, call: NewCall, lock_wait: float | None = None) -> int | None:
        """The call's record id, made when missing (None: wait as long as the store does)."""
        ...
