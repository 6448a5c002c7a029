"""Two nodes, one clock: the PBX leases (``app/ownership.py`` driving ``lease.py``) on the
in-process bus and the store's fences (its memory twin), with fenced writes.

Each node has its own reactor clock, and the bus and the store read one shared time, so
a node can be *paused*: its clock stops turning (no timer runs, nothing is answered)
while the other one's and the lease's time go on.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import Clock

from cti_bridge.app.ownership import Ownership
from cti_bridge.bus import BusUnreachable, MemoryBus
from cti_bridge.lease import FenceRefused, Timing
from cti_bridge.records.writer import RecordWriter
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.testing.store import START, queue_call_answered

TIMING = Timing(ttl=6.0)  # renew every 2 s; stop acting 1.2 s before the lease could end


class RestartableBus:
    """The in-process bus as a Redis server the test can stop and start again: stopped,
    every lock request fails as the Redis bus fails it (``BusUnreachable``) and the bus
    says degraded; started again, it has forgotten every lease and counter (a restart
    without persistence)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.server = self._fresh()
        self.away = False

    def _fresh(self) -> MemoryBus:
        bus = MemoryBus(self._clock, clock=self._clock.seconds)
        bus.start()
        return bus

    def down(self) -> None:
        self.away = True

    def restart(self) -> None:
        self.server, self.away = self._fresh(), False

    def status(self) -> dict[str, Any]:
        return {"status": "degraded" if self.away else "ok", "kind": "test"}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.server, name)
        if name not in ("grant", "renew", "release", "token") or not self.away:
            return method
        return lambda *args, **kwargs: fail(BusUnreachable(f"{name}: redis is away"))


class World:
    def __init__(self) -> None:
        self.time = Clock()
        self.time.advance(START)
        self.bus = RestartableBus(self.time)
        self.store: MemoryStore = open_memory_store(clock=self.time.seconds)
        self.links: dict[str, list[str]] = {}

    def node(self, name: str) -> tuple[Ownership, Clock]:
        clock = Clock()
        clock.advance(self.time.seconds())
        links = self.links[name] = []

        def raise_fence(pbx: str, token: int, holder: str) -> Deferred[int]:
            return maybeDeferred(self.store.fences.raise_fence, pbx, token, holder)

        def read_fence(pbx: str) -> Deferred[int | None]:
            return succeed(self.store.fences.current_fence(pbx))

        ownership = Ownership(
            clock,
            self.bus,
            ["main", "branch"],
            name,
            raise_fence=raise_fence,
            read_fence=read_fence,
            on_owned=lambda pbx, token: links.append(f"start {pbx}"),
            on_lost=lambda pbx, token: links.append(f"stop {pbx}"),
            timing=TIMING,
        )
        return ownership, clock

    def advance(self, seconds: float, *clocks: Clock, step: float = 0.1) -> None:
        """Time passes for the bus and the store, and for the running nodes' clocks."""
        left = seconds
        while left > 1e-9:
            tick = min(step, left)
            self.time.advance(tick)
            for clock in clocks:
                clock.advance(tick)
            left -= tick


@pytest.fixture
def world() -> World:
    return World()


def test_the_first_node_owns_the_pbx_the_second_waits(world: World) -> None:
    a, clock_a = world.node("node-a")
    b, clock_b = world.node("node-b")
    a.start()
    b.start()
    assert a.owns() == ["main", "branch"] and b.owns() == []
    assert world.links == {"node-a": ["start main", "start branch"], "node-b": []}
    token = a.token("main")
    assert token is not None and world.store.fences.current_fence("main") == token
    world.advance(60, clock_a, clock_b)  # renewals keep it
    assert a.owns() == ["main", "branch"] and b.owns() == []
    assert a.token("main") == token  # renewing keeps the token
    assert world.links["node-a"] == ["start main", "start branch"]


def test_when_the_owner_dies_another_takes_over_within_the_lease(world: World) -> None:
    a, clock_a = world.node("node-a")
    b, clock_b = world.node("node-b")
    a.start()
    b.start()
    old = a.token("main")
    world.advance(1, clock_a, clock_b)
    # node-a dies: its clock never turns again, nothing of it is released.
    world.advance(6.5, clock_b)
    assert b.owns() == ["main", "branch"]
    new = b.token("main")
    assert old is not None and new is not None and new > old
    assert world.store.fences.current_fence("main") == new
    assert world.links["node-b"] == ["start main", "start branch"]


def test_a_clean_stop_hands_over_at_once(world: World) -> None:
    a, clock_a = world.node("node-a")
    b, clock_b = world.node("node-b")
    a.start()
    b.start()
    a.stop()
    assert world.links["node-a"] == ["start main", "start branch", "stop main", "stop branch"]
    world.advance(1.3, clock_a, clock_b)  # b's next try, not the lease's end
    assert b.owns() == ["main", "branch"]


