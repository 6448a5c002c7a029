"""What the missed-calls room needs from storage, as small interfaces.

Both have their SQL side in ``store/`` and a memory twin in ``store/memory/``; one
contract suite runs on the three (``tests/unit/store/test_missed.py``), and mypy checks
that both sides fit (``testing/store_contract.py``):

* ``MissedCallBook``: the callback agreements that missed calls make and inbound calls
  keep (``store/missed.py``);
* ``NumberOwners``: whose number a caller's is (``store/callers.py``, the AGI lookup's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

__all__ = ["MissedCallBook", "NumberOwner", "NumberOwners", "Recorded"]

#: What ``record_missed_call`` did: made the number's agreement, joined the open one,
#: or nothing (this call was already in the book: a replay, a resync).
Recorded = Literal["created", "joined", "unchanged"]


class MissedCallBook(Protocol):
    """Every method is idempotent for one call (``pbx`` + ``linkedid``): the same call
    handed in twice changes nothing the second time. Times are aware datetimes."""

    def record_missed_call(
        self,
        pbx: str,
        linkedid: str,
        number: str,
        *,
        queue: str,
        at: datetime,
        deadline: datetime,
        customer_id: int | None,
    ) -> tuple[Recorded, int]:
        """A queue call from ``number`` (E.164) was abandoned at ``at``. No open
        missed-call agreement for the number: a new ``callback`` agreement (origin
        ``missed_call``, ``queue``, owner none, the customer, the call's record if it is
        written already, ``due_at`` and ``next_attempt_at`` = ``at``, ``deadline``) with
        a ``created`` event; else a ``missed_call`` event (pbx, linkedid, call_id) on the
        open one. Returns what it did and the agreement's id."""
        ...

    def resolve_by_call(self, pbx: str, linkedid: str, number: str, at: datetime) -> list[int]:
        """An inbound call from ``number`` was answered at ``at``: its open missed-call
        agreements due before ``at`` are done (disposition ``solved_on_inbound_call``,
        ``closed_at`` = ``at``, nothing more to dial) with a ``resolved_by_call`` event
        (pbx, linkedid, call_id). Returns the ids closed, oldest first."""
        ...


class NumberOwner(Protocol):
    @property
    def customer_id(self) -> int: ...


class NumberOwners(Protocol):
    def caller(self, e164: str) -> NumberOwner | None:
        """The customer whose number ``e164`` is (a number has one owner), or None."""
        ...
