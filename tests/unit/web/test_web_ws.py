"""The screen socket: what it accepts from a browser, and that it ends with its token
(re-checked by the hub for all its sockets in one call per interval)."""

from __future__ import annotations

import json
from collections.abc import Collection
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


class Batches:
    """``valid_tokens``: notes each call (when, which tokens); answers now, or holds."""

    def __init__(self, clock: Clock, tokens: Tokens, *, hold: bool = False) -> None:
        self.clock, self.tokens, self.hold = clock, tokens, hold
        self.calls: list[tuple[float, set[str]]] = []
        self.held: list[Deferred[set[str]]] = []

    def __call__(self, asked: Collection[str]) -> Deferred[set[str]]:
        self.calls.append((self.clock.seconds(), set(asked)))
        if self.tokens.broken:
            return fail(RuntimeError("database unreachable"))
        if self.hold:
            d: Deferred[set[str]] = Deferred()
            self.held.append(d)
            return d
        return succeed({t for t in asked if t in self.tokens.alive})


def batched_rig(phases: list[float], *, hold: bool = False) -> tuple[Clock, Tokens, Batches, Hub]:
    clock = Clock()
    tokens = Tokens()
    batches = Batches(clock, tokens, hold=hold)
    spread = iter(phases)
    hub = Hub(
        clock,
        MemoryBus(clock),
        tokens,
        lambda name: succeed(None),
        ping_interval=20,
        spread=lambda: next(spread),
        valid_tokens=batches,
    )
    return clock, tokens, batches, hub


def test_screens_opened_together_are_pinged_spread_over_the_interval() -> None:
    clock, _tokens, _batches, hub = batched_rig([0.0, 0.25, 0.5, 0.75, 0.95])
    sockets = [open_socket(hub, ANNA, "t-anna") for _ in range(5)]
    pinged: list[float] = []
    for _ in range(50):
        before = sum(t.pings for _, t in sockets)
        clock.advance(1.0)
        pinged += [clock.seconds()] * (sum(t.pings for _, t in sockets) - before)
    assert pinged[:5] == [10.0, 15.0, 20.0, 25.0, 29.0]  # not five at once at t=20
    assert pinged[5:10] == [30.0, 35.0, 40.0, 45.0, 49.0]  # then each every 20 s
    socket, transport = sockets[0]
    socket.connectionLost(None)  # type: ignore[arg-type]
    pings = transport.pings
    clock.pump([1.0] * 40)
    assert transport.pings == pings


def test_the_tokens_of_all_screens_are_checked_in_one_call_per_interval() -> None:
    clock, tokens, batches, hub = batched_rig([0.0, 0.3, 0.6, 0.9])
    anna = [open_socket(hub, ANNA, "t-anna") for _ in range(2)]  # two tabs, one token
    sofie = open_socket(hub, SOFIE, "t-sofie")
    clock.advance(5)
    tokens.alive["t-bart"] = ANNA
    bart = open_socket(hub, ANNA, "t-bart")
    clock.pump([1.0] * 55)
    # Every 20 s from the first socket, whatever the sockets' ping phases: one call each.
    assert batches.calls == [(t, {"t-anna", "t-sofie", "t-bart"}) for t in (20.0, 40.0, 60.0)]
    assert hub.status() == {"sockets": 4, "token_checks": 3}
    # Anna logs out just after the check at 60: both her tabs close at the next (80).
    del tokens.alive["t-anna"]
    clock.pump([1.0] * 19)
    assert [t.closed for _, t in anna] == [None, None]
    clock.advance(1.0)
    assert [t.closed for _, t in anna] == [SESSION_ENDED, SESSION_ENDED]
    assert [t.sent[-1] for _, t in anna] == [{"type": "session_ended"}] * 2
    assert sofie[1].closed is None and bart[1].closed is None
    for socket, _ in anna:
        socket.connectionLost(None)  # type: ignore[arg-type]
    clock.advance(20)
    assert batches.calls[-1] == (100.0, {"t-sofie", "t-bart"})
    # The last socket gone: no more checks, nothing left on the clock.
    for socket, _ in (sofie, bart):
        socket.connectionLost(None)  # type: ignore[arg-type]
    assert clock.getDelayedCalls() == []
    clock.advance(100)
    assert len(batches.calls) == 5


def test_a_slow_check_is_not_stacked_and_spares_screens_it_did_not_ask_about() -> None:
    clock, tokens, batches, hub = batched_rig([0.0, 0.0], hold=True)
    _anna, anna = open_socket(hub, ANNA, "t-anna")
    clock.advance(20)
    assert len(batches.calls) == 1
    tokens.alive["t-new"] = SOFIE
    _late, late = open_socket(hub, SOFIE, "t-new")  # opened while the check runs
    clock.advance(20)
    clock.advance(20)
    assert len(batches.calls) == 1  # still waiting for the database: no second job
    batches.held.pop().callback(set())  # the answer: t-anna has ended
    assert anna.closed == SESSION_ENDED and late.closed is None
    clock.advance(20)
    assert batches.calls[-1] == (80.0, {"t-anna", "t-new"})


def test_a_failed_batch_keeps_the_screens_and_asks_again() -> None:
    clock, tokens, batches, hub = batched_rig([0.5])
    _socket, transport = open_socket(hub, ANNA, "t-anna")
    tokens.broken = True
    clock.pump([20.0, 20.0])
    assert transport.closed is None and transport.pings == 2 and len(batches.calls) == 2
    tokens.broken = False
    del tokens.alive["t-anna"]
    clock.advance(20)
    assert transport.closed == SESSION_ENDED


def test_the_hub_stops_checking_when_stopped() -> None:
    clock, _tokens, batches, hub = batched_rig([0.5])
    open_socket(hub, ANNA, "t-anna")
    hub.stop()
    clock.pump([20.0] * 3)
    assert batches.calls == []


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
