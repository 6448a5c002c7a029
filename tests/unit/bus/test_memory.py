"""What only the memory twin can show exactly: lease arithmetic to the millisecond, on its
injected clock. The contract suite (``test_contract.py``) holds what both buses share."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from cti_bridge.bus import MemoryBus, make_bus
from cti_bridge.bus.base import lease_ms


def result(d: Deferred[bool]) -> bool:
    got: list[bool] = []
    d.addCallback(got.append)
    assert got, "a memory bus answers at once"
    return got[0]


def started(clock: Clock) -> MemoryBus:
    bus = MemoryBus(clock)
    bus.start()
    return bus


def test_lease_is_held_through_its_last_millisecond_and_free_after() -> None:
    """Redis keeps a key while ``mstime() <= when``; so does the twin."""
    clock = Clock()
    bus = started(clock)
    assert result(bus.acquire("l", "a", ttl=0.3)) is True
    clock.advance(0.3)
    assert result(bus.acquire("l", "b", ttl=1)) is False  # at its expiry: still held
    clock.advance(0.0005)
    assert result(bus.acquire("l", "b", ttl=1)) is True


def test_ttl_counts_in_whole_milliseconds_and_at_least_one() -> None:
    assert [lease_ms(t) for t in (0.3, 1, 0.0019, 0, -5)] == [300, 1000, 1, 1, 1]
    clock = Clock()
    bus = started(clock)
    assert result(bus.acquire("l", "a", ttl=0.0019)) is True  # PX 1, as Redis gets it
    clock.advance(0.001)
    assert result(bus.acquire("l", "b", ttl=1)) is False
    clock.advance(0.0001)
    assert result(bus.acquire("l", "b", ttl=1)) is True
    assert result(bus.acquire("zero", "a", ttl=0)) is True  # PX 1: held for now
    assert result(bus.acquire("zero", "b", ttl=1)) is False


def test_renew_counts_from_now() -> None:
    clock = Clock()
    bus = started(clock)
    assert result(bus.acquire("l", "a", ttl=1)) is True
    clock.advance(0.9)
    assert result(bus.renew("l", "a", ttl=1)) is True
    clock.advance(1.0)
    assert result(bus.acquire("l", "b", ttl=1)) is False  # 1.9 s: held until 1.9
    clock.advance(0.0005)
    assert result(bus.acquire("l", "b", ttl=1)) is True


def test_leases_run_on_an_injected_clock_apart_from_the_reactor() -> None:
    reactor = Clock()
    now = [1000.0]
    bus = MemoryBus(reactor, clock=lambda: now[0])
    bus.start()
    assert result(bus.acquire("l", "a", ttl=5)) is True
    reactor.advance(60)  # the reactor's time is not the leases' time
    assert result(bus.acquire("l", "b", ttl=5)) is False
    now[0] += 5.001
    assert result(bus.acquire("l", "b", ttl=5)) is True


def test_leases_outlive_a_stop() -> None:
    """As on a Redis server: a node that stops lets go of its link, not of its leases."""
    clock = Clock()
    bus = started(clock)
    assert result(bus.acquire("l", "a", ttl=5)) is True
    bus.stop()
    bus.start()
    assert result(bus.acquire("l", "b", ttl=5)) is False
    clock.advance(6)
    assert result(bus.acquire("l", "b", ttl=5)) is True


def test_make_bus_memory() -> None:
    clock = Clock()
    bus = make_bus("memory://", clock)
    assert isinstance(bus, MemoryBus)
    assert bus.status() == {"status": "ok", "kind": "memory", "published": 0}


def test_fencing_tokens_outlive_leases_and_a_stop() -> None:
    """As Redis's counter key: no expiry, and a node's stop does not reset it."""
    clock = Clock()
    bus = started(clock)
    granted: list[int | None] = []
    bus.grant("pbx", "a", ttl=1).addCallback(granted.append)
    clock.advance(2)
    bus.stop()
    bus.start()
    bus.grant("pbx", "b", ttl=1).addCallback(granted.append)
    assert granted == [1, 2]