def test_a_paused_owner_loses_the_pbx_and_its_writes_are_refused(world: World) -> None:
    """SIGSTOP past the lease: on waking, the first thing it does - writing the records
    it had queued - is refused, before any of its timers has run; and a write already
    handed to the database with the old token is refused there."""
    a, clock_a = world.node("node-a")
    b, clock_b = world.node("node-b")
    a.start()
    b.start()
    stale = a.token("main")
    assert stale is not None
    writer = RecordWriter(world.store.calls, clock_a, maybeDeferred, fences=a)
    world.advance(10, clock_b)  # node-a is paused; node-b takes over
    assert b.owns() == ["main", "branch"]
    clock_a.rightNow = world.time.seconds()  # node-a wakes: its clock jumps, no timer ran
    assert a.token("main") is None  # its own clock says the lease may have run out
    for event in queue_call_answered().events:
        writer.submit(event)
    assert world.store.queries.list_calls() == []
    assert writer.status()["not_owned"] == len(queue_call_answered().events)
    # A write that was already on its way with the old token: refused by the store.
    with pytest.raises(FenceRefused):
        world.store.calls.apply(queue_call_answered().events, fences={"main": stale})
    clock_a.advance(0)  # its late timers run: it gives up what it no longer owns
    assert world.links["node-a"][-2:] == ["stop main", "stop branch"]
    assert a.owns() == []
    world.advance(30, clock_a, clock_b)
    assert a.owns() == [] and b.owns() == ["main", "branch"]  # no flapping back


def test_a_refused_token_drops_ownership_and_the_writer_moves_on(world: World) -> None:
    """The database knows better than the lease: a token refused there makes the node
    give the PBX up, and the writer drops that PBX's events instead of retrying."""
    a, clock_a = world.node("node-a")
    a.start()
    token = a.token("main")
    assert token is not None
    world.store.fences.raise_fence("main", token + 10, "node-z")  # as if another took it
    writer = RecordWriter(world.store.calls, clock_a, maybeDeferred, fences=a)
    main = queue_call_answered("main-call")
    other = queue_call_answered("branch-call", at=START + 1)
    branch_events = [_on(e, "branch") for e in other.events]
    for event in [*main.events, *branch_events]:
        writer.submit(event)
    calls = world.store.queries.list_calls()
    assert [(c["pbx"], c["linkedid"]) for c in calls] == [("branch", "branch-call")]
    assert "main" not in a.owns() and "branch" in a.owns()
    assert writer.status()["pending"] == 0 and writer.status()["failed"] == 0
    assert world.links["node-a"] == ["start main", "start branch", "stop main"]


def test_redis_down_then_back_empty_the_owner_keeps_its_pbxs_throughout(world: World) -> None:
    """Redis stops for 20 s (three leases) and comes back without its leases and
    counters. No other node can have been granted the PBX meanwhile, and the database
    still holds the owner's token: the owner keeps its PBX links up and writes its records
    all along; when Redis is back it is granted the lease again above the old token, and
    the other node, which asked all along, never owns anything."""
    a, clock_a = world.node("node-a")
    b, clock_b = world.node("node-b")
    a.start()
    b.start()
    old = a.token("main")
    assert old is not None
    writer = RecordWriter(world.store.calls, clock_a, maybeDeferred, fences=a)
    world.bus.down()
    world.advance(20, clock_a, clock_b)
    assert a.owns() == ["main", "branch"] and b.owns() == []
    assert a.status()["main"]["kept_without_bus"] is True
    for event in queue_call_answered("during").events:
        writer.submit(event)
    world.bus.restart()
    world.advance(10, clock_a, clock_b)
    new = a.token("main")
    assert new is not None and new > old  # above every token granted before the restart
    assert world.store.fences.current_fence("main") == new
    assert a.owns() == ["main", "branch"] and b.owns() == []
    assert a.status()["main"]["kept_without_bus"] is False
    for event in queue_call_answered("after", at=START + 60).events:
        writer.submit(event)
    assert [c["linkedid"] for c in world.store.queries.list_calls()] == ["after", "during"]
    assert world.links == {"node-a": ["start main", "start branch"], "node-b": []}


def test_after_an_outage_a_standby_gives_the_kept_owner_a_lease_to_come_back(
    world: World,
) -> None:
    """Redis away, then back empty: whoever asks first would be granted the lease. The
    standby waits a lease's time after the bus answers again before it asks, so a kept
    owner takes its leases back; only an owner that did not come back is replaced."""
    a, clock_a = world.node("node-a")
    b, clock_b = world.node("node-b")
    a.start()
    b.start()
    world.bus.down()
    world.advance(10, clock_a, clock_b)  # b's grants fail: the bus is away
    assert b.owns() == []
    world.bus.restart()  # and node-a dies in that instant: nobody renews
    world.advance(TIMING.ttl - 1, clock_b)
    assert b.owns() == []  # an empty Redis, yet b holds back
    world.advance(3, clock_b)
    assert b.owns() == ["main", "branch"]


def test_redis_back_empty_after_the_owner_died_the_next_owner_fences_above_it(
    world: World,
) -> None:
    """The owner dies while Redis restarts (its counters lost): the other node's first
    grant (token 1 again) is below the database's fence; it is granted again at once
    with the database's token as the floor, and owns the PBX within a few seconds,
    the dead owner's token refused."""
    a, clock_a = world.node("node-a")
    b, clock_b = world.node("node-b")
    a.start()
    b.start()
    world.advance(30, clock_a, clock_b)  # some renewals; tokens for two PBXs
    dead = a.token("main")
    assert dead is not None
    world.bus.restart()  # and node-a's clock never turns again
    world.advance(3, clock_b)
    assert b.owns() == ["main", "branch"]
    token = b.token("main")
    assert token is not None and token > dead
    with pytest.raises(FenceRefused):
        world.store.calls.apply(queue_call_answered().events, fences={"main": dead})


def test_without_fencing_the_writer_writes_as_before(world: World) -> None:
    writer = RecordWriter(world.store.calls, world.time, maybeDeferred)
    for event in queue_call_answered().events:
        writer.submit(event)
    assert len(world.store.queries.list_calls()) == 1
    assert "not_owned" not in writer.status()


def _on(event: Any, pbx: str) -> Any:
    return replace(event, call=replace(event.call, pbx=pbx))
