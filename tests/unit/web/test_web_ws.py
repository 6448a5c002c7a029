"""The screen socket: what it accepts from a browser, that it ends with its token
(re-checked by the hub for all its sockets in one call per interval), and where a feature
adds the topics a screen listens on and the messages it answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any, cast

import pytest
import structlog.testing
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from wsproto.utilities import LocalProtocolError

from cti_bridge.bus import Bus, MemoryBus
from cti_bridge.web.ws import SESSION_ENDED, Hub, ScreenSocket
from tests.support.screens import (
    ANNA,
    SOFIE,
    FakeTransport,
    Tokens,
    open_socket,
    rig,
    supervised_rig,
)


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

    def __call__(self, tokens: Collection[str]) -> Deferred[set[str]]:
        self.calls.append((self.clock.seconds(), set(tokens)))
        if self.tokens.broken:
            return fail(RuntimeError("database unreachable"))
        if self.hold:
            d: Deferred[set[str]] = Deferred()
            self.held.append(d)
            return d
        return succeed({t for t in tokens if t in self.tokens.alive})


def batched_rig(phases: list[float], *, hold: bool = False) -> tuple[Clock, Tokens, Batches, Hub]:
    clock = Clock()
    tokens = Tokens()
    batches = Batches(clock, tokens, hold=hold)
    spread = iter(phases)
    hub = Hub(
        clock,
        MemoryBus(clock),
        tokens,
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
    assert hub.status() == {"sockets": 4, "token_checks": 3, "too_slow": 0}
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
    _clock, _bus, _tokens, hub = supervised_rig()  # watch is the queues room's
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


# -- where a feature adds ---------------------------------------------------------------


class RecordingBus:
    """A bus that notes, in order, what the sockets subscribe to and publish."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def subscribe(
        self, topic: str, handler: Callable[[dict[str, Any]], None]
    ) -> Callable[[], None]:
        self.calls.append(("subscribe", topic))
        return lambda: self.calls.append(("unsubscribe", topic))

    def subscribe_text(self, topic: str, handler: Callable[[str], None]) -> Callable[[], None]:
        return self.subscribe(topic, lambda message: None)

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        self.calls.append(("publish", topic))


def test_a_topic_rule_adds_topics_before_the_replay_is_asked() -> None:
    clock = Clock()
    bus = RecordingBus()
    hub = Hub(clock, cast(Bus, bus), Tokens())
    hub.add_topic_rule(lambda who: ["wall", "operator.7"] if who.role == "operator" else ())
    hub.add_topic_rule(lambda who: [f"desk.{who.username}"])
    socket, transport = open_socket(hub, ANNA, "t-anna")
    assert bus.calls == [
        ("subscribe", "operator.7"),  # the hub's own first; a rule naming it again adds nothing
        ("subscribe", "wall"),
        ("subscribe", "desk.anna"),
        ("publish", "pop.replay"),
    ]
    assert [m["type"] for m in transport.sent] == ["hello"]
    socket.connectionLost(None)  # type: ignore[arg-type]
    assert sorted(bus.calls[4:]) == [
        ("unsubscribe", "desk.anna"),
        ("unsubscribe", "operator.7"),
        ("unsubscribe", "wall"),
    ]
    bus.calls.clear()
    open_socket(hub, SOFIE, "t-sofie")
    assert bus.calls == [
        ("subscribe", "operator.9"),
        ("subscribe", "desk.sofie"),
        ("publish", "pop.replay"),
    ]


def test_a_rule_topic_reaches_the_screen() -> None:
    clock, bus, _tokens, hub = rig()
    hub.add_topic_rule(lambda who: ["wall"] if who.sees_everything else ())
    _anna, anna = open_socket(hub, ANNA, "t-anna")
    _sofie, sofie = open_socket(hub, SOFIE, "t-sofie")
    bus.publish("wall", {"type": "wall_update"})
    clock.advance(0)
    assert [m["type"] for m in anna.sent] == ["hello"]
    assert [m["type"] for m in sofie.sent] == ["hello", "wall_update"]


def test_a_handler_gets_its_messages_and_the_rest_stays_as_it_was() -> None:
    _clock, _bus, _tokens, hub = rig()
    got: list[tuple[str, dict[str, Any]]] = []

    def echo(socket: ScreenSocket, message: dict[str, Any]) -> None:
        got.append((socket.principal.username, message))
        socket.send({"type": "echoed", "n": message.get("n")})

    hub.add_message_handler("echo", echo)
    socket, transport = open_socket(hub, ANNA, "t-anna")
    socket.textMessageReceived(json.dumps({"type": "echo", "n": 1}))
    for text in (
        json.dumps({"type": "dance"}),
        json.dumps({"type": "watch", "username": "anna"}),  # no queues room on this hub
        json.dumps({"type": ["echo"]}),
        json.dumps({"type": None}),
        json.dumps({"n": 2}),
        json.dumps({"type": "ping"}),
    ):
        socket.textMessageReceived(text)
    assert got == [("anna", {"type": "echo", "n": 1})]
    assert transport.sent[1:] == [
        {"type": "echoed", "n": 1},
        *[{"type": "error", "error": "unknown message type"}] * 5,
        {"type": "pong"},
    ]


def test_a_message_type_is_taken_once_and_ping_is_the_hubs() -> None:
    _clock, _bus, _tokens, hub = rig()

    def nothing(socket: ScreenSocket, message: dict[str, Any]) -> None:
        pass

    hub.add_message_handler("echo", nothing)
    with pytest.raises(ValueError, match="'echo' is taken"):
        hub.add_message_handler("echo", nothing)
    with pytest.raises(ValueError, match="'ping' is taken"):
        hub.add_message_handler("ping", nothing)


class ClosingTransport(FakeTransport):
    """Twisted's transport between the browser's close frame and ``connectionLost``:
    wsproto refuses to send."""

    def sendTextMessage(self, text: str) -> None:
        raise LocalProtocolError("cannot be sent in state ConnectionState.CLOSED")


def test_a_push_to_a_closing_socket_is_dropped_quietly() -> None:
    clock, bus, _tokens, hub = rig()
    socket, transport = open_socket(hub, ANNA, "t-anna")
    socket.transport = cast(Any, ClosingTransport())
    with structlog.testing.capture_logs() as logged:
        bus.publish("operator.7", {"type": "phone_status"})
        clock.advance(0)
    assert [e["event"] for e in logged if e["log_level"] == "error"] == []
    assert [m["type"] for m in transport.sent] == ["hello"]
