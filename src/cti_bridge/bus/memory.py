"""The in-process bus: one node, no network, the embedded default and the tests' twin.

It keeps the Redis bus's promises (``base.py``), locks included: ``SET NX PX`` refuses the
holder too, a lease ends strictly after its last millisecond, and a grant's fencing token
comes from a counter per name that outlives every lease. Time comes from the
injected clock (a ``twisted.internet.task.Clock`` in tests), so expiry is tested by
advancing it, without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime

from .base import BusNotRunning, Handler, TextHandler, encode, lease_ms
from .fanout import LocalFanout


class MemoryBus:
    def __init__(self, reactor: IReactorTime, *, clock: Callable[[], float] | None = None):
        """``reactor`` runs the deliveries; ``clock`` (default: ``reactor.seconds``) is
        what the leases expire by."""
        self._reactor = reactor
        self._now = clock or reactor.seconds
        self._fanout = LocalFanout(reactor)
        #: name -> (owner, the last instant it is held)
        self._locks: dict[str, tuple[str, float]] = {}
        #: name -> the last fencing token granted (never expires, as Redis's counter)
        self._fences: dict[str, int] = {}
        self._running = False
        self.published = 0

    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        payload = encode(message)  # before counting: a refused message was not published
        self.published += 1
        self._fanout.deliver(topic, payload)

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        return self._fanout.subscribe(topic, handler)

    def subscribe_text(self, topic: str, handler: TextHandler) -> Callable[[], None]:
        return self._fanout.subscribe_text(topic, handler)

    def may_reach(self, topic: str) -> bool:
        return self._fanout.has_subscribers(topic)

    # -- locks -------------------------------------------------------------------------

    def _holder(self, name: str) -> str | None:
        held = self._locks.get(name)
        if held is None:
            return None
        if self._now() > held[1]:
            del self._locks[name]
            return None
        return held[0]

    def acquire(self, name: str, owner: str, ttl: float) -> Deferred[bool]:
        if not self._running:
            return fail(BusNotRunning(f"acquire {name!r}: the bus is not running"))
        if self._holder(name) is not None:
            return succeed(False)
        self._locks[name] = (owner, self._now() + lease_ms(ttl) / 1000)
        return succeed(True)

    def renew(self, name: str, owner: str, ttl: float) -> Deferred[bool]:
        if not self._running:
            return fail(BusNotRunning(f"renew {name!r}: the bus is not running"))
        if self._holder(name) != owner:
            return succeed(False)
        self._locks[name] = (owner, self._now() + lease_ms(ttl) / 1000)
        return succeed(True)

    def release(self, name: str, owner: str) -> Deferred[bool]:
        if not self._running:
            return fail(BusNotRunning(f"release {name!r}: the bus is not running"))
        if self._holder(name) != owner:
            return succeed(False)
        del self._locks[name]
        return succeed(True)

    def grant(self, name: str, owner: str, ttl: float, floor: int = 0) -> Deferred[int | None]:
        if not self._running:
            return fail(BusNotRunning(f"grant {name!r}: the bus is not running"))
        if self._holder(name) is not None:
            return succeed(None)
        token = self._fences[name] = max(self._fences.get(name, 0), floor) + 1
        self._locks[name] = (owner, self._now() + lease_ms(ttl) / 1000)
        return succeed(token)

    def token(self, name: str, owner: str) -> Deferred[int | None]:
        if not self._running:
            return fail(BusNotRunning(f"token {name!r}: the bus is not running"))
        if self._holder(name) != owner:
            return succeed(None)
        return succeed(self._fences.get(name))

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        self._running = True
        return succeed(None)

    def stop(self) -> Deferred[None]:
        # The leases stay, as they stay on the Redis server when a node stops: they end
        # by release or expiry, never because a holder went away.
        self._running = False
        return succeed(None)

    def status(self) -> dict[str, Any]:
        return {"status": "ok", "kind": "memory", "published": self.published}
