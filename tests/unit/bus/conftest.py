"""The two buses behind one driver, so that one contract suite runs on both.

The tests are coroutines (pytest-twisted runs every test inside the reactor), and they wait
only through the driver:

``memory``: one in-process bus on a ``twisted.internet.task.Clock``; its "two nodes" are the
same bus. The driver turns the clock to run deliveries, and time passes only when a test
says so (``elapse``); nothing waits for the real reactor, nothing sleeps.

``redis`` (marked ``redis``): two ``RedisBus`` nodes on the real server at
``CTI_TEST_REDIS_URL`` (default 127.0.0.1:6379/0), on the real reactor. Every test has its
own key prefix (its keys are deleted afterwards; nothing else on the server is touched).
Time passes for the leases on the server: ``elapse`` shortens their ``PTTL`` by that much
(``PEXPIRE``), and one whose time is up gets ``PEXPIRE 1`` and is waited for (bounded)
until Redis itself has expired it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from cti_bridge.bus import Bus, MemoryBus
from cti_bridge.bus.redis import RedisBus

T = TypeVar("T")

REDIS_URL = os.environ.get("CTI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: How long a driver waits for something that should happen at once (network included).
PATIENCE = 10.0


class Nodes:
    """Two nodes of one bus and the means to let time and the reactor move."""

    kind: str
    a: Bus
    b: Bus

    async def wait(self, d: Deferred[T]) -> T:
        """The result of ``d`` (its exception raised here)."""
        raise NotImplementedError

    async def until(self, check: Callable[[], object], what: str = "") -> None:
        """Let deliveries run until ``check()`` is true (a test failure if it never is)."""
        raise NotImplementedError

    async def elapse(self, seconds: float) -> None:
        """Let ``seconds`` pass for the leases."""
        raise NotImplementedError

    def fresh(self) -> Bus:
        """Another node of this bus, not started yet (stopped after the test)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class MemoryNodes(Nodes):
    kind = "memory"

    def __init__(self) -> None:
        self.clock = Clock()
        bus = MemoryBus(self.clock)
        self._settled(bus.start())
        self.a = self.b = bus

    def _settled(self, d: Deferred[T]) -> list[T | Failure]:
        results: list[T | Failure] = []
        d.addBoth(results.append)
        for _ in range(100):
            if results:
                break
            self.clock.advance(0)
        return results

    async def wait(self, d: Deferred[T]) -> T:
        results = self._settled(d)
        assert results, "the memory bus left a Deferred unfired"
        result = results[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    async def until(self, check: Callable[[], object], what: str = "") -> None:
        for _ in range(100):
            if check():
                return
            self.clock.advance(0)
        raise AssertionError(f"never happened: {what or check}")

    async def elapse(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def fresh(self) -> Bus:
        return MemoryBus(self.clock)

    def close(self) -> None:
        assert not self.clock.getDelayedCalls(), "deliveries left pending"


def _sleep(seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def _eventually(check: Callable[[], object], what: str) -> None:
    deadline = reactor.seconds() + PATIENCE
    while not check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"not within {PATIENCE} s: {what or check}")
        await _sleep(0.005)


class RedisNodes(Nodes):
    kind = "redis"

    def __init__(self) -> None:
        self.prefix = f"cti-test-{uuid.uuid4().hex[:12]}"
        self.server = redis.Redis.from_url(REDIS_URL)
        self._nodes: list[RedisBus] = []
        self.a = self._node(start=True)
        self.b = self._node(start=True)

    def _node(self, *, start: bool) -> RedisBus:
        """A node; a started one is waited for (fixtures run outside the reactor)."""
        bus = RedisBus(reactor, REDIS_URL, prefix=self.prefix)
        self._nodes.append(bus)
        if start:
            pytest_twisted.blockon(bus.start())
            pytest_twisted.blockon(
                ensureDeferred(_eventually(lambda: bus.status()["subscribed"], "subscribed"))
            )
        return bus

    async def wait(self, d: Deferred[T]) -> T:
        return await d

    async def until(self, check: Callable[[], object], what: str = "") -> None:
        await _eventually(check, what)

    def _lock_keys(self) -> list[bytes]:
        return list(self.server.scan_iter(match=f"{self.prefix}:lock:*"))

    async def elapse(self, seconds: float) -> None:
        step = int(seconds * 1000)
        ending = []
        for key in self._lock_keys():
            left = int(self.server.pttl(key))
            if left < 0:  # gone meanwhile (-2), or no expiry (-1: not a lease of ours)
                continue
            if left > step:
                self.server.pexpire(key, left - step)
            else:
                self.server.pexpire(key, 1)
                ending.append(key)
        await self.until(lambda: not any(self.server.exists(key) for key in ending), "expired")

    def fresh(self) -> Bus:
        return self._node(start=False)

    def close(self) -> None:
        for bus in self._nodes:
            pytest_twisted.blockon(ensureDeferred(_stop(bus)))
        keys = list(self.server.scan_iter(match=f"{self.prefix}:*"))
        if keys:
            self.server.delete(*keys)
        self.server.close()


async def _stop(bus: RedisBus) -> None:
    await bus.stop()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def nodes(request: Any) -> Iterator[Nodes]:
    """Two nodes on one bus (for memory: the same in-process bus twice)."""
    driver: Nodes = MemoryNodes() if request.param == "memory" else RedisNodes()
    try:
        yield driver
    finally:
        driver.close()
