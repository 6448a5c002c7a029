"""Operator-first callbacks on the simulated PBX have the shape of the real ones.

The dialer sends ``Originate`` with ``Channel`` = the operator's device, ``Context:
callback``, ``Exten`` = the customer's number. For each outcome the call's events are
reduced to a *shape* -- the channel, dial, originate and hang-up events in order, with
each channel replaced by its role (``operator``, ``customer``) and only the fields a
CTI layer decides on (``DialStatus``, ``Reason``, ``Cause``) -- and compared with the
recorded trace of the same outcome (pjsip 05, 06, 06b; Local 07-channelid and
08-operator-noanswer). Outcomes that were never recorded (the customer never answers,
a congested network, a number that does not exist, a phone on do-not-disturb or off
the network, no such extension) are pinned to the sequence Asterisk 22's source gives
(``main/dial.c``, ``apps/app_dial.c``, ``main/pbx.c``), each written out below.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.ami.parser import Message, parse_stream
from cti_bridge.sim import CALLBACK_NUMBERS, Callee, Reply, SimulatedPBX
from cti_bridge.sim.harness import Link, run
from tests.support.paths import TRACES

SECRET = "callbacks"
CALL_EVENTS = {
    "Newchannel",
    "DialBegin",
    "DialState",
    "DialEnd",
    "OriginateResponse",
    "HangupRequest",
    "SoftHangupRequest",
    "Hangup",
}
Shape = list[tuple[str, ...]]


def role(channel: str | None) -> str:
    """``operator`` (its phone; ``;1``/``;2`` for the Local halves), ``customer``, ``-``."""
    if channel is None:
        return "-"
    if channel.startswith("PJSIP/pstn-") or "@pstn-out-" in channel:
        return "customer"
    local = re.match(r"Local/100\d@agents-[0-9a-f]+(;[12])$", channel)
    if local:
        return "operator" + local.group(1)
    if re.match(r"PJSIP/100\d-", channel):
        return "operator"
    return channel


def shape(messages: Sequence[Message], *, originate: bool = True) -> Shape:
    """The call's events in order, by role; ``originate=False`` leaves the
    OriginateResponse out (its place is not deterministic, quirk 12)."""
    found: Shape = []
    for msg in messages:
        event = msg.get("Event")
        if event not in CALL_EVENTS:
            continue
        if event == "OriginateResponse":
            if originate:
                found.append((event, msg["Response"], msg["Reason"]))
        elif event.startswith("Dial"):
            found.append(
                (
                    event,
                    role(msg.get("Channel")),
                    role(msg["DestChannel"]),
                    msg.get("DialStatus", ""),
                )
            )
        elif event == "Newchannel":
            found.append((event, role(msg["Channel"])))
        else:
            found.append((event, role(msg["Channel"]), msg.get("Cause", "")))
    return found


def recorded(name: str) -> list[Message]:
    return list(parse_stream((TRACES / name).read_bytes()))


def callback(
    *,
    operator: Reply | None = None,
    customer: Callee | None = None,
    number: str = "050123456",
    channel: str = "PJSIP/1001",
    timeout_ms: int = 30000,
    reachable: bool = True,
    extra: Sequence[tuple[str, str]] = (),
) -> tuple[list[Message], SimulatedPBX]:
    """One Originate as the dialer sends it, run to its end on a fresh simulator."""
    clock = MemoryReactorClock()
    clock.advance(1_795_737_000)
    sim = SimulatedPBX(clock, seed=3, secret=SECRET)
    if operator is not None:
        sim.set_reply("PJSIP/1001", operator)
    if customer is not None:
        sim.set_callee(number, customer)
    if not reachable:
        sim.set_reachable("PJSIP/1001", False)
    link = Link.open(sim)
    link.login("cti", SECRET)
    link.send(
        "Originate",
        [
            ("ActionID", "callback-42"),
            ("Channel", channel),
            ("Context", "callback"),
            ("Exten", number),
            ("Priority", "1"),
            ("Timeout", str(timeout_ms)),
            ("CallerID", f'"Terugbelverzoek 42" <{number}>'),
            ("Variable", "CTI_AGREEMENT_ID=42"),
            ("Variable", "CTI_ATTEMPT=1"),
            *extra,
            ("Async", "true"),
        ],
    )
    run(clock, timeout_ms / 1000 + 90)
    assert sim.pbx.channels == {}, "every channel of the callback ended"
    return link.all(), sim


def ids(messages: Sequence[Message]) -> dict[str, str]:
    """Each role's Uniqueid and Linkedid from its Newchannel."""
    found: dict[str, str] = {}
    for msg in messages:
        if msg.get("Event") == "Newchannel":
            found[role(msg["Channel"])] = msg["Uniqueid"]
            found[role(msg["Channel"]) + ".linkedid"] = msg["Linkedid"]
    return found


