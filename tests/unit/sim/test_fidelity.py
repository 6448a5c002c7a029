"""The simulator's events have the shape of the recorded Asterisk 22 events.

For every event the simulator emits, its header names -- in order -- must be one of the
header sequences recorded for that event type in ``tests/fixtures/ami-traces/pjsip/``
(real PJSIP phones), or, for types the pjsip recordings do not contain (transfers,
list items, pauses, security events), in the Local-channel traces beside them. The
``Privilege`` must match too. A client that works on the recordings therefore sees
nothing new from the simulator.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.ami.parser import Message, parse_stream
from cti_bridge.sim import SCENARIOS, Callee, Reply, SimulatedPBX
from cti_bridge.sim.harness import Link, run
from tests.support.paths import TRACES

SECRET = "fidelity"

Shapes = dict[str, set[tuple[str, ...]]]


def _shapes(paths: list[Path]) -> tuple[Shapes, dict[str, set[str]]]:
    shapes: Shapes = defaultdict(set)
    privileges: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        for msg in parse_stream(path.read_bytes()):
            if "Event" in msg:
                shapes[msg["Event"]].add(tuple(msg))
                privileges[msg["Event"]].add(msg.get("Privilege", ""))
    return shapes, privileges


@cache
def recorded() -> tuple[Shapes, dict[str, set[str]]]:
    """Shapes from the pjsip traces, plus Local-trace shapes for the other event types."""
    pjsip, pjsip_priv = _shapes(sorted((TRACES / "pjsip").glob("*.ami")))
    local, local_priv = _shapes(sorted(TRACES.glob("*.ami")))
    for event, shapes in local.items():
        if event not in pjsip:
            pjsip[event] = shapes
            pjsip_priv[event] = local_priv[event]
    return dict(pjsip), dict(pjsip_priv)


@cache
def simulated() -> tuple[Message, ...]:
    """A busy day on the simulator: every scenario, callbacks, pauses, lists, failures."""
    clock = MemoryReactorClock()
    clock.advance(1_795_737_000)
    sim = SimulatedPBX(clock, seed=5, secret=SECRET)
    link = Link.open(sim)
    monitor_of_failures = Link.open(sim)
    link.login("cti", SECRET)
    for name in sorted(SCENARIOS):
        sim.place_call(name)
        run(clock, 5)
        link.send("QueueStatus", ActionID=f"qs-{name}")
        link.send("CoreShowChannels", ActionID=f"csc-{name}")
        link.send("Status", ActionID=f"st-{name}")
        run(clock, 200)
    sim.pause("PJSIP/1002", "Lunchpauze")
    sim.unpause("PJSIP/1002")
    sim.set_reachable("PJSIP/1003", False)
    sim.place_call("queue_answered")
    run(clock, 200)
    sim.set_reachable("PJSIP/1003", True)
    sim.set_callee("050123456", Callee(Reply.answer(2), talk=5))
    sim.set_callee("0478554433", Callee(Reply.busy(1)))
    for channel, number, reply in (
        ("PJSIP/1001", "050123456", None),
        ("PJSIP/1001", "0478554433", None),
        ("PJSIP/1001", "025123456", Reply.noanswer()),
        ("PJSIP/1001", "093334455", Reply.congestion()),
        ("PJSIP/1001", "028880000", None),  # no such number (404)
        ("PJSIP/1001", "+3250123456", None),  # no such extension in [callback]
        ("Local/1001@agents/n", "050123456", None),
        ("Local/1001@agents/n", "050123456", Reply.noanswer()),
        ("Local/1001@agents/n", "050123456", Reply.busy(0.5)),
        ("Local/1001@nowhere/n", "050123456", None),
    ):
        sim.set_reply("PJSIP/1001", reply or Reply.answer(1))
        link.send(
            "Originate",
            [
                ("Channel", channel),
                ("Context", "callback"),
                ("Exten", number),
                ("CallerID", f'"Terugbelverzoek" <{number}>'),
                ("Variable", "CTI_AGREEMENT_ID=7"),
                ("Timeout", "10000"),
                ("ActionID", f"cb-{number}"),
            ],
        )
        run(clock, 60)
    link.send("QueueSummary", ActionID="summary")
    monitor_of_failures.send("Ping")  # RequestNotAllowed to the logged-in link
    monitor_of_failures.send("Login", Username="cti", Secret="wrong")
    run(clock, 2)
    sim.shutdown()
    return tuple(link.all())


def test_the_busy_day_covers_the_interesting_event_types() -> None:
    emitted = {m["Event"] for m in simulated() if "Event" in m}
    for wanted in (
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "AttendedTransfer",
        "BlindTransfer",
        "BridgeMerge",
        "ContactStatus",
        "CoreShowChannel",
        "DialBegin",
        "DialEnd",
        "Hangup",
        "OriginateResponse",
        "PeerStatus",
        "QueueCallerAbandon",
        "QueueEntry",
        "QueueMemberPause",
        "QueueSummary",
        "RequestNotAllowed",
        "InvalidPassword",
        "Shutdown",
        "Status",
    ):
        assert wanted in emitted


def test_every_emitted_event_type_exists_in_the_recordings() -> None:
    shapes, _ = recorded()
    emitted = {m["Event"] for m in simulated() if "Event" in m}
    assert emitted - set(shapes) == set()


def _by_type() -> dict[str, list[Message]]:
    out: dict[str, list[Message]] = defaultdict(list)
    for msg in simulated():
        if "Event" in msg:
            out[msg["Event"]].append(msg)
    return out


@pytest.mark.parametrize("event", sorted(_by_type()))
def test_header_names_and_order_match_a_recorded_event(event: str) -> None:
    shapes, privileges = recorded()
    for msg in _by_type()[event]:
        assert tuple(msg) in shapes[event], (
            f"{event} headers {list(msg)} match none of the {len(shapes[event])} recorded "
            f"shapes, e.g. {sorted(shapes[event])[0]}"
        )
        assert msg.get("Privilege", "") in privileges[event]


def test_per_type_header_name_sets_are_the_recorded_ones() -> None:
    """The brief's check, stated as sets: no header the recordings lack, none missing."""
    shapes, _ = recorded()
    for event, messages in _by_type().items():
        recorded_names = set().union(*(set(shape) for shape in shapes[event]))
        emitted_names = set().union(*(set(msg) for msg in messages))
        assert emitted_names <= recorded_names, (event, emitted_names - recorded_names)
        smallest = min(shapes[event], key=len)
        assert set(smallest) <= emitted_names, (event, set(smallest) - emitted_names)
