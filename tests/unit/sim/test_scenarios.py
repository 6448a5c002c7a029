"""Each call flow, as the AMI stream shows it, parsed by our own parser.

The expectations are the facts of the pjsip recordings (``tests/fixtures/ami-traces/
pjsip/README.md``): which legs ring, the causes of their hang-ups, who gets the
``AgentConnect``, what ``HoldTime``/``RingTime``/``TalkTime`` say -- and Asterisk's
numbering (``Linkedid`` is the customer channel's ``Uniqueid``, ``epoch.N``).
"""

from __future__ import annotations

import re

import pytest
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.ami.parser import Message
from cti_bridge.sim import SCENARIOS, CallPlan, Reply, SimulatedPBX
from cti_bridge.sim.harness import Link, run

EPOCH = 1_795_737_000
SECRET = "scenarios"
OPS = [f"PJSIP/100{n}" for n in range(1, 7)]


@pytest.fixture
def clock() -> MemoryReactorClock:
    clock = MemoryReactorClock()
    clock.advance(EPOCH)
    return clock


@pytest.fixture
def sim(clock: MemoryReactorClock) -> SimulatedPBX:
    return SimulatedPBX(clock, seed=2, secret=SECRET)


@pytest.fixture
def link(sim: SimulatedPBX) -> Link:
    link = Link.open(sim)
    link.login("cti", SECRET)
    return link


def of(link: Link, event: str, **match: str) -> list[Message]:
    return [e for e in link.events(event) if all(e.get(k) == v for k, v in match.items())]


def device(channel: str) -> str:
    return channel.rsplit("-", 1)[0]


