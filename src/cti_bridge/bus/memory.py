"""The in-process bus: one node, no network, the embedded default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from .base import Handler, LocalFanout, encode


class MemoryBus:
    def __init__(self, reactor: IReactorTime):
        self._reactor = reactor
        self._fanout = LocalFanout(reactor)
        self._locks: dict[str, tuple[str, float]] = {}
        self.published = 0

    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        self.published += 1
        self._fanout.deliver(topic, encode(message))

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        return self._fanout.subscribe(topic, handler)

    def acquire(self, name: str, owner: str, ttl: float) -> Deferred[bool]:
        now = self._reactor.seconds()
        holder = self._locks.get(name)
        if holder is not None and holder[1] > now and holder[0] != owner:
            return succeed(False)
        self._locks[name] = (owner, now + ttl)
        return succeed(True)

    def release(self, name: str, owner: str) -> Deferred[bool]:
        holder = self._locks.get(name)
        if holder is None or holder[0] != owner:
            return succeed(False)
        del self._locks[name]
        return succeed(holder[1] > self._reactor.seconds())

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def status(self) -> dict[str, Any]:
        return {"status": "ok", "kind": "memory", "published": self.published}
