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
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import Clock

from cti_bridge.app.ownership import Ownership
from cti_bridge.bus import MemoryBus
from cti_bridge.lease import FenceRefused, Timing
from cti_bridge.records.writer import RecordWriter
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.testing.store import START, queue_call_answered

TIMING = Timing(ttl=6.0)  # renew every 2 s; stop acting 1.2 s before the lease could end


class World:
    def __init__(self) -> None:
        self.time = Clock()
        self.time.advance(START)
        self.bus = MemoryBus(self.time, clock=self.time.seconds)
        self.bus.start()
        self.store: MemoryStore = open_memory_store(clock=self.time.seconds)
        self.links: dict[str, list[str]] = {}

    def node(self, name: str) -> tuple[Ownership, Clock]:
        clock = Clock()
        clock.advance(self.time.seconds())
        links = self.links[name] = []

        def raise_fence(pbx: str, token: int) -> Deferred[int]:
            return succeed(self.store.fences.raise_fence(pbx, token, name))

        ownership = Ownership(
            clock,
            self.bus,
            ["main", "branch"],
            name,
            raise_fence=raise_fence,
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


def test_without_fencing_the_writer_writes_as_before(world: World) -> None:
    writer = RecordWriter(world.store.calls, world.time, maybeDeferred)
    for event in queue_call_answered().events:
        writer.submit(event)
    assert len(world.store.queries.list_calls()) == 1
    assert "not_owned" not in writer.status()


def _on(event: Any, pbx: str) -> Any:
    return replace(event, call=replace(event.call, pbx=pbx))
