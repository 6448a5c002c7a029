"""The bus: fan-out of pushes (pops, call updates, queue updates) and short locks.

In-process by default; Redis when several cti-bridge nodes share the work. Both
implementations pass one contract suite (``tests/unit/bus/test_contract.py``), the memory
twin on a fake clock and the Redis bus on the real server. Messages are JSON objects on
named topics (``topics.py``), so the in-process twin serialises too: a payload the Redis
bus could not carry fails in the embedded default as well, not first in production.

What both promise:

* Delivery is *eventual* (a later reactor turn, never inside ``publish``), so a handler that
  publishes again cannot recurse into itself. Each handler gets its own copy of the message.
* A handler receives a message when it was subscribed as the message reached its node (for
  the node that published it: at ``publish``) and is still subscribed when it runs. Messages
  from one node arrive everywhere in the order they were published, across topics too.
* A handler that raises is logged and stays subscribed; the others still get the message.
* A lock is a lease: ``acquire`` succeeds only if nobody holds ``name``, the holder
  included (as ``SET NX``: holding it again is ``renew``), for ``ttl`` seconds counted in
  whole milliseconds (at least one); it is held up to and including its expiry instant
  and free strictly after it (Redis's ``mstime() <= when``). Lock operations need a
  started bus: before ``start`` and after ``stop`` they fail with :class:`BusNotRunning`.
* A *fenced* lease is a lock taken by ``grant``: the same ``SET NX PX``, plus a fencing
  token from a counter of its own that never expires and grows by one with every grant
  of that name, whoever takes it (atomically, on Redis one script). ``renew`` and
  ``release`` work on it as on any lock; ``token`` tells its holder the token it was
  granted with. The token is what the writes that matter check in the database
  (``store/fences.py``): a holder that was paused past its lease holds an older token
  than whoever took over, so its writes are refused there, whatever its clock says. A
  name is used either with ``acquire`` or with ``grant``, not both (``acquire`` does not
  move the counter).

This module is pure (no Twisted at run time), so the interface and the topic names can be
imported by decision code without loading a reactor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = ["Bus", "BusNotRunning", "BusUnreachable", "Handler", "TextHandler", "encode", "lease_ms"]

Handler = Callable[[dict[str, Any]], None]
#: Receives a message as its JSON text (``encode``'s), for a subscriber that only forwards
#: it (a screen's socket): one message to many sockets is not decoded and encoded again
#: for each of them.
TextHandler = Callable[[str], None]


class BusNotRunning(RuntimeError):
    """A lock operation on a bus that is not started (or already stopped)."""


class BusUnreachable(RuntimeError):
    """A lock operation the bus's server did not answer in time (it is away)."""


class Bus(Protocol):
    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        """Deliver to every subscriber of ``topic`` on every node; never blocks.

        Raises ``TypeError``/``ValueError`` at once for a message that is not JSON."""

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(message)`` for each message; returns the unsubscribe function
        (which may be called more than once)."""

    def subscribe_text(self, topic: str, handler: TextHandler) -> Callable[[], None]:
        """As ``subscribe``, with the message as its JSON text (``encode``'s form)."""

    def may_reach(self, topic: str) -> bool:
        """False only if no node can have a subscriber of ``topic`` now (the in-process
        bus knows its subscribers; a bus across nodes answers True): a publisher may then
        skip building a message nobody would receive."""

    def acquire(self, name: str, owner: str, ttl: float) -> Deferred[bool]:
        """Take lock ``name`` for ``ttl`` seconds unless anyone holds it (``owner`` too)."""

    def renew(self, name: str, owner: str, ttl: float) -> Deferred[bool]:
        """Hold lock ``name`` ``ttl`` seconds from now, only if ``owner`` still holds it."""

    def release(self, name: str, owner: str) -> Deferred[bool]:
        """Give the lock back, only if ``owner`` still holds it."""

    def grant(self, name: str, owner: str, ttl: float, floor: int = 0) -> Deferred[int | None]:
        """As ``acquire``, and on success the lease's new fencing token (greater than
        every token granted for ``name`` before, and than ``floor``); ``None`` when
        somebody holds it. ``floor``: a token known to have been granted (the database's
        fence), for a bus that lost its counter (a Redis restarted without persistence)."""

    def token(self, name: str, owner: str) -> Deferred[int | None]:
        """The fencing token ``owner`` was granted ``name`` with, while it holds it;
        ``None`` when it does not (expired, released, another holder)."""

    def start(self) -> Deferred[None]: ...

    def stop(self) -> Deferred[None]: ...

    def status(self) -> dict[str, Any]:
        """At least ``status`` ("ok" | "degraded"), ``kind`` and ``published`` (messages
        accepted by ``publish`` on this node)."""


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def lease_ms(ttl: float) -> int:
    """A lock's time to live as both buses hold it: whole milliseconds, at least one."""
    return max(1, int(ttl * 1000))
