"""The bus: fan-out of pushes (pops, call updates, queue updates) and short locks.

In-process by default; Redis when several cti-bridge nodes share the work. Both
implementations pass the same test suite (``tests/unit/test_bus.py``). Messages are JSON
objects on named topics, so the in-process twin serialises too: a payload the Redis bus
could not carry fails in the embedded default as well, not first in production.

Delivery is *eventual* (the next reactor turn, never inside ``publish``), so a handler that
publishes again cannot recurse into itself, and a failing handler is logged and isolated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

log = structlog.get_logger("cti_bridge.bus")

Handler = Callable[[dict[str, Any]], None]


class Bus(Protocol):
    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        """Deliver to every subscriber of ``topic`` on every node; never blocks."""

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(message)`` for each message; returns the unsubscribe function."""

    def acquire(self, name: str, owner: str, ttl: float) -> Deferred[bool]:
        """Take lock ``name`` for ``ttl`` seconds unless someone else holds it."""

    def release(self, name: str, owner: str) -> Deferred[bool]:
        """Give the lock back, only if ``owner`` still holds it."""

    def start(self) -> Deferred[None]: ...

    def stop(self) -> Deferred[None]: ...

    def status(self) -> dict[str, Any]: ...


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class LocalFanout:
    """Subscribers of this process, called one reactor turn after a publish."""

    def __init__(self, reactor: IReactorTime):
        self._reactor = reactor
        self._handlers: dict[str, list[Handler]] = {}

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        self._handlers.setdefault(topic, []).append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers.get(topic, [])
            if handler in handlers:
                handlers.remove(handler)
            if not handlers:
                self._handlers.pop(topic, None)

        return unsubscribe

    def topics(self) -> list[str]:
        return list(self._handlers)

    def has_subscribers(self, topic: str) -> bool:
        return topic in self._handlers

    def deliver(self, topic: str, payload: str) -> None:
        """Schedule delivery of an encoded message to this node's subscribers."""
        if topic in self._handlers:
            self._reactor.callLater(0, self._run, topic, payload)

    def _run(self, topic: str, payload: str) -> None:
        for handler in list(self._handlers.get(topic, ())):
            # Each handler gets its own copy: one cannot change what the next one sees.
            message = json.loads(payload)
            try:
                handler(message)
            except Exception:
                log.exception("bus handler failed", topic=topic, handler=repr(handler))