def response(messages: Sequence[Message]) -> Message:
    (found,) = [m for m in messages if m.get("Event") == "OriginateResponse"]
    return found


# -- recorded outcomes ------------------------------------------------------------------


def test_both_answer_is_pjsip_05() -> None:
    """Operator answers after 2 s, the customer after 3 s and hangs up after 10 s."""
    sim, _ = callback(operator=Reply.answer(2), customer=Callee(Reply.answer(3), talk=10))
    real = recorded("pjsip/05-callback-originate-answered.ami")
    assert shape(sim) == shape(real)
    got = ids(sim)
    assert got["customer.linkedid"] == got["operator"] == got["operator.linkedid"]
    assert response(sim)["Uniqueid"] == got["operator"]
    assert response(sim)["Channel"].startswith("PJSIP/1001-")
    assert response(sim)["ActionID"] == "callback-42"


def test_customer_busy_is_pjsip_06() -> None:
    sim, _ = callback(operator=Reply.answer(2), customer=Callee(Reply.busy(1)))
    real = recorded("pjsip/06-callback-originate-customer-busy.ami")
    assert shape(sim, originate=False) == shape(real, originate=False)
    assert (response(sim)["Response"], response(sim)["Reason"]) == ("Success", "4")
    assert [e for e in shape(sim) if e[0] == "DialEnd"] == [
        ("DialEnd", "-", "operator", "ANSWER"),
        ("DialEnd", "operator", "customer", "BUSY"),
    ]


def test_operator_does_not_answer_is_pjsip_06b() -> None:
    sim, _ = callback(operator=Reply.noanswer(), timeout_ms=15000)
    real = recorded("pjsip/06b-callback-originate-operator-no-answer.ami")
    assert shape(sim) == shape(real)
    assert (response(sim)["Channel"], response(sim)["Uniqueid"]) == ("PJSIP/1001", "<unknown>")


def test_channel_id_names_both_legs_as_in_07_channelid() -> None:
    sim, _ = callback(
        operator=Reply.answer(1),
        customer=Callee(Reply.answer(2), talk=5),
        extra=[("ChannelId", "cti-callback-48"), ("OtherChannelId", "cti-callback-48-2")],
    )
    got = ids(sim)
    assert got["operator"] == got["operator.linkedid"] == "cti-callback-48"
    assert got["customer.linkedid"] == "cti-callback-48"
    assert response(sim)["Uniqueid"] == "cti-callback-48"


def test_channel_id_is_the_uniqueid_of_a_failed_originate() -> None:
    """08-failed-busy-channelid: a failure carries the ChannelId, not ``<unknown>``."""
    sim, _ = callback(operator=Reply.noanswer(), extra=[("ChannelId", "cti-callback-49")])
    assert (response(sim)["Reason"], response(sim)["Uniqueid"]) == ("3", "cti-callback-49")


def test_variables_and_caller_id_are_set_on_the_operator_channel() -> None:
    sim, _ = callback(operator=Reply.answer(1), customer=Callee(Reply.busy(1)))
    operator = next(m["Channel"] for m in sim if m.get("Event") == "Newchannel")
    varset = {
        m["Variable"]: m["Value"]
        for m in sim
        if m.get("Event") == "VarSet" and m["Channel"] == operator
    }
    assert (varset["CTI_AGREEMENT_ID"], varset["CTI_ATTEMPT"]) == ("42", "1")
    first_callerid = next(m for m in sim if m.get("Event") == "NewCallerid")
    assert (first_callerid["Channel"], first_callerid["CallerIDName"]) == (
        operator,
        "Terugbelverzoek 42",
    )


# -- outcomes never recorded: the sequence Asterisk 22's code gives ----------------------

OPERATOR_ANSWERS = [
    ("Newchannel", "operator"),
    ("DialBegin", "-", "operator", ""),
    ("DialState", "-", "operator", "RINGING"),
    ("OriginateResponse", "Success", "4"),
    ("DialEnd", "-", "operator", "ANSWER"),
]


