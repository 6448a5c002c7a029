"""Generated traffic: realistic, consistent, reproducible -- and the network side.

A simulated hour runs on a ``MemoryReactorClock`` in a second or two of real time.
The checks read only the AMI stream, the way the middleware would.
"""

from __future__ import annotations

from collections import Counter

import pytest
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.sim import QueueConfig, SimulatedPBX
from cti_bridge.sim.harness import Link, run
from cti_bridge.sim.traffic import DEFAULT_MIX

EPOCH = 1_795_737_000
SECRET = "traffic"


def afternoon(seed: int, hours: float = 1.0, cpm: float = 5.0) -> tuple[SimulatedPBX, Link]:
    clock = MemoryReactorClock()
    clock.advance(EPOCH)
    sim = SimulatedPBX(clock, seed=seed, secret=SECRET)
    link = Link.open(sim)
    link.login("cti", SECRET)
    sim.start_traffic(calls_per_minute=cpm)
    run(clock, hours * 3600, step=1.0)
    sim.stop_traffic()
    run(clock, 900, step=1.0)  # let the last calls finish
    return sim, link


@pytest.fixture(scope="module")
def day() -> tuple[SimulatedPBX, Link]:
    return afternoon(seed=2026)


def test_calls_arrive_at_the_configured_rate(day: tuple[SimulatedPBX, Link]) -> None:
    sim, link = day
    assert sim.traffic is not None
    placed = sim.traffic.placed
    assert 230 <= placed <= 370  # 5 calls a minute for an hour: 300 expected
    customers = [e for e in link.events("Newchannel") if e["Channel"].startswith("PJSIP/pstn-")]
    inbound = [e for e in customers if e["ChannelStateDesc"] == "Ring"]
    assert len(inbound) == placed


def test_every_flow_of_the_mix_happens(day: tuple[SimulatedPBX, Link]) -> None:
    _, link = day
    names = Counter(e["Event"] for e in link.events())
    for event in (
        "AgentConnect",
        "AgentRingNoAnswer",
        "QueueCallerAbandon",
        "BlindTransfer",
        "AttendedTransfer",
        "QueueMemberPause",
    ):
        assert names[event] > 0, event
    statuses = Counter(e["DialStatus"] for e in link.events("DialEnd"))
    assert statuses["BUSY"] + statuses["NOANSWER"] > 0
    withheld = [e for e in link.events("Newchannel") if e["CallerIDNum"] == "anonymous"]
    assert withheld
    timeouts = [e for e in link.events("VarSet") if e["Variable"] == "QUEUESTATUS"]
    assert all(e["Value"] == "TIMEOUT" for e in timeouts)
    assert set(DEFAULT_MIX) >= {"queue_answered", "blind_transfer"}


def test_callers_use_mixed_belgian_number_formats(day: tuple[SimulatedPBX, Link]) -> None:
    _, link = day
    numbers = {
        e["CallerIDNum"]
        for e in link.events("Newchannel")
        if e["Channel"].startswith("PJSIP/pstn-") and e["ChannelStateDesc"] == "Ring"
    }
    assert any(n.startswith("+32") for n in numbers)
    assert any(n.startswith("0032") for n in numbers)
    assert any(n.startswith("0") and not n.startswith("00") for n in numbers)


def test_everything_ends(day: tuple[SimulatedPBX, Link]) -> None:
    sim, link = day
    assert sim.pbx.channels == {}
    assert sim.pbx.bridges == {}
    made = {e["Channel"] for e in link.events("Newchannel")}
    ended = {e["Channel"] for e in link.events("Hangup")}
    assert made == ended
    for queue in sim.queues.queues.values():
        assert queue.waiting == []
        assert not any(m.in_call for m in queue.members)


def test_operators_are_never_rung_while_busy_or_paused(day: tuple[SimulatedPBX, Link]) -> None:
    """Replays the stream: at every AgentCalled the member's phone had no other call
    (its only channel is the new leg) and the member was not paused in that queue."""
    _, link = day
    open_legs: Counter[str] = Counter()
    paused: set[tuple[str, str]] = set()
    checked = 0
    for event in link.events():
        kind = event["Event"]
        if kind == "Newchannel":
            open_legs[event["Channel"].rsplit("-", 1)[0]] += 1
        elif kind == "Hangup":
            open_legs[event["Channel"].rsplit("-", 1)[0]] -= 1
        elif kind == "QueueMemberPause":
            key = (event["Queue"], event["Interface"])
            if event["Paused"] == "1":
                paused.add(key)
            else:
                paused.discard(key)
        elif kind == "AgentCalled":
            checked += 1
            assert open_legs[event["Interface"]] == 1, event["DestChannel"]
            assert (event["Queue"], event["Interface"]) not in paused
    assert checked > 200


