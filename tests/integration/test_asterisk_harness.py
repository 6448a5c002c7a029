"""The real Asterisk 22 harness: boot, AMI login, the project's dialplan, parallel
instances, restart, clean failure.

These talk to Asterisk with the harness's raw socket client only (not cti-bridge's AMI
client), so they check the PBX and its configuration on their own. Each test leaves the
shared session instance idle.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cti_bridge.testing.asterisk import (
    AMIClosed,
    AsteriskError,
    AsteriskInstance,
    RawAMI,
)
from cti_bridge.testing.sipp import sip_customer, sip_phone

pytestmark = pytest.mark.asterisk

Message = dict[str, str]
Factory = Callable[..., AsteriskInstance]


def event(name: str, **headers: str) -> Callable[[Message], bool]:
    def match(message: Message) -> bool:
        return message.get("Event") == name and all(message.get(k) == v for k, v in headers.items())

    return match


def named(seen: list[Message], name: str) -> list[Message]:
    return [m for m in seen if m.get("Event") == name]


def seen_or_wait(
    ami: RawAMI, match: Callable[[Message], bool], seen: list[Message], timeout: float
) -> Message:
    """The first matching message already read, else the next one: for events whose order
    Asterisk does not fix (OriginateResponse vs. the dialled leg's events)."""
    for message in seen:
        if match(message):
            return message
    return ami.wait_for(match, timeout=timeout, seen=seen)


@pytest.fixture
def ami(asterisk: AsteriskInstance) -> Iterator[RawAMI]:
    connection = asterisk.ami()
    try:
        yield connection
    finally:
        connection.close()
        asterisk.wait_idle(timeout=30, hangup_after=15)


def test_boots_and_takes_a_plain_login(asterisk: AsteriskInstance) -> None:
    with RawAMI(asterisk.ami_host, asterisk.ami_port) as ami:
        assert ami.banner.startswith("Asterisk Call Manager/")
        ami.login(asterisk.username, asterisk.secret)
        ami.wait_for(event("FullyBooted"), timeout=5)
        settings = ami.action("CoreSettings")
        assert settings["Response"] == "Success"
        assert settings["AsteriskVersion"].startswith("22.")
    with (
        RawAMI(asterisk.ami_host, asterisk.ami_port) as ami,
        pytest.raises(AsteriskError, match="Authentication failed"),
    ):
        ami.login(asterisk.username, asterisk.secret + "-wrong")


def test_listens_on_loopback_ports_of_its_own(asterisk: AsteriskInstance) -> None:
    assert asterisk.ami_port not in (0, 5038)
    settings = asterisk.cli("manager show settings")
    assert f"127.0.0.1:{asterisk.ami_port}" in settings
    assert "Timestamp events:          No" in settings
    transports = asterisk.cli("pjsip show transports")
    assert f"127.0.0.1:{asterisk.sip.asterisk}" in transports
    endpoints = asterisk.cli("pjsip show endpoints")
    for name in ("1001", "1002", "2001", "pstn"):
        assert f"Endpoint:  {name}" in endpoints
    queues = asterisk.cli("queue show")
    assert "support has 0 calls (max unlimited) in 'ringall' strategy" in queues
    assert "sales has 0 calls (max unlimited) in 'linear' strategy" in queues
    assert "Anna (Local/1001@agents/n from Local/1001@agents)" in queues


def test_queue_call_rings_both_operators_and_anna_answers(
    asterisk: AsteriskInstance, ami: RawAMI
) -> None:
    asterisk.set_operator("1001", ring=1, talk=2)
    asterisk.set_operator("1002", ring=60, talk=2)
    asterisk.place_call("3200", "+3250123456", "Jan Peeters", hold=20)

    seen: list[Message] = []
    join = ami.wait_for(event("QueueCallerJoin", Queue="support"), timeout=10, seen=seen)
    customer = join["Channel"]
    assert customer.startswith("Local/hold20@sim-caller-")
    assert customer.endswith(";1")
    assert (join["CallerIDNum"], join["CallerIDName"]) == ("+3250123456", "Jan Peeters")
    ami.wait_for(event("Hangup", Channel=customer), timeout=20, seen=seen)
    if not named(seen, "AgentComplete"):
        # app_queue reports the member's end as the bridge comes down: on a busy box that
        # may come just after the customer's Local channel has hung up.
        ami.wait_for(event("AgentComplete", Queue="support"), timeout=5, seen=seen)

    called = {m["MemberName"]: m for m in named(seen, "AgentCalled")}
    assert set(called) == {"Anna", "Bart"}
    assert called["Anna"]["Interface"] == "Local/1001@agents/n"
    (connect,) = named(seen, "AgentConnect")
    assert connect["MemberName"] == "Anna"
    assert connect["DestChannel"] == called["Anna"]["DestChannel"]
    (complete,) = named(seen, "AgentComplete")
    assert complete["Reason"] == "agent"  # the operator hung up after talking 2 s
    bart_leg = called["Bart"]["DestChannel"]
    assert any(
        m["DestChannel"] == bart_leg and m["DialStatus"] == "CANCEL" for m in named(seen, "DialEnd")
    )
    linkedid = join["Linkedid"]
    assert join["Uniqueid"] == linkedid
    assert all(m["Linkedid"] == linkedid for m in named(seen, "AgentCalled"))


def test_customer_hangs_up_while_operators_ring(asterisk: AsteriskInstance, ami: RawAMI) -> None:
    asterisk.set_operator("1001", ring=60, talk=2)
    asterisk.set_operator("1002", ring=60, talk=2)
    asterisk.place_call("3300", "050123456", "Marie Dubois", hold=3)

    seen: list[Message] = []
    join = ami.wait_for(event("QueueCallerJoin", Queue="sales"), timeout=10, seen=seen)
    abandon = ami.wait_for(event("QueueCallerAbandon", Queue="sales"), timeout=15, seen=seen)
    assert abandon["Uniqueid"] == join["Uniqueid"]
    assert 2 <= int(abandon["HoldTime"]) <= 4
    # linear strategy: only Anna (first member) was rung within 3 s
    assert [m["MemberName"] for m in named(seen, "AgentCalled")] == ["Anna"]
    assert named(seen, "AgentConnect") == []


def test_direct_call_and_hostile_caller_name(asterisk: AsteriskInstance, ami: RawAMI) -> None:
    asterisk.set_operator("1001", ring=1, talk=1)
    name = "Piet Fraude\r\n\r\nEvent: Hangup\r\nChannel: Local/1001@agents-00000999;1"
    asterisk.place_call("1001", "0475998877", name, hold=10)

    seen: list[Message] = []
    begin = ami.wait_for(event("DialBegin", DialString="1001@agents/n"), timeout=10, seen=seen)
    # the name went through sim-trunk (a call file cannot carry CR/LF) and AMI escapes it
    assert begin["CallerIDName"] == name.replace("\r", "\\r").replace("\n", "\\n")
    assert begin["CallerIDNum"] == "0475998877"
    assert begin["DestChannel"].startswith("Local/1001@agents-")
    end = ami.wait_for(event("DialEnd", DestChannel=begin["DestChannel"]), timeout=10, seen=seen)
    assert end["DialStatus"] == "ANSWER"
    assert named(seen, "QueueCallerJoin") == []


def test_callback_reaches_the_simulated_customer(asterisk: AsteriskInstance, ami: RawAMI) -> None:
    asterisk.set_operator("1001", ring=1, talk=30)
    queued = ami.action(
        "Originate",
        {
            "Channel": "Local/1001@agents/n",
            "Context": "callback",
            "Exten": "0478554433",  # the busy customer of [pstn-out]
            "Priority": "1",
            "CallerID": '"Terugbelverzoek 42" <0478554433>',
            "Timeout": "10000",
            "Async": "true",
            "Variable": "CTI_AGREEMENT_ID=42",
        },
    )
    assert queued["Message"] == "Originate successfully queued"
    seen: list[Message] = []
    response = ami.wait_for(event("OriginateResponse"), timeout=10, seen=seen)
    assert (response["Response"], response["Reason"]) == ("Success", "4")
    busy = seen_or_wait(ami, event("DialEnd", DialStatus="BUSY"), seen, timeout=10)
    assert busy["DestChannel"].startswith("Local/0478554433@pstn-out-")
    assert busy["Linkedid"] == response["Uniqueid"]


def _callback_originate(
    channel_id: str, exten: str, agreement: str, attempt: str = "1"
) -> dict[str, str]:
    """The Originate the dialer sends (operator 1001 first), by hand."""
    return {
        "Channel": "Local/1001@agents/n",
        "Context": "callback",
        "Exten": exten,
        "Priority": "1",
        "Timeout": "10000",
        "Async": "true",
        "ChannelId": channel_id,
        "Variable": f"CTI_AGREEMENT_ID={agreement},CTI_ATTEMPT={attempt}",
    }


@pytest.mark.parametrize(
    ("number", "status"),
    [
        ("0478554433", "BUSY"),
        ("093334455", "CONGESTION"),
        ("027777777", "CHANUNAVAIL"),  # does not exist: refused at once, cause 3
        ("028880000", "NOANSWER"),  # does not exist, a trunk's 404 (cause 1): NOANSWER!
        ("025123456", "NOANSWER"),  # never answers: rings CALLBACK_RING_SECONDS
    ],
)
def test_callback_customers_and_the_dial_audit(
    asterisk: AsteriskInstance, ami: RawAMI, number: str, status: str
) -> None:
    asterisk.clear_dial_audit()
    asterisk.set_operator("1001", ring=1, talk=30)
    asterisk.set_global("CALLBACK_RING_SECONDS", "2")
    try:
        ami.action("Originate", _callback_originate(f"audit-{number}", number, "7", attempt="2"))
        end = ami.wait_for(event("DialEnd", Uniqueid=f"audit-{number}"), timeout=15)
    finally:
        asterisk.set_global("CALLBACK_RING_SECONDS", "30")
    assert end["DialStatus"] == status
    assert end["DestChannel"].startswith(f"Local/{number}@pstn-out-")
    audit = asterisk.dial_audit()
    assert audit.rung == {(7, 2): ("1001",)}
    assert audit.dialled == {(7, 2): (number,)}


def test_the_dial_audit_notes_only_callback_legs_one_entry_each(
    asterisk: AsteriskInstance, ami: RawAMI
) -> None:
    asterisk.clear_dial_audit()
    asterisk.set_operator("1001", ring=1, talk=1)
    asterisk.set_operator("1002", ring=1, talk=1)
    # a queue call rings both operators: no callback, nothing noted
    asterisk.place_call("3200", "+3250123456", "Jan Peeters", hold=3)
    ami.wait_for(event("AgentConnect"), timeout=15, what="the queue call answered")
    # the same attempt originated twice (what the dialer must never do) shows twice
    for channel_id in ("twice-1", "twice-2"):
        queued = ami.action("Originate", _callback_originate(channel_id, "0478554433", "8"))
        assert queued["Response"] == "Success"
    # an Exten that [callback] does not match (not 0...): Asterisk refuses the Originate
    # itself, nothing rings
    refused = ami.action("Originate", _callback_originate("nowhere", "+32478554433", "9"))
    assert (refused["Response"], refused["Message"]) == ("Error", "Extension does not exist.")
    seen: list[Message] = []
    for channel_id in ("twice-1", "twice-2"):  # in either order
        seen_or_wait(ami, event("Hangup", Uniqueid=channel_id), seen, timeout=15)
    audit = asterisk.dial_audit()
    assert audit.rung == {(8, 1): ("1001", "1001")}
    assert audit.dialled == {(8, 1): ("0478554433", "0478554433")}
    assert audit.attempts_rung(8) == [1]


def test_two_instances_run_side_by_side(
    asterisk: AsteriskInstance, asterisk_factory: Factory
) -> None:
    other = asterisk_factory()
    assert other.instance_dir != asterisk.instance_dir
    assert other.ami_port != asterisk.ami_port
    assert other.sip.asterisk != asterisk.sip.asterisk
    assert other.secret != asterisk.secret

    # separate AstDB and separate calls
    asterisk.set_operator("1002", ring=7, talk=1)
    other.set_operator("1002", ring=60, talk=1)
    assert "7" in asterisk.cli("database get agentsim 1002/ring")
    assert "60" in other.cli("database get agentsim 1002/ring")
    with other.ami() as ami:
        other.place_call("3200", "+3293456789", "Bakkerij Janssens", hold=30)
        ami.wait_for(event("QueueCallerJoin", Queue="support"), timeout=10)
        assert other.active_channels() >= 2
        assert asterisk.active_channels() == 0

    process_dir, port = other.instance_dir, other.ami_port
    other.stop()
    assert not process_dir.exists()
    with pytest.raises(ConnectionRefusedError):
        RawAMI(other.ami_host, port, timeout=2)
    assert asterisk.active_channels() == 0  # the session's instance is unharmed


def test_restart_comes_back_fully_booted(asterisk_factory: Factory) -> None:
    pbx = asterisk_factory()
    pbx.set_operator("1001", ring=3, talk=4)
    with pbx.ami() as ami:
        pbx.restart()
        seen: list[Message] = []
        with pytest.raises(AMIClosed):
            ami.wait_for(lambda m: False, timeout=10, seen=seen)
        (shutdown,) = named(seen, "Shutdown")
        assert shutdown["Restart"] == "True"
    assert pbx.running
    with pbx.ami() as ami:
        ami.wait_for(event("FullyBooted"), timeout=5)
        uptime = ami.action("Command", {"Command": "core show uptime seconds"})
        assert uptime["Response"] == "Success"
    assert int(pbx.cli("core show uptime seconds").split()[2]) < 10
    # AstDB lives in the instance's files and survives the restart
    assert "3" in pbx.cli("database get agentsim 1001/ring")


def _copy_config(tmp_path: Path, asterisk: AsteriskInstance) -> Path:
    config = tmp_path / "asterisk"
    shutil.copytree(asterisk.config_dir, config)
    return config


def test_a_pbx_that_exits_fails_fast_with_its_last_words(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    config = _copy_config(tmp_path, asterisk)
    with (config / "modules.conf").open("a") as modules:
        modules.write("require => res_no_such_module.so\n")
    broken = AsteriskInstance(asterisk.root, config_dir=config, boot_timeout=20)
    with pytest.raises(AsteriskError, match="exited") as failure:
        broken.start()
    assert "res_no_such_module" in str(failure.value)
    assert not broken.instance_dir.exists()
    assert not broken.running


def test_a_pbx_without_ami_times_out_and_leaves_nothing(
    asterisk: AsteriskInstance, tmp_path: Path
) -> None:
    config = _copy_config(tmp_path, asterisk)
    manager = config / "manager.conf"
    manager.write_text(manager.read_text().replace("enabled = yes", "enabled = no"))
    silent = AsteriskInstance(asterisk.root, config_dir=config, boot_timeout=3)
    with pytest.raises(AsteriskError, match="did not report FullyBooted") as failure:
        silent.start()
    assert "messages.log" in str(failure.value)
    assert not silent.instance_dir.exists()
    assert not silent.running
    assert asterisk.active_channels() == 0


def test_sip_customer_on_the_trunk_reaches_a_sip_phone(asterisk_factory: Factory) -> None:
    pbx = asterisk_factory()
    pbx.clear_operator("1002")  # not simulated: [agents] dials PJSIP/1002
    with (
        sip_phone(pbx, "1002", ring_ms=1000, talk_ms=60000),
        pbx.ami() as ami,
        sip_customer(pbx, "1002", "050123456", "Jan Peeters", hold_ms=2000) as customer,
    ):
        seen: list[Message] = []
        begin = ami.wait_for(
            lambda m: (
                m.get("Event") == "DialBegin" and m.get("DestChannel", "").startswith("PJSIP/1002-")
            ),
            timeout=10,
            seen=seen,
        )
        (trunk,) = [m for m in named(seen, "Newchannel") if m["Channel"].startswith("PJSIP/pstn-")]
        assert (trunk["CallerIDNum"], trunk["CallerIDName"]) == ("050123456", "Jan Peeters")
        assert (trunk["Context"], trunk["Exten"]) == ("from-pstn", "1002")
        assert begin["Linkedid"] == trunk["Uniqueid"]
        answer = ami.wait_for(
            event("DialEnd", DestChannel=begin["DestChannel"]), timeout=10, seen=seen
        )
        assert answer["DialStatus"] == "ANSWER"
        ami.wait_for(event("Hangup", Channel=trunk["Channel"]), timeout=10, seen=seen)
        assert customer.wait(10) == 0, customer.output()