@pytest.mark.parametrize(
    ("number", "customer_part", "operator_cause"),
    [
        pytest.param(
            "025123456",  # rings until Dial(...,30) gives up: the cancelled leg has cause 0
            [
                ("DialState", "operator", "customer", "RINGING"),
                ("DialEnd", "operator", "customer", "NOANSWER"),
                ("SoftHangupRequest", "operator", "16"),
                ("Hangup", "customer", "0"),
                ("Hangup", "operator", "16"),
            ],
            "16",
            id="no-answer",
        ),
        pytest.param(
            "093334455",  # 503: cause 34 spreads to the operator, as 486 does in pjsip 06
            [
                ("HangupRequest", "customer", "34"),
                ("DialEnd", "operator", "customer", "CONGESTION"),
                ("SoftHangupRequest", "operator", "16"),
                ("Hangup", "operator", "34"),
                ("Hangup", "customer", "34"),
            ],
            "34",
            id="congestion",
        ),
        pytest.param(
            "028880000",  # 404: ast_hangup_cause_to_dial_status(1) is NOANSWER
            [
                ("HangupRequest", "customer", "1"),
                ("DialEnd", "operator", "customer", "NOANSWER"),
                ("SoftHangupRequest", "operator", "16"),
                ("Hangup", "operator", "1"),
                ("Hangup", "customer", "1"),
            ],
            "1",
            id="no-such-number",
        ),
    ],
)
def test_customer_outcomes_of_the_fixed_numbers(
    number: str, customer_part: Shape, operator_cause: str
) -> None:
    sim, _ = callback(operator=Reply.answer(1), number=number)
    assert shape(sim) == [
        *OPERATOR_ANSWERS,
        ("Newchannel", "customer"),
        ("DialBegin", "operator", "customer", ""),
        *customer_part,
    ]
    (hangup,) = [m for m in sim if m.get("Event") == "Hangup" and role(m["Channel"]) == "operator"]
    assert hangup["Cause"] == operator_cause


def test_a_number_that_does_not_exist_is_told_apart_by_cause_and_dialstatus() -> None:
    """The DialEnd says NOANSWER like a customer who let it ring out; the customer
    leg's cause (1) and the operator channel's ``DIALSTATUS`` say otherwise."""
    sim, _ = callback(operator=Reply.answer(1), number="028880000")
    dialstatus = [
        m["Value"] for m in sim if m.get("Event") == "VarSet" and m["Variable"] == "DIALSTATUS"
    ]
    assert dialstatus[-1] == "CHANUNAVAIL"
    customer = next(
        m for m in sim if m.get("Event") == "Hangup" and role(m["Channel"]) == "customer"
    )
    assert (customer["Cause"], customer["Cause-txt"]) == ("1", "Unallocated (unassigned) number")
    assert not [m for m in sim if m.get("Event") == "DialState" and "Channel" in m]


def test_a_number_the_callback_context_does_not_match_never_dials_the_customer() -> None:
    """``[callback] _0X.`` does not match ``+32...``: the PBX finds no extension,
    runs nothing and hangs the operator up (APPUNLOAD 16, no cause)."""
    sim, _ = callback(operator=Reply.answer(1), number="+3250123456")
    assert shape(sim) == [
        *OPERATOR_ANSWERS,
        ("SoftHangupRequest", "operator", "16"),
        ("Hangup", "operator", "0"),
    ]


@pytest.mark.parametrize(
    ("reply", "status", "cause"),
    [
        pytest.param(Reply.busy(0.5), "BUSY", "17", id="do-not-disturb-486"),
        pytest.param(Reply.congestion(0.5), "CONGESTION", "34", id="phone-503"),
    ],
)
def test_a_phone_that_turns_the_callback_down_gives_reason_0(
    reply: Reply, status: str, cause: str
) -> None:
    """A SIP phone's 486/503 only hangs the leg up (no control frame): main/dial.c
    leaves the cause unset, pbx_dial_reason gives 0. Never the customer."""
    sim, _ = callback(operator=reply)
    assert shape(sim) == [
        ("Newchannel", "operator"),
        ("DialBegin", "-", "operator", ""),
        ("HangupRequest", "operator", cause),
        ("DialEnd", "-", "operator", status),
        ("OriginateResponse", "Failure", "0"),
        ("Hangup", "operator", cause),
    ]
    assert response(sim)["Channel"] == "PJSIP/1001"


def test_an_operator_phone_off_the_network_gives_reason_0_and_no_channel() -> None:
    """Qualify said Unreachable: chan_pjsip has no contact and creates no channel."""
    sim, simulator = callback(reachable=False)
    assert shape(sim) == [("OriginateResponse", "Failure", "0")]
    assert simulator.pbx.calls_processed == 0


def test_operator_hanging_up_on_the_ringing_customer_is_a_cancel() -> None:
    clock = MemoryReactorClock()
    sim = SimulatedPBX(clock, seed=3, secret=SECRET)
    sim.set_reply("PJSIP/1001", Reply.answer(1))
    link = Link.open(sim)
    link.login("cti", SECRET)
    link.send("Originate", Channel="PJSIP/1001", Context="callback", Exten="025123456")
    run(clock, 5)
    assert sim.hang_up("PJSIP/1001")
    run(clock, 1)
    ends = [e for e in shape(link.all()) if e[0] == "DialEnd"]
    assert ends[-1] == ("DialEnd", "operator", "customer", "CANCEL")
    assert sim.pbx.channels == {}


