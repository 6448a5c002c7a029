"""The simulator's AMI server, byte for byte where Asterisk 22 is exact about it.

Every test runs the real protocol on a ``StringTransport`` and a ``MemoryReactorClock``;
nothing sleeps and nothing touches the global reactor.
"""

from __future__ import annotations

import hashlib

import pytest
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.ami.parser import format_action
from cti_bridge.sim import Callee, Reply, SimulatedPBX
from cti_bridge.sim.harness import Link, run

EPOCH = 1_795_737_000.0
SECRET = "s3cret-for-tests"


@pytest.fixture
def clock() -> MemoryReactorClock:
    clock = MemoryReactorClock()
    clock.advance(EPOCH)
    return clock


@pytest.fixture
def sim(clock: MemoryReactorClock) -> SimulatedPBX:
    return SimulatedPBX(clock, seed=11, secret=SECRET)


def logged_in(sim: SimulatedPBX, **headers: str) -> Link:
    link = Link.open(sim)
    response = link.login("cti", SECRET, ActionID="login", **headers)
    assert response["Message"] == "Authentication accepted"
    return link


# -- connection and login ----------------------------------------------------------


def test_banner_is_a_single_line_without_blank_line(sim: SimulatedPBX) -> None:
    link = Link.open(sim)
    assert link.transport.value() == b"Asterisk Call Manager/11.0.0\r\n"


def test_plain_login_bytes_match_asterisk(sim: SimulatedPBX) -> None:
    link = Link.open(sim)
    link.send("Login", Username="cti", Secret=SECRET, ActionID="login")
    data = link.transport.value()
    assert data.startswith(
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Response: Success\r\nActionID: login\r\nMessage: Authentication accepted\r\n\r\n"
        b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 0\r\nLastReload: 0\r\n"
        b"Status: Fully Booted\r\n\r\n"
        b"Event: SuccessfulAuth\r\nPrivilege: security,all\r\n"
    )
    assert data.endswith(b"\r\n\r\n")
    auth = link.events("SuccessfulAuth")[0]
    assert auth["AccountID"] == "cti"
    assert auth["UsingPassword"] == "1"


def test_md5_login_with_the_key_asterisk_computes(sim: SimulatedPBX) -> None:
    link = Link.open(sim)
    link.send("Challenge", AuthType="md5", ActionID="challenge-1")
    challenge = link.poll()[0]
    assert list(challenge) == ["Response", "ActionID", "Challenge"]
    assert challenge["Challenge"].isdigit()
    key = hashlib.md5((challenge["Challenge"] + SECRET).encode()).hexdigest()
    link.send("Login", AuthType="md5", Username="cti", Key=key, ActionID="login-md5")
    accepted, booted, auth = link.poll()
    assert accepted["Message"] == "Authentication accepted"
    assert accepted["ActionID"] == "login-md5"
    assert booted["Event"] == "FullyBooted"
    assert auth["UsingPassword"] == "0"


