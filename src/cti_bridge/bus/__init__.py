"""Fan-out and locks: in-process by default, Redis across nodes.

Importing the package, its interface (``base``) or its topic names (``topics``) loads no
Twisted; the implementations load when asked for (``MemoryBus``, ``make_bus``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Bus, BusNotRunning, BusUnreachable, Handler

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from .memory import MemoryBus

__all__ = ["Bus", "BusNotRunning", "BusUnreachable", "Handler", "MemoryBus", "make_bus"]


def make_bus(url: str, reactor: IReactorTime) -> Bus:
    if url.startswith("memory://"):
        from .memory import MemoryBus  # noqa: PLC0415 - see the module docstring

        return MemoryBus(reactor)
    from .redis import RedisBus  # noqa: PLC0415 - only sites with Redis need txredisapi

    return RedisBus(reactor, url)


def __getattr__(name: str) -> object:
    if name == "MemoryBus":
        from .memory import MemoryBus  # noqa: PLC0415 - see the module docstring

        return MemoryBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