# -- Local/<ext>@agents/n: the recorded Local half events, then the phone ---------------


def test_local_device_answers_like_07_channelid() -> None:
    sim, _ = callback(
        channel="Local/1001@agents/n",
        operator=Reply.answer(2),
        customer=Callee(Reply.answer(3), talk=10),
        extra=[("ChannelId", "cti-callback-48"), ("OtherChannelId", "cti-callback-48-2")],
    )
    real = recorded("07-callback-originate-answered-channelid.ami")
    local_part = [e for e in shape(sim) if e[1:2] in (("operator;1",), ("operator;2",))]
    assert local_part[:2] == [e for e in shape(real) if e[0] == "Newchannel"][:2]
    begins = [m for m in sim if m.get("Event") == "DialBegin"]
    assert "Channel" not in begins[0] and begins[0]["DialString"] == "1001@agents/n"
    assert begins[1]["Channel"].endswith(";2") and begins[1]["DialString"] == "1001"
    assert begins[2]["Channel"].endswith(";1") and begins[2]["DialString"] == "050123456@pstn"
    got = ids(sim)
    assert (got["operator;1"], got["operator;2"]) == ("cti-callback-48", "cti-callback-48-2")
    assert got["customer.linkedid"] == got["operator.linkedid"] == "cti-callback-48"
    assert response(sim)["Channel"].endswith(";1") and response(sim)["Reason"] == "4"
    assert [m.get("Event") for m in sim].count("LocalBridge") == 1


def test_local_device_not_answering_is_08_operator_noanswer() -> None:
    sim, _ = callback(channel="Local/1001@agents/n", operator=Reply.noanswer(), timeout_ms=10000)
    real = recorded("08-callback-originate-failed-operator-noanswer.ami")
    halves = [e for e in shape(sim) if e[1:2] != ("operator",) and "operator" not in e[2:3]]
    assert halves == shape(real)
    assert (response(sim)["Channel"], response(sim)["Uniqueid"]) == (
        "Local/1001@agents/n",
        "<unknown>",
    )


def test_local_device_in_an_unknown_context_is_08_invalid_b() -> None:
    sim, _ = callback(channel="Local/1001@nowhere/n")
    assert shape(sim) == [
        ("Newchannel", "Local/1001@nowhere-00000001;1"),
        ("Newchannel", "Local/1001@nowhere-00000001;2"),
        ("Hangup", "Local/1001@nowhere-00000001;2", "0"),
        ("Hangup", "Local/1001@nowhere-00000001;1", "0"),
        ("OriginateResponse", "Failure", "0"),
    ]


def test_local_device_busy_ends_both_halves_with_reason_0() -> None:
    sim, _ = callback(channel="Local/1001@agents/n", operator=Reply.busy(0.5))
    assert response(sim)["Reason"] == "0"
    assert not [
        m for m in sim if m.get("Event") == "Newchannel" and role(m["Channel"]) == "customer"
    ]


# -- the fixed numbers and the operators' habits -----------------------------------------


def test_the_documented_numbers_are_the_simulators_defaults() -> None:
    sim = SimulatedPBX(MemoryReactorClock(), seed=1)
    kinds = {number: sim._callee_for(number).reply.kind for number in CALLBACK_NUMBERS}
    assert kinds == {
        "0478554433": "busy",
        "025123456": "noanswer",
        "093334455": "congestion",
        "028880000": "unallocated",
    }
    assert sim._callee_for("0470123456").reply.kind == "answer"


def test_callback_replies_take_turns_and_leave_other_calls_alone() -> None:
    clock = MemoryReactorClock()
    sim = SimulatedPBX(clock, seed=3, secret=SECRET)
    sim.set_callback_replies("PJSIP/1002", Reply.noanswer(), Reply.answer(1))
    link = Link.open(sim)
    link.login("cti", SECRET)
    for attempt in range(3):
        link.send(
            "Originate",
            Channel="PJSIP/1002",
            Context="callback",
            Exten="0470123456",
            Timeout="10000",
            ActionID=f"cb-{attempt}",
        )
        run(clock, 200)
    reasons = [m["Reason"] for m in link.events("OriginateResponse")]
    assert reasons == ["3", "4", "3"]
    sim.place_call("direct_answered", operator="PJSIP/1002", ring=1)
    run(clock, 200)
    direct = [e for e in link.events("DialEnd") if e.get("Channel", "").startswith("PJSIP/pstn")]
    assert direct[-1]["DialStatus"] == "ANSWER"