def test_md5_login_with_a_wrong_key_fails(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = Link.open(sim)
    link.send("Challenge", AuthType="MD5")
    challenge = link.poll()[0]["Challenge"]
    wrong = hashlib.md5((challenge + "not-the-secret").encode()).hexdigest()
    link.send("Login", AuthType="md5", Username="cti", Key=wrong)
    clock.advance(1.0)
    assert link.poll()[0]["Message"] == "Authentication failed"
    assert link.closed


def test_challenge_needs_md5(sim: SimulatedPBX) -> None:
    link = Link.open(sim)
    link.send("Challenge", AuthType="plain", ActionID="c")
    assert link.poll()[0]["Message"] == "Must specify AuthType"


def test_failed_login_answers_after_a_second_then_closes(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    link = Link.open(sim)
    link.send("Login", Username="cti", Secret="wrong", ActionID="login-bad")
    assert link.poll() == []  # Asterisk sleeps one second first
    assert not link.closed
    clock.advance(1.0)
    (failure,) = link.poll()
    assert dict(failure) == {
        "Response": "Error",
        "ActionID": "login-bad",
        "Message": "Authentication failed",
    }
    assert link.closed


def test_wrong_username_fails_too(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = Link.open(sim)
    link.send("Login", Username="admin", Secret=SECRET)
    clock.advance(1.0)
    assert link.poll()[0]["Message"] == "Authentication failed"
    assert link.closed


def test_other_sessions_see_the_security_events(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    monitor = logged_in(sim)
    intruder = Link.open(sim)
    intruder.send("Ping", ActionID="early")
    intruder.send("Login", Username="cti", Secret="guess")
    clock.advance(1.0)
    names = [e["Event"] for e in monitor.events()]
    assert names[-2:] == ["RequestNotAllowed", "InvalidPassword"]
    assert monitor.events("RequestNotAllowed")[0]["RequestType"] == "Action: Ping"
    assert monitor.events("InvalidPassword")[0]["EventVersion"] == "2"


def test_actions_before_login_are_denied(sim: SimulatedPBX) -> None:
    link = Link.open(sim)
    link.send("Ping", ActionID="ping-before-login")
    assert link.poll() == [
        {"Response": "Error", "ActionID": "ping-before-login", "Message": "Permission denied"}
    ]
    link.send("QueueStatus", ActionID="q")
    assert link.poll()[0]["Message"] == "Permission denied"
    assert not link.closed


def test_second_login_says_already_authenticated(sim: SimulatedPBX) -> None:
    link = logged_in(sim)
    link.send("Login", Username="cti", Secret=SECRET, ActionID="again")
    assert link.poll()[0]["Message"] == "Already authenticated"


def test_ping_pong_with_the_pbx_time(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = logged_in(sim)
    clock.advance(12.5)
    link.send("Ping", ActionID="ping-1")
    (pong,) = link.poll()
    assert list(pong.items()) == [
        ("Response", "Success"),
        ("ActionID", "ping-1"),
        ("Ping", "Pong"),
        ("Timestamp", f"{EPOCH + 12.5:.6f}"),
    ]


def test_logoff_says_goodbye_and_closes(sim: SimulatedPBX) -> None:
    link = logged_in(sim)
    link.send("Logoff", ActionID="logoff")
    assert link.poll() == [
        {"Response": "Goodbye", "ActionID": "logoff", "Message": "Thanks for all the fish."}
    ]
    assert link.closed


def test_unknown_and_missing_actions(sim: SimulatedPBX) -> None:
    link = logged_in(sim)
    link.send("Frobnicate", ActionID="x")
    link.send_raw(b"ActionID: y\r\nFoo: bar\r\n\r\n")
    unknown, missing = link.poll()
    assert unknown["Response"] == "Error"
    assert unknown["Message"] == (
        "Invalid/unknown command: Frobnicate. Use Action: ListCommands to show available commands."
    )
    assert missing["Message"] == "Missing action in request"
    assert missing["ActionID"] == "y"


def test_action_ids_stay_on_their_own_connection(sim: SimulatedPBX) -> None:
    one, two = logged_in(sim), logged_in(sim)
    one.poll()
    two.poll()
    one.send("Ping", ActionID="from-one")
    two.send("Ping", ActionID="from-two")
    assert [r["ActionID"] for r in one.poll()] == ["from-one"]
    assert [r["ActionID"] for r in two.poll()] == ["from-two"]


def test_actions_split_across_reads_and_lowercase_names(sim: SimulatedPBX) -> None:
    link = logged_in(sim)
    link.poll()
    data = format_action("ping", {"ActionID": "split"})
    for i in range(len(data)):
        link.send_raw(data[i : i + 1])
    assert link.poll()[0]["ActionID"] == "split"


# -- events --------------------------------------------------------------------------


def test_events_off_at_login_sends_no_events(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = Link.open(sim)
    link.send("Login", Username="cti", Secret=SECRET, Events="off")
    sim.place_call("queue_answered", operator="PJSIP/1001", talk=5)
    run(clock, 30)
    assert [m.get("Event") for m in link.all()] == [None]  # only the login response


def test_event_mask_by_class(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = logged_in(sim)
    link.send("Events", EventMask="agent", ActionID="mask")
    assert list(link.poll()[-1].items()) == [
        ("Response", "Success"),
        ("ActionID", "mask"),
        ("Events", "On"),
    ]
    sim.place_call("queue_answered", operator="PJSIP/1001", talk=5)
    run(clock, 30)
    events = link.events()
    after = events[events.index(link.events("SuccessfulAuth")[0]) + 1 :]
    assert after
    assert {e["Privilege"] for e in after} == {"agent,all"}
    link.send("Events", EventMask="off", ActionID="off")
    assert link.poll()[-1]["Events"] == "Off"


def test_timestamped_events_carry_the_pbx_time_as_third_header(
    clock: MemoryReactorClock,
) -> None:
    sim = SimulatedPBX(clock, seed=1, secret=SECRET, timestamp_events=True)
    link = logged_in(sim)
    clock.advance(3.25)
    sim.place_call("queue_abandoned", patience=4)
    run(clock, 10)
    events = link.events()
    assert "Timestamp" not in events[0]  # the login FullyBooted never has one
    newchannel = link.events("Newchannel")[0]
    assert list(newchannel)[:3] == ["Event", "Privilege", "Timestamp"]
    assert float(newchannel["Timestamp"]) == pytest.approx(EPOCH + 3.25)


def test_shutdown_event_then_every_link_closes(sim: SimulatedPBX) -> None:
    link = logged_in(sim)
    sim.shutdown(restart=True)
    last = link.events()[-1]
    assert dict(last) == {
        "Event": "Shutdown",
        "Privilege": "system,all",
        "Shutdown": "Cleanly",
        "Restart": "True",
    }
    assert link.closed


# -- list actions ------------------------------------------------------------------


def busy_floor(sim: SimulatedPBX, clock: MemoryReactorClock) -> Link:
    """One call talking to Anna, one waiting (everybody else paused), as in trace 09."""
    link = logged_in(sim)
    for device in sim.operators[1:]:
        assert sim.pause(device, "Opleiding")
    sim.place_call("queue_answered", operator="PJSIP/1001", ring=2, talk=300)
    run(clock, 5)
    sim.place_call("queue_abandoned", caller=("011223344", "Kris Willems"), patience=200)
    run(clock, 3)
    link.poll()
    return link


def test_queue_status_framing_and_counts(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = busy_floor(sim, clock)
    link.send("QueueStatus", ActionID="qstatus-1")
    start, *items, complete = link.poll()
    assert list(start.items()) == [
        ("Response", "Success"),
        ("ActionID", "qstatus-1"),
        ("EventList", "start"),
        ("Message", "Queue status will follow"),
    ]
    kinds = [m["Event"] for m in items]
    # support: params, every operator, 1 waiting caller; sales: params, 2 members
    assert (
        kinds
        == ["QueueParams"]
        + ["QueueMember"] * len(sim.operators)
        + ["QueueEntry"]
        + ["QueueParams"]
        + ["QueueMember"] * 2
    )
    assert complete["Event"] == "QueueStatusComplete"
    assert complete["EventList"] == "Complete"
    assert complete["ListItems"] == str(len(items)) == str(len(sim.operators) + 5)
    assert all(list(m)[-1] == "ActionID" and "Privilege" not in m for m in items)
    anna = next(m for m in items if m.get("Name") == "Anna" and m["Queue"] == "support")
    assert (anna["InCall"], anna["Status"], anna["Paused"]) == ("1", "2", "0")
    bart = next(m for m in items if m.get("Name") == "Bart" and m["Queue"] == "support")
    assert (bart["Paused"], bart["PausedReason"]) == ("1", "Opleiding")
    entry = next(m for m in items if m["Event"] == "QueueEntry")
    assert (entry["CallerIDNum"], entry["CallerIDName"], entry["Wait"]) == (
        "011223344",
        "Kris Willems",
        "3",
    )
    assert entry["ConnectedLineNum"] == "unknown"  # QueueEntry says unknown, no brackets


def test_queue_status_for_one_queue(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = busy_floor(sim, clock)
    link.send("QueueStatus", Queue="support", ActionID="qstatus-support")
    messages = link.poll()
    assert messages[-1]["ListItems"] == str(len(sim.operators) + 2)
    assert {m["Queue"] for m in messages[1:-1]} == {"support"}


def test_queue_summary(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = busy_floor(sim, clock)
    link.send("QueueSummary", ActionID="qsummary-1")
    start, support, sales, complete = link.poll()
    assert start["Message"] == "Queue summary will follow"
    logged_in_count = str(len(sim.operators))
    assert (support["LoggedIn"], support["Available"], support["Callers"]) == (
        logged_in_count,
        "0",
        "1",
    )
    assert support["LongestHoldTime"] == "3"
    assert sales["Callers"] == "0"
    assert (complete["Event"], complete["ListItems"]) == ("QueueSummaryComplete", "2")


def test_core_show_channels_and_status(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = busy_floor(sim, clock)
    link.send("CoreShowChannels", ActionID="coreshowchannels-1")
    start, *items, complete = link.poll()
    assert start["Message"] == "Channels will follow"
    assert [list(i)[:2] for i in items] == [["Event", "ActionID"]] * 3  # ActionID second
    assert len(items) == 3  # the talking customer and Anna's leg, the waiting customer
    bridged = [i for i in items if i["BridgeId"]]
    assert len(bridged) == 2
    assert bridged[0]["BridgeId"] == bridged[1]["BridgeId"]
    assert complete["ListItems"] == "3"

    link.send("Status", ActionID="status-1")
    start, *items, complete = link.poll()
    assert start["Message"] == "Channel status will follow"
    assert all(i["Privilege"] == "Call" and list(i)[-1] == "ActionID" for i in items)
    assert (complete["Event"], complete["ListItems"], complete["Items"]) == (
        "StatusComplete",
        "3",
        "3",
    )
    link.send("Status", Channel="PJSIP/nope-00000000", ActionID="status-2")
    assert link.poll()[0]["Message"] == "No such channel"


def test_command_output_lines(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = busy_floor(sim, clock)
    link.send("Command", Command="core show channels", ActionID="command-1")
    (reply,) = link.poll()
    assert list(reply)[:4] == ["Response", "ActionID", "Message", "Output"]
    assert reply["Message"] == "Command output follows"
    lines = reply.getall("Output")
    assert lines[0].startswith("Channel" + " " * 58 + "Location")
    assert lines[-3:] == ["3 active channels", "2 active calls", "2 calls processed"]
    assert any("Queue(support,t,,,60)" in line for line in lines)

    link.send("Command", Command="queue show support", ActionID="command-2")
    lines = link.poll()[0].getall("Output")
    assert lines[0].startswith("support has 1 calls (max unlimited) in 'ringall' strategy")
    assert (
        "      Bart (PJSIP/1002) (ringinuse disabled) (paused:Opleiding was 8 secs ago)"
        in (lines[3])
    )
    assert "(in call) (In use)" in lines[2]
    assert lines[-4:] == ["   Callers: ", lines[-3], "", ""]
    assert lines[-3].startswith("      1. PJSIP/pstn-")

    link.send("Command", Command="sip show peers", ActionID="command-3")
    (reply,) = link.poll()
    assert reply["Response"] == "Error"
    assert reply["Output"].startswith("No such command 'sip show peers'")


# -- call control -------------------------------------------------------------------


def test_queue_pause_answers_before_its_events(sim: SimulatedPBX) -> None:
    link = logged_in(sim)
    link.poll()
    link.send("QueuePause", Interface="PJSIP/1002", Paused="true", Reason="Coaching", ActionID="p")
    messages = link.poll()
    assert messages[0]["Message"] == "Interface paused successfully"
    pauses = [m for m in messages if m.get("Event") == "QueueMemberPause"]
    assert [(m["Queue"], m["Paused"], m["PausedReason"]) for m in pauses] == [
        ("support", "1", "Coaching"),
        ("sales", "1", "Coaching"),
    ]
    devices = [m["Device"] for m in messages if m.get("Event") == "DeviceStateChange"]
    assert "Queue:support_pause_PJSIP/1002" in devices
    link.send("QueuePause", Interface="PJSIP/1002", Paused="false", Queue="sales", ActionID="u")
    messages = link.poll()
    assert messages[0]["Message"] == "Interface unpaused successfully"
    assert [m["PausedReason"] for m in messages if m.get("Event") == "QueueMemberPause"] == [""]
    link.send("QueuePause", Interface="PJSIP/9999", Paused="true", ActionID="x")
    assert link.poll()[0]["Message"] == "Interface not found"
    link.send("QueuePause", Interface="PJSIP/1001", ActionID="y")
    assert link.poll()[0]["Message"] == "Need 'Interface' and 'Paused' parameters."


def originate(link: Link, channel: str, exten: str, action_id: str, timeout: int = 20000) -> None:
    link.send(
        "Originate",
        [
            ("ActionID", action_id),
            ("Channel", channel),
            ("Context", "callback"),
            ("Exten", exten),
            ("Priority", "1"),
            ("Timeout", str(timeout)),
            ("CallerID", f'"Terugbelverzoek 42" <{exten}>'),
            ("Variable", "CTI_AGREEMENT_ID=42"),
            ("Async", "true"),
        ],
    )


def test_originate_operator_first_then_customer(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    sim.set_reply("PJSIP/1001", Reply.answer(2))
    sim.set_callee("050123456", Callee(Reply.answer(3), talk=10))
    link = logged_in(sim)
    link.poll()
    originate(link, "PJSIP/1001", "050123456", "callback-42")
    assert link.poll()[0] == {
        "Response": "Success",
        "ActionID": "callback-42",
        "Message": "Originate successfully queued",
    }
    run(clock, 30)
    (response,) = link.events("OriginateResponse")
    assert (response["Response"], response["Reason"]) == ("Success", "4")
    assert response["ActionID"] == "callback-42"
    operator = link.events("Newchannel")[0]
    assert operator["Channel"].startswith("PJSIP/1001-")
    assert (response["Channel"], response["Uniqueid"]) == (
        operator["Channel"],
        operator["Uniqueid"],
    )
    assert operator["Linkedid"] == operator["Uniqueid"]
    customer = link.events("Newchannel")[1]
    assert customer["Channel"].startswith("PJSIP/pstn-")
    assert customer["Linkedid"] == operator["Uniqueid"]
    begins = link.events("DialBegin")
    assert "Channel" not in begins[0]  # the originate's own dial has no caller side
    assert begins[1]["DialString"] == "050123456@pstn"
    assert [e["DialStatus"] for e in link.events("DialEnd")] == ["ANSWER", "ANSWER"]
    agreement = [e for e in link.events("VarSet") if e["Variable"] == "CTI_AGREEMENT_ID"]
    assert agreement[0]["Value"] == "42"
    assert link.events("NewCallerid")[0]["CallerIDName"] == "Terugbelverzoek 42"
    assert sim.pbx.channels == {}


@pytest.mark.parametrize(
    ("reply", "reason", "cause"),
    # A SIP phone's 486/503 ends the leg without a control frame: Reason 0 (main/dial.c).
    [(Reply.noanswer(), "3", "19"), (Reply.busy(0.5), "0", "17"), (Reply.congestion(), "0", "34")],
)
def test_originate_first_leg_failures(
    sim: SimulatedPBX, clock: MemoryReactorClock, reply: Reply, reason: str, cause: str
) -> None:
    sim.set_reply("PJSIP/1001", reply)
    link = logged_in(sim)
    originate(link, "PJSIP/1001", "050123456", "cb", timeout=15000)
    run(clock, 20)
    (response,) = link.events("OriginateResponse")
    assert (response["Response"], response["Reason"]) == ("Failure", reason)
    assert (response["Channel"], response["Uniqueid"]) == ("PJSIP/1001", "<unknown>")
    (hangup,) = link.events("Hangup")
    assert hangup["Cause"] == cause
    assert len(link.events("Newchannel")) == 1  # the customer is never dialled
    if reason == "3":
        assert link.events("DialEnd") == []  # pjsip 06b: no DialEnd for the timed-out leg


def test_originate_customer_busy_is_still_a_success(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    sim.set_reply("PJSIP/1001", Reply.answer(1))
    sim.set_callee("0478554433", Callee(Reply.busy(1)))
    link = logged_in(sim)
    originate(link, "PJSIP/1001", "0478554433", "cb-busy")
    run(clock, 20)
    assert link.events("OriginateResponse")[0]["Reason"] == "4"
    assert [e["DialStatus"] for e in link.events("DialEnd")] == ["ANSWER", "BUSY"]
    causes = {e["Channel"].split("-")[0]: e["Cause"] for e in link.events("Hangup")}
    assert causes == {"PJSIP/1001": "17", "PJSIP/pstn": "17"}


def test_originate_that_cannot_create_a_channel(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    link = logged_in(sim)
    link.send(
        "Originate",
        Channel="SIP/0470123456@trunk",
        Context="callback",
        Exten="0470123456",
        ChannelId="cti-callback-49",
        ActionID="cb-invalid",
    )
    run(clock, 1)
    assert link.responses("cb-invalid")[0]["Message"] == "Originate successfully queued"
    (response,) = link.events("OriginateResponse")
    assert (response["Reason"], response["Uniqueid"]) == ("0", "cti-callback-49")
    assert (response["CallerIDNum"], response["CallerIDName"]) == ("<unknown>", "<unknown>")
    assert link.events("Newchannel") == []


def test_originate_with_channel_id_names_the_uniqueid(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    link = logged_in(sim)
    sim.set_reply("PJSIP/1001", Reply.answer(1))
    sim.set_callee("050123456", Callee(Reply.answer(1), talk=3))
    link.send(
        "Originate",
        Channel="PJSIP/1001",
        Context="callback",
        Exten="050123456",
        ChannelId="cti-callback-48",
        ActionID="cb-48",
    )
    run(clock, 3)
    link.send("CoreShowChannels", ActionID="csc")
    listed = [m["Uniqueid"] for m in link.events("CoreShowChannel")]
    assert listed[0] == "cti-callback-48"  # a ChannelId is the Uniqueid
    run(clock, 10)
    first, second = link.events("Newchannel")
    assert first["Uniqueid"] == first["Linkedid"] == "cti-callback-48"
    assert second["Linkedid"] == "cti-callback-48"


def test_originate_needs_channel_and_destination(sim: SimulatedPBX) -> None:
    link = logged_in(sim)
    link.send("Originate", Exten="1", Context="x", ActionID="a")
    link.send("Originate", Channel="PJSIP/1001", ActionID="b")
    assert [r["Response"] for r in link.poll()[-2:]] == ["Error", "Error"]


def test_hangup_action_ends_a_waiting_call(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = logged_in(sim)
    placed = sim.place_call("queue_timeout")
    run(clock, 3)
    link.send("Hangup", Channel=placed.channel.name, ActionID="h")
    assert link.responses("h")[0]["Message"] == "Channel Hungup"
    assert link.events("QueueCallerAbandon")[0]["HoldTime"] == "3"
    assert sim.pbx.channels == {}
    link.send("Hangup", Channel=placed.channel.name, ActionID="h2")
    assert link.responses("h2")[0]["Message"] == "No such channel"


def test_hangup_action_ends_a_conversation_with_a_soft_hangup(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    link = logged_in(sim)
    sim.place_call("queue_answered", operator="PJSIP/1003", ring=1, talk=600)
    run(clock, 5)
    leg = next(c for c in sim.pbx.channels if c.startswith("PJSIP/1003-"))
    link.send("Hangup", Channel=leg, ActionID="h")
    run(clock, 1)
    assert link.events("SoftHangupRequest")[0]["Channel"] == leg
    assert link.events("AgentComplete")[0]["Reason"] == "agent"
    assert sim.pbx.channels == {}


def test_blind_transfer_action(sim: SimulatedPBX, clock: MemoryReactorClock) -> None:
    link = logged_in(sim)
    sim.set_reply("PJSIP/2001", Reply.answer(3))
    sim.place_call("queue_answered", operator="PJSIP/1001", ring=2, talk=600)
    run(clock, 5)
    leg = next(c for c in sim.pbx.channels if c.startswith("PJSIP/1001-"))
    link.poll()
    link.send("BlindTransfer", Channel=leg, Context="internal", Exten="2001", ActionID="xfer-1")
    messages = link.poll()
    assert messages[0] == {
        "Response": "Success",
        "ActionID": "xfer-1",
        "Message": "Transfer succeeded",
    }
    assert [m.get("Event") for m in messages].index("Unhold") < [
        m.get("Event") for m in messages
    ].index("BlindTransfer")
    transfer = link.events("BlindTransfer")[0]
    assert (transfer["TransfererChannel"], transfer["Extension"]) == (leg, "2001")
    assert link.events("AgentComplete")[0]["Reason"] == "transfer"
    run(clock, 10)
    assert link.events("DialBegin")[-1]["DestChannel"].startswith("PJSIP/2001-")
    assert link.events("DialEnd")[-1]["DialStatus"] == "ANSWER"
    link.send("BlindTransfer", Channel="PJSIP/nope", Exten="2001", ActionID="bad")
    assert link.responses("bad")[0]["Message"] == "Channel specified does not exist"


def test_atxfer_action_completes_when_the_operator_hangs_up(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    link = logged_in(sim)
    sim.set_reply("PJSIP/2001", Reply.answer(2))
    placed = sim.place_call("queue_answered", operator="PJSIP/1001", ring=2, talk=600)
    run(clock, 5)
    leg = next(c for c in sim.pbx.channels if c.startswith("PJSIP/1001-"))
    link.send("Atxfer", Channel=leg, Context="internal", Exten="2001", ActionID="atxfer-1")
    assert link.responses("atxfer-1")[0]["Message"] == "Atxfer successfully queued"
    run(clock, 4)
    assert link.events("Hold")[0]["Channel"] == leg
    assert link.events("DialEnd")[-1]["DestChannel"].startswith("Local/2001@internal-")
    assert link.events("AttendedTransfer") == []
    link.send("Hangup", Channel=leg, ActionID="done")  # the operator hangs up: transfer
    (transfer,) = link.events("AttendedTransfer")
    assert transfer["OrigTransfererChannel"] == leg
    assert transfer["TransfereeChannel"] == placed.channel.name
    assert link.events("AgentComplete")[0]["Reason"] == "transfer"
    assert placed.channel.bridge is not None
    assert [c.name.split("-")[0] for c in placed.channel.bridge.channels] == [
        "PJSIP/pstn",
        "Local/2001@internal",
    ]
    run(clock, 30)  # the customer talks to 2001, then hangs up
    assert sim.pbx.channels == {}
    assert {e["Linkedid"] for e in link.events("Hangup")} == {placed.linkedid}


def test_redirect_action_defers_agent_complete(
    sim: SimulatedPBX, clock: MemoryReactorClock
) -> None:
    link = logged_in(sim)
    sim.set_reply("PJSIP/2001", Reply.answer(2))
    sim.set_callee("2001", Callee(talk=40))  # the customer talks 40 s with the second line
    placed = sim.place_call("queue_answered", operator="PJSIP/1002", ring=1, talk=30)
    run(clock, 4)
    link.send(
        "Redirect",
        Channel=placed.channel.name,
        Context="internal",
        Exten="2001",
        Priority="1",
        ActionID="redirect-1",
    )
    assert link.responses("redirect-1")[0]["Message"] == "Redirect successful"
    assert link.events("AgentComplete") == []
    run(clock, 120)
    assert link.events("BlindTransfer") == []  # Redirect makes no transfer event
    (complete,) = link.events("AgentComplete")  # only when the caller finally hangs up
    assert complete["Reason"] == "caller"
    assert int(complete["TalkTime"]) >= 3 + 2 + 40  # includes the part with 2001
    assert sim.pbx.channels == {}
