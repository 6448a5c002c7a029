"""The values the callback dialer and the agreement book hand each other.

Plain frozen dataclasses, no behaviour: a due callback as the dialer sees it, an attempt
as the policy reads it, an attempt still open at start-up. They live outside both the
dialer room and the store because both need them: the store builds them (it implements
``dialer/ports.py``'s ``CallbackBook``, and it knows no room), the dialer reads them
(``dialer/ports.py`` and ``dialer/policy.py`` re-export them, so the dialer's code names
them from its own room). And the node signal the rooms that make agreements send the
dialer. Pure, like ``vocabulary.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["AGREEMENTS_CHANGED", "Attempt", "DueCallback", "OpenAttempt"]

#: The node's signal (``node.notify``/``node.listen``) that an agreement was made or
#: changed (the console, a missed call): the dialer looks at once, not at its next pass.
AGREEMENTS_CHANGED = "agreements_changed"


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    started_at: datetime
    ended_at: datetime | None = None
    #: ``None`` while the attempt is open (ringing, talking).
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class DueCallback:
    """An open callback agreement whose ``next_attempt_at`` has come."""

    agreement_id: int
    callback_number: str  # E.164
    due_at: datetime  # when it first fell due (the owner's grace counts from it)
    next_attempt_at: datetime
    deadline: datetime | None = None
    owner: str | None = None  # username
    queue: str | None = None
    customer_id: int | None = None
    customer_name: str | None = None
    #: The customer's IANA zone; ``None``: the site's (``[dialer] timezone``).
    timezone: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    #: Every attempt so far, oldest first (the policy's view of them).
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenAttempt:
    """An attempt that has not ended (at start-up: resolve it from the PBX)."""

    agreement_id: int
    number: int
    started_at: datetime
    pbx: str | None
    channel_id: str | None
    action_id: str | None
    operator: str | None
    node: str | None
