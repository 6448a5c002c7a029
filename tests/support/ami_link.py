"""A scripted PBX for AMIClient tests: a fake endpoint, the PBX side of each connection.

No sockets and no global reactor: the endpoint hands out AMIProtocols connected to
StringTransports, time is a MemoryReactorClock, and the "PBX" is whatever bytes the
test writes back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from cti_bridge.ami.client import AMIAccount, AMIClient, AMIListener, Backoff, ResyncSnapshot
from cti_bridge.ami.parser import AMIParser, Message
from cti_bridge.ami.protocol import AMIProtocol

SECRET = "s3cret-Ami!"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
FULLY_BOOTED = (
    "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 1396\r\nLastReload: 1122\r\n"
    "Status: Fully Booted\r\n\r\n"
)


@dataclass
class PBXSide:
    """One accepted connection, seen from the PBX."""

    proto: AMIProtocol
    transport: StringTransport
    parser: AMIParser = field(default_factory=lambda: AMIParser(expect_banner=False))

    def actions(self) -> list[Message]:
        data = self.transport.value()
        self.transport.clear()
        return self.parser.feed(data)

    def send(self, data: str | bytes) -> None:
        self.proto.dataReceived(data.encode() if isinstance(data, str) else data)

    def close(self, why: str = "closed by the PBX") -> None:
        self.proto.connectionLost(Failure(ConnectionDone(why)))


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    def __init__(self) -> None:
        self.attempts: list[tuple[Any, Deferred[Any]]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.attempts.append((factory, d))
        return d

    def accept(self, banner: bytes = BANNER) -> PBXSide:
        factory, d = self.attempts[-1]
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        d.callback(proto)
        side = PBXSide(proto, transport)
        side.send(banner)
        return side

    def refuse(self) -> None:
        self.attempts[-1][1].errback(ConnectionRefusedError("nobody listening"))


class Recorder(AMIListener):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, float]] = []

    def ami_event(self, msg: Message, received_at: float) -> None:
        self.calls.append(("event", msg, received_at))

    def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
        self.calls.append(("resync", snapshot, received_at))

    def ami_link_lost(self, reason: str, at: float) -> None:
        self.calls.append(("lost", reason, at))

    def kinds(self) -> list[str]:
        return [
            kind if kind != "event" else f"event:{payload.event}" for kind, payload, _ in self.calls
        ]


@dataclass
class Setup:
    reactor: MemoryReactorClock
    endpoint: FakeEndpoint
    client: AMIClient
    listener: Recorder


def make(auth: str = "plain", **kwargs: Any) -> Setup:
    reactor = MemoryReactorClock()
    reactor.advance(1_795_735_000.0)
    endpoint = FakeEndpoint()
    listener = Recorder()
    account = AMIAccount("main", "127.0.0.1", 5038, "cti", SECRET, auth=auth)
    kwargs.setdefault("backoff", Backoff(rng=random.Random(7)))
    client = AMIClient(reactor, account, endpoint=endpoint, listeners=[listener], **kwargs)
    return Setup(reactor, endpoint, client, listener)


def list_answer(action_id: str, items: list[str], complete: str) -> str:
    out = f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\n\r\n"
    for item in items:
        out += f"{item}ActionID: {action_id}\r\n\r\n"
    out += (
        f"Event: {complete}\r\nActionID: {action_id}\r\nEventList: Complete\r\n"
        f"ListItems: {len(items)}\r\n\r\n"
    )
    return out


def bring_up(s: Setup, channels: list[str] | None = None) -> PBXSide:
    """Connect, log in (plain), boot and resync with the given CoreShowChannel items."""
    s.client.start()
    pbx = s.endpoint.accept()
    (login,) = pbx.actions()
    pbx.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n" + FULLY_BOOTED)
    finish_resync(pbx, channels)
    assert s.client.state == "connected"
    return pbx


def finish_resync(pbx: PBXSide, channels: list[str] | None = None) -> None:
    chans, queues = pbx.actions()
    assert (chans["Action"], queues["Action"]) == ("CoreShowChannels", "QueueStatus")
    items = [f"Event: CoreShowChannel\r\nChannel: {c}\r\n" for c in channels or []]
    pbx.send(list_answer(chans.action_id or "", items, "CoreShowChannelsComplete"))
    pbx.send(
        list_answer(
            queues.action_id or "",
            ["Event: QueueParams\r\nQueue: support\r\n"],
            "QueueStatusComplete",
        )
    )
