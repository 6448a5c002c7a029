"""Fan-out and locks: in-process by default, Redis across nodes."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from .base import Bus, Handler
from .memory import MemoryBus

__all__ = ["Bus", "Handler", "MemoryBus", "make_bus"]


def make_bus(url: str, reactor: IReactorTime) -> Bus:
    if url.startswith("memory://"):
        return MemoryBus(reactor)
    from .redis import RedisBus  # noqa: PLC0415 - only sites with Redis need txredisapi

    return RedisBus(reactor, url)