def test_answered_queue_calls_report_consistent_durations(day: tuple[SimulatedPBX, Link]) -> None:
    _, link = day
    connects = {e["Uniqueid"]: e for e in link.events("AgentConnect")}
    completes = link.events("AgentComplete")
    assert len(completes) == len(connects)
    for complete in completes:
        connect = connects[complete["Uniqueid"]]
        assert complete["HoldTime"] == connect["HoldTime"]
        assert complete["Reason"] in ("caller", "agent", "transfer")
        assert int(complete["TalkTime"]) >= 0


def test_same_seed_same_day_other_seed_other_day() -> None:
    _, one = afternoon(seed=7, hours=0.25)
    _, two = afternoon(seed=7, hours=0.25)
    _, three = afternoon(seed=8, hours=0.25)

    def calls(link: Link) -> list[tuple[str, str, str]]:
        return [(e["Channel"], e["Uniqueid"], e["CallerIDNum"]) for e in link.events("Newchannel")]

    assert len(one.received) > 1000
    assert one.transport.value() == two.transport.value()  # byte for byte
    assert calls(one) != calls(three)


def test_traffic_configuration_is_checked() -> None:
    sim = SimulatedPBX(MemoryReactorClock(), seed=1, secret=SECRET)
    with pytest.raises(ValueError, match="calls_per_minute"):
        sim.start_traffic(calls_per_minute=0)
    with pytest.raises(ValueError, match="positive weight"):
        sim.start_traffic(calls_per_minute=1, mix={"queue_answered": 0})
    with pytest.raises(ValueError, match="unknown scenario"):
        sim.place_call("teleport")


def test_a_custom_mix_and_custom_people() -> None:
    clock = MemoryReactorClock()
    sim = SimulatedPBX(
        clock,
        seed=4,
        secret=SECRET,
        operators=[("PJSIP/2101", "Ines"), ("PJSIP/2102", "Jonas")],
        customers=[("+3292001122", "Brouwerij De Klok")],
    )
    link = Link.open(sim)
    link.login("cti", SECRET)
    sim.start_traffic(calls_per_minute=2, mix={"direct_answered": 1})
    run(clock, 1800, step=1.0)
    assert link.events("QueueCallerJoin") == []
    dialled = {e["DialString"] for e in link.events("DialBegin")}
    assert dialled <= {"2101", "2102"}
    assert {e["CallerIDName"] for e in link.events("DialBegin")} == {"Brouwerij De Klok"}


def test_listen_on_loopback_and_stop() -> None:
    clock = MemoryReactorClock()
    sim = SimulatedPBX(clock, seed=1, secret=SECRET)
    port = sim.listen(port=0)
    (server,) = clock.tcpServers
    assert server[1] is sim.factory
    assert server[3] == "127.0.0.1"
    assert isinstance(port, int)
    link = Link.open(sim)
    link.login("cti", SECRET)
    sim.start_traffic(calls_per_minute=30)
    run(clock, 60)
    done = sim.stop()
    assert done.called
    assert link.closed
    assert not clock.getDelayedCalls() or all(not call.active() for call in clock.getDelayedCalls())


def test_custom_queues_with_the_default_mix() -> None:
    clock = MemoryReactorClock()
    sim = SimulatedPBX(
        clock,
        seed=6,
        secret=SECRET,
        operators=[("PJSIP/301", "Ines"), ("PJSIP/302", "Jonas"), ("PJSIP/303", "Karel")],
        queues=[QueueConfig("helpdesk", "0800", ["PJSIP/301", "PJSIP/302", "PJSIP/303"])],
        second_line=("PJSIP/399", "Backoffice"),
    )
    link = Link.open(sim)
    link.login("cti", SECRET)
    sim.start_traffic(calls_per_minute=3)
    run(clock, 3600, step=1.0)
    assert {e["Queue"] for e in link.events("QueueCallerJoin")} == {"helpdesk"}
    assert {e["Exten"] for e in link.events("QueueCallerJoin")} == {"0800"}
    targets = {e["Extension"] for e in link.events("BlindTransfer")}
    assert targets == {"399"}
