"""AMIClient: login, resync, listeners, reconnect and status, against a scripted PBX.

No sockets and no global reactor: a fake endpoint hands out AMIProtocols connected to
StringTransports, time is a MemoryReactorClock, and the "PBX" is whatever bytes the
test writes back.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from twisted.python.failure import Failure

from cti_bridge.ami.client import (
    AMIAccount,
    AMIAuthError,
    AMINotConnected,
    Backoff,
    ResyncSnapshot,
)
from cti_bridge.ami.parser import Message
from cti_bridge.ami.protocol import AMIConnectionLost
from cti_bridge.log import configure_logging
from tests.support.ami_link import (
    FULLY_BOOTED,
    SECRET,
    Recorder,
    bring_up,
    finish_resync,
    list_answer,
    make,
)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("DEBUG", stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.reset_defaults()


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# -- login ------------------------------------------------------------------------------


def test_plain_login_bytes() -> None:
    s = make(auth="plain")
    s.client.start()
    assert s.client.state == "connecting"
    pbx = s.endpoint.accept()
    assert s.client.state == "logging_in"
    assert pbx.transport.value() == (
        b"Action: Login\r\nUsername: cti\r\nSecret: s3cret-Ami!\r\nEvents: on\r\n"
        b"ActionID: cti-1\r\n\r\n"
    )


def test_md5_login_bytes_exactly() -> None:
    s = make(auth="md5")
    s.client.start()
    pbx = s.endpoint.accept()
    assert pbx.transport.value() == b"Action: Challenge\r\nAuthType: md5\r\nActionID: cti-1\r\n\r\n"
    pbx.transport.clear()
    pbx.send("Response: Success\r\nActionID: cti-1\r\nChallenge: 139252470\r\n\r\n")
    # md5("139252470" + "s3cret-Ami!"), computed outside the code under test.
    assert pbx.transport.value() == (
        b"Action: Login\r\nAuthType: md5\r\nUsername: cti\r\n"
        b"Key: 044ff2d96cb1033996e8feffbef34570\r\nEvents: on\r\nActionID: cti-2\r\n\r\n"
    )
    assert hashlib.md5(b"139252470" + SECRET.encode()).hexdigest() in pbx.transport.value().decode()
    assert SECRET.encode() not in pbx.transport.value()
    pbx.transport.clear()
    pbx.send("Response: Success\r\nActionID: cti-2\r\nMessage: Authentication accepted\r\n\r\n")
    assert s.client.state == "resyncing"


def test_failed_login_is_a_clear_error_and_backs_off_long(json_log: io.StringIO) -> None:
    s = make(auth="plain", backoff=Backoff(auth_failure=60.0, jitter=0.25, rng=random.Random(1)))
    s.client.start()
    pbx = s.endpoint.accept()
    pbx.actions()
    pbx.send("Response: Error\r\nActionID: cti-1\r\nMessage: Authentication failed\r\n\r\n")
    assert pbx.transport.disconnecting, "a refused link is closed by us, not left open"
    pbx.close()
    status = s.client.status()
    assert status["state"] == "disconnected"
    assert status["last_error"] == (
        "AMI login refused for user 'cti' on PBX main (127.0.0.1:5038): Authentication failed"
    )
    # Not a tight loop: nothing for at least 45 s (60 s minus at most 25 % jitter).
    s.reactor.advance(44.9)
    assert len(s.endpoint.attempts) == 1
    s.reactor.advance(15.1)
    assert len(s.endpoint.attempts) == 2
    # Over ten simulated minutes of refusals there are at most 10 + 1 attempts.
    for _ in range(30):
        if s.endpoint.attempts[-1][1].called:
            s.reactor.advance(1.0)
            continue
        pbx = s.endpoint.accept()
        pbx.actions()
        pbx.send("Response: Error\r\nActionID: cti-1\r\nMessage: Authentication failed\r\n\r\n")
        pbx.close()
        s.reactor.advance(20.0)
    assert len(s.endpoint.attempts) <= 1 + (60 + 30 * 21) // 45
    errors = [line for line in log_lines(json_log) if line["level"] == "error"]
    refused = [e for e in errors if e["event"] == "ami_login_refused"]
    assert len(refused) >= 2, "every refused login is logged at error level"
    assert "'cti'" in refused[0]["error"] and "127.0.0.1:5038" in refused[0]["error"]
    assert any(e["event"] == "ami_login_retry_scheduled" for e in errors)
    assert s.listener.calls == [], "listeners never hear of a link that never came up"
    assert SECRET not in json_log.getvalue()


def test_md5_login_refused_is_an_auth_error() -> None:
    s = make(auth="md5")
    s.client.start()
    pbx = s.endpoint.accept()
    pbx.actions()
    pbx.send("Response: Error\r\nActionID: cti-1\r\nMessage: Must specify AuthType\r\n\r\n")
    pbx.close()
    assert "Must specify AuthType" in s.client.status()["last_error"]
    assert s.client.backoff.auth_failure == 60.0
    s.reactor.advance(40.0)
    assert len(s.endpoint.attempts) == 1


@pytest.mark.parametrize("auth", ["plain", "md5"])
def test_a_pbx_shutting_down_is_not_a_refused_login(auth: str) -> None:
    """Seen on a real Asterisk 22 right after Event: Shutdown during a restart."""
    s = make(auth=auth)
    s.client.start()
    pbx = s.endpoint.accept()
    (first,) = pbx.actions()
    pbx.send(
        f"Response: Error\r\nActionID: {first.action_id}\r\n"
        "Message: Asterisk is shutting down\r\n\r\n"
    )
    pbx.close()
    assert s.client.status()["last_error"] == "PBX main (127.0.0.1:5038) is shutting down"
    s.reactor.advance(0.5)
    assert len(s.endpoint.attempts) == 2, "retried on the normal back-off"


def test_no_fully_booted_times_out_with_a_clear_error() -> None:
    s = make(boot_timeout=30.0)
    s.client.start()
    pbx = s.endpoint.accept()
    (login,) = pbx.actions()
    pbx.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n")
    s.reactor.advance(30.0)
    assert pbx.transport.disconnecting
    pbx.close()
    assert "FullyBooted" in s.client.status()["last_error"]
    assert s.client.state == "disconnected"


# -- resync and listeners -------------------------------------------------------------------


def test_resync_snapshot_comes_first_and_held_events_follow_in_order() -> None:
    s = make()
    s.client.start()
    pbx = s.endpoint.accept()
    (login,) = pbx.actions()
    t0 = s.reactor.seconds()
    # Boot-time events arrive before FullyBooted (trace 11-restart-reconnect) ...
    pbx.send(
        f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n"
        "Event: ExtensionStatus\r\nExten: 1001\r\nContext: demo\r\n\r\n"
    )
    s.reactor.advance(1.0)
    pbx.send(FULLY_BOOTED)
    chans, queues = pbx.actions()
    s.reactor.advance(1.0)
    # ... and live events arrive between the resync answers.
    pbx.send("Event: Newchannel\r\nChannel: PJSIP/pstn-1\r\nUniqueid: 1.1\r\n\r\n")
    pbx.send(
        list_answer(
            chans.action_id or "",
            ["Event: CoreShowChannel\r\nChannel: PJSIP/1001-7\r\n"],
            "CoreShowChannelsComplete",
        )
    )
    s.reactor.advance(1.0)
    pbx.send("Event: Hangup\r\nChannel: PJSIP/pstn-1\r\nUniqueid: 1.1\r\n\r\n")
    assert s.listener.calls == [], "nothing is delivered before the snapshot"
    pbx.send(
        list_answer(
            queues.action_id or "",
            [
                "Event: QueueParams\r\nQueue: support\r\n",
                "Event: QueueMember\r\nQueue: support\r\nName: Anna\r\n",
            ],
            "QueueStatusComplete",
        )
    )
    assert s.listener.kinds() == [
        "resync",
        "event:ExtensionStatus",
        "event:Newchannel",
        "event:Hangup",
    ]
    _, snapshot, resync_at = s.listener.calls[0]
    assert isinstance(snapshot, ResyncSnapshot)
    assert snapshot.pbx == "main"
    assert [m["Channel"] for m in snapshot.channels] == ["PJSIP/1001-7"]
    assert [m.event for m in snapshot.queue_status] == ["QueueParams", "QueueMember"]
    assert snapshot.fully_booted["Uptime"] == "1396"
    assert resync_at == t0 + 3.0
    # Held events keep their own arrival times.
    assert [at for kind, _, at in s.listener.calls[1:]] == [t0, t0 + 2.0, t0 + 3.0]
    # Afterwards events go straight through.
    pbx.send("Event: Newstate\r\nChannel: PJSIP/1001-7\r\n\r\n")
    assert s.listener.kinds()[-1] == "event:Newstate"
    assert s.client.state == "connected"


def test_resync_without_app_queue_delivers_an_empty_queue_status() -> None:
    s = make()
    s.client.start()
    pbx = s.endpoint.accept()
    (login,) = pbx.actions()
    pbx.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n" + FULLY_BOOTED)
    chans, queues = pbx.actions()
    pbx.send(
        f"Response: Error\r\nActionID: {queues.action_id}\r\n"
        "Message: Invalid/unknown command: QueueStatus.\r\n\r\n"
    )
    pbx.send(list_answer(chans.action_id or "", [], "CoreShowChannelsComplete"))
    assert s.listener.kinds() == ["resync"]
    assert s.listener.calls[0][1].queue_status == []


def test_a_failing_listener_is_logged_and_isolated(json_log: io.StringIO) -> None:
    class Broken:
        def ami_event(self, msg: Message, received_at: float) -> None:
            raise RuntimeError(f"model bug on {msg.event}")

        def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
            raise KeyError("resync bug")

    s = make()
    s.client.add_listener(Broken())
    s.client.add_listener(Recorder())
    pbx = bring_up(s)
    pbx.send("Event: Newchannel\r\nChannel: x\r\n\r\nEvent: Hangup\r\nChannel: x\r\n\r\n")
    assert s.listener.kinds() == ["resync", "event:Newchannel", "event:Hangup"]
    last = s.client._listeners[-1]
    assert isinstance(last, Recorder)
    assert last.kinds() == ["resync", "event:Newchannel", "event:Hangup"]
    assert not pbx.transport.disconnecting
    assert s.client.state == "connected"
    failures = [line for line in log_lines(json_log) if line["event"] == "ami_listener_failed"]
    assert [(f["method"], f["listener"]) for f in failures] == [
        ("ami_resync", "test_a_failing_listener_is_logged_and_isolated.<locals>.Broken"),
        ("ami_event", "test_a_failing_listener_is_logged_and_isolated.<locals>.Broken"),
        ("ami_event", "test_a_failing_listener_is_logged_and_isolated.<locals>.Broken"),
    ]
    assert "Traceback" in failures[1]["exception"]
    assert "RuntimeError: model bug on Newchannel" in failures[1]["exception"]


def test_listener_with_only_some_methods() -> None:
    class OnlyEvents:
        def __init__(self) -> None:
            self.events: list[str | None] = []

        def ami_event(self, msg: Message, received_at: float) -> None:
            self.events.append(msg.event)

    s = make()
    only = OnlyEvents()
    s.client.add_listener(only)
    pbx = bring_up(s)
    pbx.send("Event: Newchannel\r\n\r\n")
    pbx.close()
    assert only.events == ["Newchannel"]


# -- losing the link and reconnecting ---------------------------------------------------------


def test_actions_in_flight_fail_and_are_never_resent() -> None:
    s = make()
    pbx = bring_up(s)
    originate = s.client.send_action(
        "Originate", {"Channel": "PJSIP/1001", "Exten": "0470123456"}, action_id="callback-42"
    )
    assert [a["Action"] for a in pbx.actions()] == ["Originate"]
    lost_at = s.reactor.seconds()
    pbx.close("connection reset")
    failures: list[Failure] = []
    originate.addErrback(failures.append)
    assert isinstance(failures[0].value, AMIConnectionLost)
    assert failures[0].value.action == "Originate"
    assert s.listener.calls[-1] == (
        "lost",
        "ConnectionDone: Connection was closed cleanly: connection reset.",
        lost_at,
    )
    # While down, actions fail at once and are not queued.
    down = s.client.send_action("Ping")
    errors: list[Failure] = []
    down.addErrback(errors.append)
    assert isinstance(errors[0].value, AMINotConnected)
    assert "main (127.0.0.1:5038)" in str(errors[0].value)
    # Back-off: the first retry comes after 0.5 s minus jitter, not at once.
    assert len(s.endpoint.attempts) == 1
    s.reactor.advance(0.5)
    assert len(s.endpoint.attempts) == 2
    pbx2 = s.endpoint.accept()
    (login,) = pbx2.actions()
    assert login["Action"] == "Login"
    pbx2.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n" + FULLY_BOOTED)
    finish_resync(pbx2)
    assert s.client.state == "connected"
    assert pbx2.actions() == [], "the Originate was not sent again"
    assert s.listener.kinds().count("resync") == 2
    assert s.client.status()["reconnect_attempts"] == 0


def test_shutdown_event_tells_listeners_and_reconnects() -> None:
    s = make()
    pbx = bring_up(s)
    pbx.send(
        "Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n"
        "Event: Hangup\r\nChannel: after-shutdown\r\n\r\n"
    )
    assert s.listener.kinds()[-2:] == ["event:Shutdown", "lost"]
    assert s.listener.calls[-1][1] == "PBX main (127.0.0.1:5038) shut down (restart)"
    assert pbx.transport.disconnecting
    pbx.close()
    assert s.listener.kinds().count("lost") == 1, "told once, not again on the close"
    assert s.client.state == "disconnected"
    s.reactor.advance(0.5)
    assert len(s.endpoint.attempts) == 2


def test_connection_refused_backs_off_capped_and_jittered() -> None:
    s = make(backoff=Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.25, rng=random.Random(7)))
    s.client.start()
    times = [s.reactor.seconds()]
    for _ in range(12):
        s.endpoint.refuse()
        while len(s.endpoint.attempts) == len(times):
            s.reactor.advance(0.01)
        times.append(s.reactor.seconds())
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    # Reference values: base * (1 - 0.25 * r) with r from random.Random(7), computed apart.
    reference = random.Random(7)
    expected = []
    for attempt in range(1, 13):
        base = min(30.0, 0.5 * 2.0 ** (attempt - 1))
        expected.append(base * (1 - 0.25 * reference.random()))
    assert gaps == pytest.approx(expected, abs=0.011)
    assert max(gaps) <= 30.0
    assert gaps[-1] >= 30.0 * 0.75
    assert s.client.status()["reconnect_attempts"] == 12
    assert "nobody listening" in s.client.status()["last_error"]


def test_backoff_delays() -> None:
    backoff = Backoff(initial=1.0, factor=2.0, cap=10.0, jitter=0.5, rng=random.Random(3))
    delays = [backoff.delay(n) for n in range(1, 200)]
    assert all(d <= 10.0 for d in delays)
    assert delays[0] <= 1.0
    assert all(5.0 <= d <= 10.0 for d in delays[10:])
    assert len({round(d, 6) for d in delays[10:]}) > 100, "jittered, not in lock-step"
    assert Backoff(jitter=0.0).delay(10_000) == 30.0  # no overflow for huge attempt counts


def test_keepalive_timeout_drops_and_reconnects() -> None:
    s = make(ping_interval=20.0, ping_timeout=5.0)
    pbx = bring_up(s)
    s.reactor.advance(20.0)
    (ping,) = pbx.actions()
    assert ping["Action"] == "Ping"
    s.reactor.advance(5.0)
    assert pbx.transport.disconnecting
    pbx.close()
    assert s.listener.calls[-1][:2] == (
        "lost",
        "keep-alive: nothing received for 25 s (no answer to Ping within 5 s)",
    )
    s.reactor.advance(0.5)
    assert len(s.endpoint.attempts) == 2


def test_stop_logs_off_and_does_not_reconnect() -> None:
    s = make()
    pbx = bring_up(s)
    stopped = s.client.stop()
    assert [a["Action"] for a in pbx.actions()] == ["Logoff"]
    assert pbx.transport.disconnecting
    assert not stopped.called
    pbx.close()
    assert stopped.called
    s.reactor.advance(3600.0)
    assert len(s.endpoint.attempts) == 1
    assert s.client.state == "stopped"


def test_when_connected() -> None:
    s = make()
    ready = s.client.when_connected()
    assert not ready.called
    bring_up(s)
    assert ready.called
    assert s.client.when_connected().called
    s2 = make()
    s2.client.start()
    late = s2.client.when_connected(timeout=5.0)
    errors: list[Failure] = []
    late.addErrback(errors.append)
    s2.reactor.advance(5.0)
    assert errors, "when_connected(timeout) gives up"


# -- status and secrets ------------------------------------------------------------------------


def test_status_for_healthz() -> None:
    s = make()
    assert s.client.status()["state"] == "stopped"
    pbx = bring_up(s)
    s.reactor.advance(2.0)
    pbx.send("Event: Newchannel\r\n\r\n")
    status = s.client.status()
    assert status == {
        "pbx": "main",
        "host": "127.0.0.1",
        "port": 5038,
        "username": "cti",
        "state": "connected",
        "connected": True,
        "since": "2026-11-26T23:16:40+00:00",
        "last_error": None,
        "reconnect_attempts": 0,
        "next_attempt_at": None,
        "last_event_at": "2026-11-26T23:16:42+00:00",
        "events_skipped": 0,
        "banner": "Asterisk Call Manager/11.0.0",
    }
    json.dumps(status)
    pbx.close()
    status = s.client.status()
    assert (status["state"], status["connected"]) == ("disconnected", False)
    assert status["next_attempt_at"] is not None
    assert status["last_error"].startswith("link to PBX main (127.0.0.1:5038) lost")


def test_the_secret_never_reaches_a_log_line(json_log: io.StringIO) -> None:
    account = AMIAccount("main", "127.0.0.1", 5038, "cti", SECRET)
    assert SECRET not in repr(account)
    for auth in ("plain", "md5"):
        s = make(auth=auth)
        s.client.start()
        pbx = s.endpoint.accept()
        if auth == "md5":
            pbx.actions()
            pbx.send("Response: Success\r\nActionID: cti-1\r\nChallenge: 139252470\r\n\r\n")
        (login,) = pbx.actions()
        pbx.send(
            f"Response: Error\r\nActionID: {login.action_id}\r\n"
            f"Message: Authentication failed\r\n\r\n"
        )
        pbx.close()
        s.reactor.advance(120.0)
    text = json_log.getvalue()
    sent = [line for line in log_lines(json_log) if line["event"] == "ami_action_sent"]
    logins = [line for line in sent if line["action"] == "Login"]
    assert len(logins) == 2
    assert logins[0]["headers"]["Secret"] == "***"
    assert logins[1]["headers"]["Key"] == "***"
    assert SECRET not in text
    assert "044ff2d96cb1033996e8feffbef34570" not in text
    assert "ami_login_refused" in text


def test_auth_error_text_has_no_secret() -> None:
    account = AMIAccount("main", "pbx.example", 5038, "cti", SECRET)
    err = AMIAuthError(account, "Authentication failed")
    assert str(err) == (
        "AMI login refused for user 'cti' on PBX main (pbx.example:5038): Authentication failed"
    )
    assert SECRET not in repr(err) and SECRET not in str(err.args)


def test_send_action_refuses_line_breaks_through_the_deferred() -> None:
    s = make()
    bring_up(s)
    d = s.client.send_action("Originate", {"CallerID": "Piet\r\nAction: Hangup"})
    errors: list[Failure] = []
    d.addErrback(errors.append)
    assert isinstance(errors[0].value, ValueError)


def test_account_refuses_unknown_auth() -> None:
    with pytest.raises(ValueError, match="auth"):
        AMIAccount("main", "127.0.0.1", 5038, "cti", SECRET, auth="sha1")


# -- what the parser builds, and delivery --------------------------------------------------


class Wanting(Recorder):
    def __init__(self, events: frozenset[str] | None, variables: frozenset[str] | None = None):
        super().__init__()
        self.wanted_events = events
        self.wanted_variables = variables


def test_only_events_some_listener_wants_are_parsed_and_delivered() -> None:
    s = make()
    s.client.remove_listener(s.listener)
    hangups = Wanting(frozenset({"Hangup", "VarSet"}), frozenset({"CTI_*"}))
    s.client.add_listener(hangups)
    pbx = bring_up(s)  # FullyBooted and the lists got through: the client's own
    assert pbx.proto.wanted is s.client.wanted and s.client.wanted is not None
    pbx.send(
        "Event: Newexten\r\nChannel: x\r\n\r\n"
        "Event: Hangup\r\nChannel: x\r\n\r\n"
        "Event: VarSet\r\nVariable: BRIDGEPEER\r\n\r\n"
        "Event: VarSet\r\nVariable: CTI_AGREEMENT_ID\r\n\r\n"
        "Event: DialBegin\r\nActionID: someone-elses\r\n\r\n"
    )
    assert hangups.kinds() == ["resync", "event:Hangup", "event:VarSet", "event:DialBegin"]
    assert s.client.status()["events_skipped"] == 2
    # A listener that wants everything (it declares nothing) turns the filter off at once,
    # on the live link.
    s.client.add_listener(s.listener)
    assert s.client.wanted is None and pbx.proto.wanted is None
    pbx.send("Event: Newexten\r\nChannel: x\r\n\r\n")
    assert hangups.kinds()[-1] == "event:Newexten"
    assert s.listener.kinds() == ["event:Newexten"]
    s.client.remove_listener(s.listener)
    pbx.send("Event: Newexten\r\nChannel: y\r\n\r\n")
    assert hangups.kinds()[-1] == "event:Newexten"  # the one before: this one was skipped
    assert s.client.status()["events_skipped"] == 3


def test_shutdown_is_seen_by_the_client_whatever_the_listeners_want() -> None:
    s = make()
    s.client.remove_listener(s.listener)
    only = Wanting(frozenset({"Hangup"}))
    s.client.add_listener(only)
    pbx = bring_up(s)
    pbx.send("Event: Shutdown\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n")
    assert only.kinds()[-2:] == ["event:Shutdown", "lost"]
    assert pbx.transport.disconnecting


def test_the_filter_holds_for_the_next_connection_and_counts_over_links() -> None:
    s = make()
    s.client.remove_listener(s.listener)
    s.client.add_listener(Wanting(frozenset({"Hangup"})))
    pbx = bring_up(s)
    pbx.send("Event: Newexten\r\n\r\n")
    pbx.close()
    s.reactor.advance(1.0)
    second = s.endpoint.accept()
    assert second.proto.wanted == s.client.wanted
    assert second.proto.wanted is not None and "Hangup" in second.proto.wanted.events
    assert s.client.status()["events_skipped"] == 1


def test_listeners_added_or_removed_during_delivery_take_effect_from_the_next_event() -> None:
    s = make()
    late = Recorder()

    class Juggler:
        def __init__(self) -> None:
            self.seen: list[str | None] = []

        def ami_event(self, msg: Message, received_at: float) -> None:
            self.seen.append(msg.event)
            if msg.event == "A":
                s.client.add_listener(late)
                s.client.remove_listener(s.listener)
                s.client.remove_listener(self)

    juggler = Juggler()
    s.client.add_listener(juggler)
    pbx = bring_up(s)
    pbx.send("Event: A\r\n\r\nEvent: B\r\n\r\n")
    assert juggler.seen == ["A"]
    assert s.listener.kinds() == ["resync", "event:A"]  # it was removed after A
    assert late.kinds() == ["event:B"]
