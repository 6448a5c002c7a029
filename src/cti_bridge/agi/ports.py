"""What the caller lookup needs from storage, as one small interface.

``store/callers.py`` (``CallerDirectory``) implements it on SQLite and PostgreSQL, the
memory twin ``store/memory/callers.py`` on the shared tables; one contract suite runs on
the three (``tests/unit/agi/``, ``@every_backend``). The routing decision - valid today,
premium tier, queue priority - is ``lookup.py``'s, on what the port hands over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

__all__ = ["Caller", "CallerDirectory"]


class Caller(Protocol):
    """The customer that owns a number, as far as routing reads them."""

    @property
    def customer_id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def language(self) -> str | None: ...

    @property
    def tier(self) -> str | None: ...

    @property
    def contracts(self) -> Sequence[tuple[date, date | None]]:
        """Every contract's validity period: first day, last day (None: open-ended)."""
        ...


class CallerDirectory(Protocol):
    def caller(self, e164: str) -> Caller | None:
        """The customer with the number ``e164`` (already normalised), or None."""
        ...
