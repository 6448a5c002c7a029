"""What the callback dialer needs from the rest of cti-bridge, as small interfaces.

* ``CallbackBook``: the due callbacks and their attempts (``store/agreements.py``, its
  memory twin in ``store/memory/agreements.py``; one contract suite runs on memory,
  SQLite and PostgreSQL). Blocking: the service calls it in the node's thread pool.
* ``OperatorBoard``: the operators' live states, as the queues room sees them (members
  from AMI). Pure and on the reactor.

Every instant is an aware UTC datetime handed in by the caller (the injected clock): no
clock in here. ``DueCallback`` and ``OpenAttempt`` are defined in ``cti_bridge/callbacks.py``
(the store builds them and may not import a room) and named from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from cti_bridge.callbacks import DueCallback, OpenAttempt

from .policy import OperatorState

__all__ = ["CallbackBook", "DueCallback", "OpenAttempt", "OperatorBoard"]


class CallbackBook(Protocol):
    """Errors: ``InvalidRecord`` for a bad outcome or no such agreement. A lost race is
    never an error: ``claim_attempt`` answers ``False``."""

    def due_callbacks(self, now: datetime, limit: int = 100) -> list[DueCallback]:
        """Open callback agreements with a callback number and ``next_attempt_at <=
        now``, soonest first, at most ``limit``; read by the index on
        ``next_attempt_at``, never a scan of every agreement."""
        ...

    def claim_attempt(
        self,
        agreement_id: int,
        number: int,
        *,
        now: datetime,
        operator: str | None,
        node: str | None,
        pbx: str,
        channel_id: str,
        action_id: str,
        fence: int | None = None,
    ) -> bool:
        """In one committed transaction, before anything is dialled: with ``fence`` (the node's
        fencing token for ``pbx``), first that it is still ``pbx``'s current one
        (``lease.FenceRefused`` otherwise: nothing claimed; ``None``: no fencing); if the agreement
        is still open, still due (``next_attempt_at <= now``) and ``number`` is the next attempt's
        number, open attempt ``number`` (started at ``now``, with who, where and the Originate's
        ids), set the agreement ``dialling`` with no ``next_attempt_at``, and add an
        ``attempt_started`` history event; ``True``. Otherwise nothing changes; ``False``. On
        PostgreSQL the agreement is taken ``FOR UPDATE SKIP LOCKED`` (a row another node holds is
        skipped, not waited for); the partial unique index on open attempts refuses a second open
        attempt whatever happens (that ``IntegrityError`` is a ``False`` too).
        """
        ...

    def finish_attempt(
        self,
        agreement_id: int,
        number: int,
        outcome: str,
        *,
        now: datetime,
        detail: str | None = None,
        next_attempt_at: datetime | None = None,
        flag: str | None = None,
        fence: int | None = None,
    ) -> dict[str, Any] | None:
        """End open attempt ``number`` at ``now`` with ``outcome`` (``ATTEMPT_OUTCOMES``) and
        ``detail`` (words: the reason), after ``fence``'s check as ``claim_attempt``'s (for the PBX
        the attempt was dialled on; once the attempt is found open). Then the agreement, if it is
        ``dialling``: with ``flag`` (why: ``attempts_exhausted``, ``deadline_passed``,
        ``no_calling_time``) it becomes ``failed`` and ``flagged``; otherwise ``open`` again with
        ``next_attempt_at`` (``None`` after ``answered``: nothing more to dial, the operator closes
        it). An agreement closed meanwhile (done or cancelled by an operator) keeps its status.
        History events ``attempt_ended`` (and ``flagged``). Returns the agreement as
        ``get_agreement`` shows it; ``None`` when that attempt is not open (already ended: a second
        finish changes nothing).
        """
        ...

    def reschedule(self, agreement_id: int, next_attempt_at: datetime | None) -> bool:
        """While the agreement is an open callback with a number: look at it again at
        ``next_attempt_at`` (no attempt, no history: not in calling hours yet, no
        operator free; ``None``: not until something changes). ``False`` otherwise."""
        ...

    def flag_agreement(
        self, agreement_id: int, reason: str, *, now: datetime
    ) -> dict[str, Any] | None:
        """An open agreement that can no longer be kept without an attempt under way
        (its deadline passed, no calling time before it): ``failed``, ``flagged``, no
        ``next_attempt_at``, a ``flagged`` history event with ``reason``. Returns it as
        ``get_agreement``; ``None`` if it was not open."""
        ...

    def open_attempts(self, pbx: str | None = None) -> list[OpenAttempt]:
        """Attempts not ended (of ``pbx``'s, or all), oldest first."""
        ...


class OperatorBoard(Protocol):
    def operator_states(self, pbx: str) -> list[OperatorState]:
        """Every operator with a device on ``pbx``, by username, with the state the
        policy reads (``available``, ``ringing``, ``on_call``, ``wrap_up``, ``paused``,
        ``unavailable``), the queues they are a member of and since when."""
        ...