def hangup_causes(link: Link) -> dict[str, str]:
    return {e["Channel"]: e["Cause"] for e in link.events("Hangup")}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_runs_to_the_end_with_asterisk_numbering(
    name: str, sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    placed = sim.place_call(name)
    run(clock, 400)
    assert sim.pbx.channels == {}  # every channel hung up
    assert sim.pbx.bridges == {}
    created = link.events("Newchannel")
    customer = created[0]
    assert re.fullmatch(r"PJSIP/pstn-[0-9a-f]{8}", customer["Channel"])
    assert customer["ChannelStateDesc"] == "Ring"  # inbound trunk channels start in Ring
    assert customer["Uniqueid"] == customer["Linkedid"] == placed.linkedid
    assert re.fullmatch(rf"{EPOCH}\.\d+", placed.linkedid)
    assert {e["Linkedid"] for e in created} == {placed.linkedid}
    counters = [int(e["Uniqueid"].split(".")[1]) for e in created]
    assert counters == sorted(set(counters))
    assert {e["Channel"] for e in link.events("Hangup")} == {e["Channel"] for e in created}
    for event in link.events():
        assert "\r" not in "".join(event.values())


def test_queue_answered_by_the_chosen_operator(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call(
        "queue_answered",
        caller=("050123456", "Jan Peeters"),
        operator="PJSIP/1001",
        ring=2,
        talk=11,
        ended_by="caller",
    )
    run(clock, 60)
    assert [e["Interface"] for e in link.events("AgentCalled")] == OPS  # ringall
    assert [e["DialString"] for e in link.events("DialBegin")] == OPS
    (connect,) = link.events("AgentConnect")
    assert (connect["Interface"], connect["MemberName"]) == ("PJSIP/1001", "Anna")
    assert (connect["HoldTime"], connect["RingTime"]) == ("2", "2")
    ends = [(device(e["DestChannel"]), e["DialStatus"]) for e in link.events("DialEnd")]
    assert ends.count(("PJSIP/1001", "ANSWER")) == 1
    for other in OPS[1:]:
        assert ends.count((other, "CANCEL")) == 2  # cancelled attempts: DialEnd twice
    causes = {device(ch): cause for ch, cause in hangup_causes(link).items()}
    assert causes == {"PJSIP/pstn": "16", "PJSIP/1001": "16"} | dict.fromkeys(OPS[1:], "26")
    assert link.events("Hangup")[2]["Cause-txt"] == "Answered elsewhere"
    (complete,) = link.events("AgentComplete")
    assert (complete["Reason"], complete["TalkTime"]) == ("caller", "11")
    request = link.events("HangupRequest")[0]
    assert device(request["Channel"]) == "PJSIP/pstn"
    assert "Cause" not in request  # a queue caller's BYE: no cause (pjsip 01)
    join = link.events("QueueCallerJoin")[0]
    assert (join["Queue"], join["Position"], join["Count"]) == ("support", "1", "1")


def test_operator_hangs_up(sim: SimulatedPBX, link: Link, clock: MemoryReactorClock) -> None:
    sim.place_call("queue_answered", operator="PJSIP/1002", ring=3, talk=6, ended_by="operator")
    run(clock, 30)
    assert device(link.events("HangupRequest")[0]["Channel"]) == "PJSIP/1002"
    (complete,) = link.events("AgentComplete")
    assert (complete["Reason"], complete["HoldTime"], complete["TalkTime"]) == ("agent", "3", "6")
    status = of(link, "QueueMemberStatus", Queue="support", MemberName="Bart")[-1]
    assert (status["CallsTaken"], status["Status"], status["InCall"]) == ("1", "1", "0")


def test_abandoned_while_everybody_rings(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call("queue_abandoned", caller=("0470123456", "Luc Claes"), patience=12)
    run(clock, 60)
    (abandon,) = link.events("QueueCallerAbandon")
    assert (abandon["HoldTime"], abandon["Position"], abandon["OriginalPosition"]) == (
        "12",
        "1",
        "1",
    )
    # round 1 rang out after 8 s (RingNoAnswer 8000 ms), round 2 was cancelled
    assert {e["RingTime"] for e in link.events("AgentRingNoAnswer")} == {"8000"}
    assert len(link.events("AgentCalled")) == 2 * len(OPS)
    assert set(hangup_causes(link).values()) == {"0"}  # legs and the customer: Unknown
    assert [e["Variable"] for e in link.events("VarSet")].count("ABANDONED") == 1
    names = [e["Event"] for e in link.events()]
    assert names.index("QueueCallerAbandon") < names.index("QueueCallerLeave")


def test_queue_timeout_reports_abandon_then_timeout(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call("queue_timeout")
    run(clock, 90)
    (abandon,) = link.events("QueueCallerAbandon")
    assert abandon["HoldTime"] == "60"
    status = [e for e in link.events("VarSet") if e["Variable"] == "QUEUESTATUS"]
    assert [e["Value"] for e in status] == ["TIMEOUT"]
    customer = link.events("Newchannel")[0]["Channel"]
    assert hangup_causes(link)[customer] == "16"  # the dialplan's Hangup() after Queue()
    assert of(link, "Newexten", Channel=customer)[-1]["Application"] == "Hangup"


def test_ring_no_answer_then_the_next_operator(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call("ring_no_answer", queue="sales", talk=8)
    run(clock, 60)
    assert [e["Interface"] for e in link.events("AgentCalled")] == ["PJSIP/1001", "PJSIP/1002"]
    (rna,) = link.events("AgentRingNoAnswer")
    assert (rna["Interface"], rna["RingTime"]) == ("PJSIP/1001", "6000")  # milliseconds
    statuses = [e["DialStatus"] for e in link.events("DialEnd")]
    assert statuses == ["NOANSWER", "CANCEL", "ANSWER"]
    (connect,) = link.events("AgentConnect")
    # 6 s timeout + 1 s retry + 2 s ring, as in trace 03 (HoldTime 9, RingTime 2)
    assert (connect["Interface"], connect["HoldTime"], connect["RingTime"]) == (
        "PJSIP/1002",
        "9",
        "2",
    )
    assert link.events("AgentComplete")[0]["Reason"] == "agent"


def test_ring_no_answer_in_a_ringall_queue(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call("ring_no_answer", queue="support", answered_by="PJSIP/1003", talk=5)
    run(clock, 60)
    assert len(link.events("AgentRingNoAnswer")) == len(OPS)  # round 1: nobody
    assert link.events("AgentConnect")[0]["Interface"] == "PJSIP/1003"  # round 2


def test_busy_phone_counts_as_ring_no_answer(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call("busy_then_answered", busy="PJSIP/1001", answered_by="PJSIP/1002", talk=6)
    run(clock, 40)
    request = link.events("HangupRequest")[0]
    assert device(request["Channel"]) == "PJSIP/1001"
    assert (request["Cause"], request["TechCause"]) == ("17", "486")
    (rna,) = link.events("AgentRingNoAnswer")
    assert (rna["Interface"], rna["RingTime"]) == ("PJSIP/1001", "0")
    first_end = link.events("DialEnd")[0]
    assert (device(first_end["DestChannel"]), first_end["DialStatus"]) == ("PJSIP/1001", "NOANSWER")
    busy_leg = request["Channel"]
    hangup = of(link, "Hangup", Channel=busy_leg)[0]
    assert (hangup["Cause"], hangup["Cause-txt"], hangup["ChannelStateDesc"]) == (
        "17",
        "User busy",
        "Down",
    )
    assert link.events("AgentConnect")[0]["Interface"] == "PJSIP/1002"


def test_direct_call_has_no_queue_events(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call(
        "direct_answered",
        caller=("003293456789", "Zoë Declercq"),
        operator="PJSIP/1002",
        ring=3,
        talk=12,
    )
    run(clock, 40)
    names = {e["Event"] for e in link.events()}
    assert not {n for n in names if n.startswith(("Queue", "Agent"))} - {"QueueMemberStatus"}
    (begin,) = link.events("DialBegin")
    assert begin["DialString"] == "1002"  # Dial() drops the technology
    assert begin["ChannelStateDesc"] == "Ring"  # the caller stays in Ring while it rings
    assert begin["CallerIDName"] == "Zoë Declercq"
    (end,) = link.events("DialEnd")
    assert end["DialStatus"] == "ANSWER"
    leaves = link.events("BridgeLeave")
    assert {e["BridgeTechnology"] for e in leaves} == {"native_rtp"}  # quirk 10
    assert link.events("BridgeEnter")[0]["BridgeTechnology"] == "simple_bridge"
    answered = [e for e in link.events("VarSet") if e["Variable"] == "ANSWEREDTIME"]
    assert answered[-1]["Value"] == "12"
    # the member's QueueMemberStatus still follows its device (pjsip 04)
    assert "6" in [e["Status"] for e in of(link, "QueueMemberStatus", MemberName="Bart")]


def test_direct_call_rings_out(sim: SimulatedPBX, link: Link, clock: MemoryReactorClock) -> None:
    sim.place_call("direct_missed", operator="PJSIP/1002")
    run(clock, 19.9)
    assert link.events("DialEnd") == []
    run(clock, 1)
    (end,) = link.events("DialEnd")  # only one DialEnd (pjsip 04b)
    assert end["DialStatus"] == "NOANSWER"
    causes = {device(ch): c for ch, c in hangup_causes(link).items()}
    assert causes == {"PJSIP/1002": "0", "PJSIP/pstn": "16"}


def test_direct_call_to_an_operator_in_a_call_is_busy(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call("queue_answered", operator="PJSIP/1001", ring=1, talk=100)
    run(clock, 5)
    second = sim.place_call("direct_answered", operator="PJSIP/1001")
    run(clock, 5)
    ends = [e for e in link.events("DialEnd") if e["Channel"] == second.channel.name]
    assert [e["DialStatus"] for e in ends] == ["BUSY"]
    assert hangup_causes(link)[second.channel.name] == "17"


def test_caller_gives_up_on_a_ringing_direct_call(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    placed = sim.place_call("direct_missed", operator="PJSIP/1003", patience=7)
    run(clock, 30)
    (end,) = link.events("DialEnd")
    assert end["DialStatus"] == "CANCEL"
    assert of(link, "HangupRequest", Channel=placed.channel.name)[0]["Cause"] == "16"


def test_blind_transfer_to_the_second_line(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    placed = sim.place_call("blind_transfer", operator="PJSIP/1001", after=3, talk=14)
    run(clock, 60)
    (transfer,) = link.events("BlindTransfer")
    assert device(transfer["TransfererChannel"]) == "PJSIP/1001"
    assert transfer["TransfereeChannel"] == placed.channel.name
    assert (transfer["Extension"], transfer["IsExternal"]) == ("2001", "Yes")
    (complete,) = link.events("AgentComplete")
    assert (complete["Reason"], complete["TalkTime"]) == ("transfer", "3")
    second = link.events("DialBegin")[-1]
    assert device(second["DestChannel"]) == "PJSIP/2001"
    assert second["Channel"] == placed.channel.name
    assert second["DestLinkedid"] == placed.linkedid
    events = link.events()
    operator_hangup = next(
        i
        for i, e in enumerate(events)
        if e is of(link, "Hangup", Channel=transfer["TransfererChannel"])[0]
    )
    assert events.index(complete) < operator_hangup  # AgentComplete, then the leg goes


def test_attended_transfer_joins_the_customer_and_the_target(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    placed = sim.place_call("attended_transfer", operator="PJSIP/1001", after=3, talk=20)
    run(clock, 90)
    (transfer,) = link.events("AttendedTransfer")
    assert device(transfer["OrigTransfererChannel"]) == "PJSIP/1001"
    assert transfer["TransfereeChannel"] == placed.channel.name
    assert (transfer["DestType"], transfer["IsExternal"]) == ("Bridge", "No")
    assert transfer["DestBridgeUniqueid"] == transfer["OrigBridgeUniqueid"]
    locals_ = [e for e in link.events("Newchannel") if e["Channel"].startswith("Local/")]
    assert [e["Channel"][-2:] for e in locals_] == [";1", ";2"]
    assert {e["Linkedid"] for e in locals_} == {placed.linkedid}
    assert len(link.events("BridgeMerge")) == 1
    assert link.events("AgentComplete")[0]["Reason"] == "transfer"
    target = [e for e in link.events("DialBegin") if device(e["DestChannel"]) == "PJSIP/2001"]
    assert target[0]["Channel"].endswith(";2")


def test_withheld_caller(sim: SimulatedPBX, link: Link, clock: MemoryReactorClock) -> None:
    sim.place_call("withheld", operator="PJSIP/1004", talk=3)
    run(clock, 30)
    customer = link.events("Newchannel")[0]
    assert (customer["CallerIDNum"], customer["CallerIDName"]) == ("anonymous", "Anonymous")


def test_caller_text_is_escaped_like_asterisk(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    hostile = 'Jan "de Baas" O\'Brien\r\nEvent: Hangup'
    sim.run(CallPlan(("0475998877", hostile), "3200", patience=3))
    run(clock, 2)
    link.send("QueueStatus", ActionID="q")
    run(clock, 5)
    assert link.events("Newchannel")[0]["CallerIDName"] == (
        'Jan \\"de Baas\\" O\\\'Brien\\r\\nEvent: Hangup'
    )
    (entry,) = link.events("QueueEntry")  # raw quotes, but never a raw line break
    assert entry["CallerIDName"] == 'Jan "de Baas" O\'Brien\\r\\nEvent: Hangup'
    assert all(
        e["Event"] != "Hangup" or e["Channel"] in {c["Channel"] for c in link.events("Newchannel")}
        for e in link.events()
    )


# -- operators behave consistently ----------------------------------------------------


def test_an_operator_in_a_call_is_not_rung(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call("direct_answered", operator="PJSIP/1001", ring=1, talk=300)
    run(clock, 3)
    sim.place_call("queue_answered", talk=5)
    run(clock, 30)
    called = [e["Interface"] for e in link.events("AgentCalled")]
    assert called and "PJSIP/1001" not in called


def test_a_paused_operator_is_not_rung_until_unpaused(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    for op in OPS:
        sim.pause(op, "Coaching")
    sim.place_call("queue_answered", operator="PJSIP/1002", ring=2, talk=5)
    run(clock, 20)
    assert link.events("AgentCalled") == []  # nobody free: the caller waits
    assert sim.unpause("PJSIP/1002")
    run(clock, 1.5)  # waiting callers look again every second
    assert [e["Interface"] for e in link.events("AgentCalled")] == ["PJSIP/1002"]
    run(clock, 10)
    assert link.events("AgentConnect")[0]["HoldTime"] == "22"


def test_a_member_who_comes_free_takes_the_longest_waiting_caller(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    for op in OPS[1:]:
        sim.pause(op, "Lunchpauze")
    sim.place_call("queue_answered", operator="PJSIP/1001", ring=1, talk=10)
    run(clock, 2)
    first = sim.place_call("queue_answered", caller=("011223344", "Kris Willems"), talk=5)
    run(clock, 1)
    second = sim.place_call("queue_answered", caller=("056123456", "Thomas Wouters"), talk=5)
    run(clock, 60)
    connects = link.events("AgentConnect")
    assert [c["Channel"] for c in connects[1:]] == [first.channel.name, second.channel.name]
    assert {c["Interface"] for c in connects} == {"PJSIP/1001"}


def test_an_unreachable_phone_is_skipped_without_an_event(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.set_reachable("PJSIP/1002", False)
    peer = link.events("PeerStatus")[0]
    assert (peer["Peer"], peer["PeerStatus"]) == ("PJSIP/1002", "Unreachable")
    assert of(link, "DeviceStateChange", Device="PJSIP/1002")[-1]["State"] == "UNAVAILABLE"
    assert of(link, "QueueMemberStatus", MemberName="Bart")[-1]["Status"] == "5"
    sim.place_call("queue_answered", operator="PJSIP/1001", ring=2, talk=5)
    run(clock, 30)
    assert "PJSIP/1002" not in [e["Interface"] for e in link.events("AgentCalled")]
    sim.set_reachable("PJSIP/1002", True)
    assert link.events("ContactStatus")[-1]["ContactStatus"] == "Reachable"


def test_a_dead_phone_still_gets_called_and_never_rings(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.pbx.endpoints["PJSIP/1002"].alive = False  # qualify has not noticed yet (07b)
    sim.place_call("queue_answered", operator="PJSIP/1001", ring=5, talk=5)
    run(clock, 30)
    bart = of(link, "AgentCalled", Interface="PJSIP/1002")[0]["DestChannel"]
    assert of(link, "Newstate", Channel=bart) == []  # never left Down
    hangup = of(link, "Hangup", Channel=bart)[0]
    assert (hangup["Cause"], hangup["ChannelStateDesc"]) == ("26", "Down")


def test_phone_replies_per_attempt(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    plan = CallPlan(
        ("050123456", "Jan Peeters"),
        "3300",
        talk=4,
        replies={"PJSIP/1001": (Reply.noanswer(), Reply.answer(1)), "PJSIP/1002": Reply.busy()},
    )
    sim.run(plan)
    run(clock, 60)
    # linear: 1001 rings out, 1002 is busy, 1001 again and answers
    called = [e["Interface"] for e in link.events("AgentCalled")]
    assert called == ["PJSIP/1001", "PJSIP/1002", "PJSIP/1001"]
    assert link.events("AgentConnect")[0]["Interface"] == "PJSIP/1001"


# -- time ------------------------------------------------------------------------------


def test_speed_factor_compresses_time_but_not_asterisk_durations(
    clock: MemoryReactorClock,
) -> None:
    sim = SimulatedPBX(clock, seed=1, secret=SECRET, speed=10.0)
    link = Link.open(sim)
    link.login("cti", SECRET)
    sim.place_call("queue_timeout")
    run(clock, 5.9, step=0.05)
    assert link.events("QueueCallerAbandon") == []
    run(clock, 0.3, step=0.05)
    (abandon,) = link.events("QueueCallerAbandon")
    assert abandon["HoldTime"] == "60"


# -- phones driven by hand (browser tests) ---------------------------------------------


def test_answer_a_ringing_phone_by_hand(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    placed = sim.place_call("direct_missed", operator="PJSIP/1003")
    run(clock, 5)
    assert of(link, "DialState", Channel=placed.channel.name)[0]["DialStatus"] == "RINGING"
    assert sim.answer("PJSIP/1003")
    assert not sim.answer("PJSIP/1003")  # nothing rings there any more
    assert link.events("DialEnd")[0]["DialStatus"] == "ANSWER"
    assert sim.hang_up("PJSIP/1003")
    assert device(link.events("SoftHangupRequest")[0]["Channel"]) == "PJSIP/1003"
    assert sim.pbx.channels == {}


def test_decline_a_queue_call_by_hand(
    sim: SimulatedPBX, link: Link, clock: MemoryReactorClock
) -> None:
    sim.place_call("queue_answered", operator="PJSIP/1002", ring=6, talk=5)
    run(clock, 2)
    assert sim.hang_up("PJSIP/1004")  # Dina declines while everybody rings
    (rna,) = link.events("AgentRingNoAnswer")
    assert (rna["Interface"], rna["RingTime"]) == ("PJSIP/1004", "0")
    declined = of(link, "Hangup", Cause="21")
    assert [device(e["Channel"]) for e in declined] == ["PJSIP/1004"]
    run(clock, 20)
    assert link.events("AgentConnect")[0]["Interface"] == "PJSIP/1002"
