"""Recorded Asterisk 22 traces replayed through the protocol and the client.

The recorded bytes are fed unchanged, except that the recorder's ActionIDs
(``login``, ``qstatus-1``, ...) are rewritten to the ones our client chose, exactly
where they occur: the PBX echoes whatever ActionID it was sent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from cti_bridge.ami.client import AMIAccount, AMIClient, Backoff, ResyncSnapshot
from cti_bridge.ami.parser import AMIParser, Message, parse_stream
from cti_bridge.ami.protocol import (
    ActionResult,
    AMIActionError,
    AMIProtocol,
    CommandOutput,
)
from tests.support.paths import TRACES


def read(name: str) -> bytes:
    return (TRACES / name).read_bytes()


def split_after(data: bytes, count: int) -> tuple[bytes, bytes]:
    """(banner + the first ``count`` messages, the rest), cut at a message boundary."""
    pos = data.index(b"\r\n") + 2  # the banner line
    for _ in range(count):
        pos = data.index(b"\r\n\r\n", pos) + 4
        while data.startswith(b"\r\n", pos):
            pos += 2
    return data[:pos], data[pos:]


def rename_ids(data: bytes, ids: dict[str, str]) -> bytes:
    for old, new in ids.items():
        data = data.replace(f"ActionID: {old}\r\n".encode(), f"ActionID: {new}\r\n".encode())
    return data


# -- through the protocol ---------------------------------------------------------------------


def protocol() -> tuple[AMIProtocol, StringTransport, list[Message]]:
    proto = AMIProtocol(Clock())
    events: list[Message] = []
    proto.on_event = lambda msg, at: events.append(msg)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, events


def fired(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "not answered"
    return out[0]


def test_09_every_list_and_command_of_the_status_trace() -> None:
    proto, _, events = protocol()
    d = {
        name: proto.send_action(action, action_id=name)
        for name, action in [
            ("ping-1", "Ping"),
            ("qstatus-1", "QueueStatus"),
            ("qstatus-support", "QueueStatus"),
            ("qsummary-1", "QueueSummary"),
            ("coreshowchannels-1", "CoreShowChannels"),
            ("status-1", "Status"),
            ("listcommands-1", "ListCommands"),
            ("ping-2", "Ping"),
        ]
    }
    cmd1 = proto.command("core show channels")
    cmd2 = proto.command("queue show support")
    proto.dataReceived(
        rename_ids(read("09-queue-status.ami"), {"command-1": "cti-1", "command-2": "cti-2"})
    )
    results = {name: fired(x) for name, x in d.items()}
    assert all(isinstance(r, ActionResult) for r in results.values()), results
    qs = results["qstatus-1"]
    assert [m.event for m in qs.items] == [
        "QueueParams",
        "QueueMember",
        "QueueMember",
        "QueueEntry",
        "QueueParams",
        "QueueMember",
        "QueueMember",
    ]
    assert qs.complete["ListItems"] == "7"
    assert qs.items[2]["PausedReason"] == "Opleiding"
    assert len(results["qstatus-support"].items) == 4
    assert [m["Queue"] for m in results["qsummary-1"].items] == ["support", "sales"]
    assert len(results["coreshowchannels-1"].items) == 6
    assert len(results["status-1"].items) == 6
    assert "QueueStatus" in results["listcommands-1"].response
    out1, out2 = fired(cmd1), fired(cmd2)
    assert isinstance(out1, CommandOutput) and isinstance(out2, CommandOutput)
    assert any("active channel" in line for line in out1.lines)
    assert out2.lines[0].startswith("support has 1 calls")
    # 188 events minus 30 list messages (23 items + 7 ends) reach the live stream.
    assert len(events) == 158
    assert not any(m.event in ("QueueParams", "QueueMember", "QueueEntry") for m in events)


def test_13_crlf_injection_through_the_protocol() -> None:
    proto, _, events = protocol()
    d = proto.send_action("QueueStatus", {"Queue": "support"}, action_id="qstatus-crlf")
    proto.dataReceived(read("13-hostile-callerid-crlf-injection.ami"))
    result = fired(d)
    assert isinstance(result, ActionResult)
    assert [m.event for m in result.items] == ["QueueParams", "QueueMember", "QueueMember"]
    hangups = [m for m in events if m.event == "Hangup"]
    forged = [m for m in hangups if m.get("Channel") == "Local/1001@agents-00000999;1"]
    # The list's forged half is dropped. The one forged through Newexten AppData has no
    # ActionID and cannot be told apart here: the call model must ignore a Hangup for a
    # channel it never saw (see the trace README).
    assert len(forged) == 1 and forged[0].action_id is None
    assert not any(m.event == "QueueEntry" for m in events)
    assert len(events) == 153 - 3 - 1 - 2  # items, the end, the two halves of #96/#97


def test_14_login_failure_through_the_protocol() -> None:
    proto, _, _ = protocol()
    ping = proto.send_action("Ping", action_id="ping-before-login")
    login = proto.send_action(
        "Login", {"Username": "cti", "Secret": "wrong"}, action_id="login-bad"
    )
    proto.dataReceived(read("14-login-failure.ami"))
    assert fired(ping).value.message == "Permission denied"
    err = fired(login).value
    assert isinstance(err, AMIActionError)
    assert err.message == "Authentication failed"


# -- through the client ---------------------------------------------------------------------


@implementer(IStreamClientEndpoint)
class OneShotEndpoint:
    def __init__(self) -> None:
        self.pending: list[tuple[Any, Deferred[Any]]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append((factory, d))
        return d


@dataclass
class Replay:
    reactor: MemoryReactorClock
    client: AMIClient
    endpoint: OneShotEndpoint
    calls: list[tuple[str, Any]] = field(default_factory=list)
    proto: AMIProtocol | None = None
    transport: StringTransport | None = None

    def ami_event(self, msg: Message, received_at: float) -> None:
        self.calls.append(("event", msg))

    def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
        self.calls.append(("resync", snapshot))

    def ami_link_lost(self, reason: str, at: float) -> None:
        self.calls.append(("lost", reason))

    def accept(self) -> None:
        factory, d = self.endpoint.pending[-1]
        self.proto = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        d.callback(self.proto)

    def sent(self) -> list[Message]:
        assert self.transport is not None
        data = self.transport.value()
        self.transport.clear()
        return AMIParser(expect_banner=False).feed(data)

    def feed(self, data: bytes) -> None:
        assert self.proto is not None
        self.proto.dataReceived(data)

    def close(self) -> None:
        assert self.proto is not None
        self.proto.connectionLost(Failure(ConnectionDone("closed by the PBX")))

    @property
    def events(self) -> list[Message]:
        return [payload for kind, payload in self.calls if kind == "event"]


def replay(auth: str = "plain", secret: str = "s3cret") -> Replay:
    reactor = MemoryReactorClock()
    endpoint = OneShotEndpoint()
    account = AMIAccount("main", "127.0.0.1", 5038, "cti", secret, auth=auth)
    client = AMIClient(reactor, account, endpoint=endpoint, backoff=Backoff(rng=random.Random(5)))
    r = Replay(reactor, client, endpoint)
    client.add_listener(r)
    client.start()
    r.accept()
    return r


def resync_from_the_reconnect_trace(r: Replay) -> None:
    """Answer our CoreShowChannels/QueueStatus with the recorded resync (#22-#31)."""
    chans, queues = r.sent()
    _, lists = split_after(read("11-restart-reconnect.ami"), 21)
    lists, _ = split_after(b"banner\r\n" + lists, 10)
    lists = lists[len(b"banner\r\n") :]
    r.feed(
        rename_ids(
            lists,
            {
                "resync-queuestatus": queues.action_id or "",
                "resync-channels": chans.action_id or "",
            },
        )
    )


def test_11_reconnect_trace_resyncs_and_delivers_boot_events_after_the_snapshot() -> None:
    # With the recorder's list ActionIDs left as they are, nothing matches our lists:
    # their items are dropped and nothing is delivered before a snapshot.
    r = replay()
    r.sent()
    r.feed(read("11-restart-reconnect.ami").replace(b"ActionID: login\r\n", b"ActionID: cti-1\r\n"))
    assert r.calls == []
    assert r.client.state == "resyncing"

    # Rewritten: the trace answers QueueStatus before CoreShowChannels, the other way
    # round from how we asked.
    r2 = replay()
    r2.sent()
    data = rename_ids(
        read("11-restart-reconnect.ami"),
        {"login": "cti-1", "resync-channels": "cti-2", "resync-queuestatus": "cti-3"},
    )
    r2.feed(data)
    kinds = [kind for kind, _ in r2.calls]
    assert kinds[0] == "resync"
    snapshot = r2.calls[0][1]
    assert snapshot.channels == []
    assert [m.event for m in snapshot.queue_status] == [
        "QueueParams",
        "QueueMember",
        "QueueMember",
        "QueueParams",
        "QueueMember",
        "QueueMember",
    ]
    assert snapshot.fully_booted["Uptime"] == "0"
    held = [m.event for m in r2.events]
    expected = [m.event for m in parse_stream(read("11-restart-reconnect.ami"))[1:20]]
    assert held == expected  # #2-#20: SuccessfulAuth, MessageWaiting, ... in order
    assert len(held) == 19
    assert r2.client.state == "connected"


def test_11_shutdown_trace_ends_with_link_lost() -> None:
    r = replay()
    r.sent()
    data = read("11-restart-shutdown.ami").replace(b"ActionID: login\r\n", b"ActionID: cti-1\r\n")
    head, rest = split_after(data, 2)  # Login response, FullyBooted
    r.feed(head)
    resync_from_the_reconnect_trace(r)
    assert [kind for kind, _ in r.calls] == ["resync"]
    r.feed(rest)
    assert r.calls[-2][0] == "event" and r.calls[-2][1].event == "Shutdown"
    assert r.calls[-1] == ("lost", "PBX main (127.0.0.1:5038) shut down (restart)")
    assert len(r.events) == 237 - 1  # every event but the FullyBooted of the snapshot
    assert r.transport is not None and r.transport.disconnecting
    r.close()
    assert r.client.state == "disconnected"
    assert [kind for kind, _ in r.calls].count("lost") == 1


def test_14_login_failure_trace_gives_the_auth_error() -> None:
    r = replay(auth="plain", secret="wrong")
    (login,) = r.sent()
    assert login["Action"] == "Login"
    r.feed(rename_ids(read("14-login-failure.ami"), {"login-bad": login.action_id or ""}))
    r.close()  # "Then the server closes the connection."
    status = r.client.status()
    assert status["last_error"] == (
        "AMI login refused for user 'cti' on PBX main (127.0.0.1:5038): Authentication failed"
    )
    assert status["state"] == "disconnected"
    assert r.calls == []
    r.reactor.advance(44.0)
    assert len(r.endpoint.pending) == 1, "no quick retry after a refused login"


def test_14_md5_challenge_trace_logs_in() -> None:
    r = replay(auth="md5", secret="s3cret")
    (challenge,) = r.sent()
    head, rest = split_after(read("14-login-md5-challenge.ami"), 1)
    r.feed(rename_ids(head, {"challenge-1": challenge.action_id or ""}))
    (login,) = r.sent()
    assert login["Key"] == "0e514c0f0f0e2a4ff7cf4e102c9c32d8"  # md5("139252470s3cret")
    r.feed(rename_ids(b"banner\r\n" + rest, {"login-md5": login.action_id or ""})[8:])
    assert r.client.state == "resyncing"  # logged in, FullyBooted seen, lists asked
    assert [a["Action"] for a in r.sent()] == ["CoreShowChannels", "QueueStatus"]


LIVE_TRACES = sorted(
    str(p.relative_to(TRACES))
    for p in TRACES.rglob("*.ami")
    if p.name[:2] not in ("09", "11", "13", "14")  # no lists of their own, a normal login
)


@pytest.mark.parametrize("name", LIVE_TRACES)
def test_live_events_reach_listeners_in_order_and_complete(name: str) -> None:
    r = replay()
    r.sent()
    data = read(name).replace(b"ActionID: login\r\n", b"ActionID: cti-1\r\n")
    head, rest = split_after(data, 2)
    r.feed(head)
    resync_from_the_reconnect_trace(r)
    for i in range(0, len(rest), 1400):  # TCP-sized reads
        r.feed(rest[i : i + 1400])
    parsed = parse_stream(read(name))
    expected = [m for m in parsed[2:] if m.event is not None]
    assert [dict(m) for m in r.events] == [dict(m) for m in expected]
    assert r.client.state == "connected"
