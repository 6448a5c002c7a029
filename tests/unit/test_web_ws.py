"""The screen socket: what it accepts from a browser, and that it ends with its token."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from cti_bridge.bus import MemoryBus
from cti_bridge.web.auth import Principal
from cti_bridge.web.ws import SESSION_ENDED, Hub, ScreenSocket

ANNA = Principal(7, "anna", "operator", ("PJSIP/1001",))
SOFIE = Principal(9, "sofie", "supervisor")


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pings = 0
        self.closed: int | None = None

    def sendTextMessage(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def ping(self, payload: bytes = b"") -> None:
        self.pings += 1

    def loseConnection(self, code: int = 1000) -> None:
        self.closed = code


class Tokens:
    """Which tokens are alive; ``broken`` makes the lookup fail like a database outage."""

    def __init__(self) -> None:
        self.alive: dict[str, Principal] = {"t-anna": ANNA, "t-sofie": SOFIE}
        self.broken = False

    def __call__(self, token: str) -> Deferred[Principal | None]:
        if self.broken:
            return fail(RuntimeError("database unreachable"))
        return succeed(self.alive.get(token))


def rig() -> tuple[Clock, MemoryBus, Tokens, Hub]:
    clock = Clock()
    bus = MemoryBus(clock)
    tokens = Tokens()
    hub = Hub(
        clock,
        bus,
        tokens,
        lambda name: succeed(7 if name == "anna" else None),
        ping_interval=25,
        spread=lambda: 0.5,  # first ping after exactly one interval
    )
    return clock, bus, tokens, hub


def open_socket(hub: Hub, principal: Principal, token: str) -> tuple[ScreenSocket, FakeTransport]:
    socket = ScreenSocket(hub, principal, token)
    transport = FakeTransport()
    socket.negotiationStarted(transport)  # type: ignore[arg-type]
    socket.negotiationFinished()
    return socket, transport


def test_a_socket_ends_when_its_token_does() -> None:
    clock, bus, tokens, hub = rig()
    socket, transport = open_socket(hub, ANNA, "t-anna")
    clock.advance(25)
    assert (transport.pings, transport.closed) == (1, None)
    del tokens.alive["t-anna"]  # logged out, expired or deactivated
    clock.advance(25)
    assert transport.closed == SESSION_ENDED
    assert transport.sent[-1] == {"type": "session_ended"}
    socket.connectionLost(None)  # type: ignore[arg-type]
    bus.publish("operator.7", {"type": "screen_pop"})
    clock.advance(0)
    assert [m["type"] for m in transport.sent] == ["hello", "session_ended"]
    assert hub.sockets == set()


def test_a_database_hiccup_does_not_close_screens() -> None:
    clock, _bus, tokens, hub = rig()
    _socket, transport = open_socket(hub, ANNA, "t-anna")
    tokens.broken = True
    clock.advance(25)
    clock.advance(25)
    assert transport.closed is None and transport.pings == 2


def test_screens_opened_together_are_checked_spread_over_the_interval() -> None:
    clock = Clock()
    bus = MemoryBus(clock)
    checked: list[float] = []

    def resolve(token: str) -> Deferred[Principal | None]:
        checked.append(clock.seconds())
        return succeed(ANNA)

    phases = iter([0.0, 0.25, 0.5, 0.75, 0.95])
    hub = Hub(
        clock,
        bus,
        resolve,
        lambda name: succeed(None),
        ping_interval=20,
        spread=lambda: next(phases),
    )
    sockets = [open_socket(hub, ANNA, "t-anna") for _ in range(5)]
    clock.pump([1.0] * 30)
    assert checked[:5] == [10.0, 15.0, 20.0, 25.0, 29.0]  # not five at once at t=20
    clock.pump([1.0] * 20)
    assert checked[5:10] == [30.0, 35.0, 40.0, 45.0, 49.0]  # then each every 20 s
    socket, transport = sockets[0]
    socket.connectionLost(None)  # type: ignore[arg-type]
    pings = transport.pings
    clock.pump([1.0] * 40)
    assert transport.pings == pings


def test_a_socket_closed_before_its_first_ping_is_never_pinged() -> None:
    clock, _bus, _tokens, hub = rig()
    socket, transport = open_socket(hub, ANNA, "t-anna")
    socket.connectionLost(None)  # type: ignore[arg-type]
    clock.pump([5.0] * 20)
    assert transport.pings == 0 and clock.getDelayedCalls() == []


def test_what_a_browser_may_send() -> None:
    _clock, _bus, _tokens, hub = rig()
    socket, transport = open_socket(hub, ANNA, "t-anna")
    for text in ("not json", "[1]", json.dumps({"type": "dance"}), "x" * 5000):
        socket.textMessageReceived(text)
    socket.textMessageReceived(json.dumps({"type": "watch", "username": "bart"}))
    socket.textMessageReceived(json.dumps({"type": "ping"}))
    errors = [m.get("error") for m in transport.sent[1:]]
    assert errors == [
        "not JSON",
        "expected an object",
        "unknown message type",
        "message too long",
        "only supervisors may watch",
        None,
    ]
    assert transport.sent[-1] == {"type": "pong"}


def test_a_supervisor_watches_an_operator() -> None:
    clock, bus, _tokens, hub = rig()
    socket, transport = open_socket(hub, SOFIE, "t-sofie")
    socket.textMessageReceived(json.dumps({"type": "watch", "username": "nobody"}))
    socket.textMessageReceived(json.dumps({"type": "watch", "username": "anna"}))
    bus.publish("operator.7", {"type": "screen_pop", "call_id": 1})
    bus.publish("operator.8", {"type": "screen_pop", "call_id": 2})
    clock.advance(0)
    kinds = [(m["type"], m.get("call_id") or m.get("error")) for m in transport.sent]
    assert kinds == [
        ("hello", None),
        ("error", "no such operator"),
        ("watching", None),
        ("screen_pop", 1),
    ]
