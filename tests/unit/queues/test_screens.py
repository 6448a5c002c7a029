"""A supervisor's screen: the ``supervisors`` topic from the start, and watching an
operator (``{"type": "watch", "username": ...}``), as the queues room adds them to the hub."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import cast

import structlog
from twisted.internet.defer import Deferred, fail

from cti_bridge import queues
from cti_bridge.app.config import parse_config
from cti_bridge.app.health import Health
from cti_bridge.app.node import Node
from cti_bridge.bus.topics import POP_REPLAY_TOPIC, SUPERVISORS_TOPIC
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.queues.screens import add_supervisor_screens
from cti_bridge.web.auth import Principal
from tests.support.screens import ANNA, SOFIE, anna_only, open_socket, rig, supervised_rig

ADMIN = Principal(3, "ad", "admin")


def test_a_supervisor_watches_an_operator() -> None:
    clock, bus, _tokens, hub = supervised_rig()
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


def test_supervisors_and_admins_listen_on_the_supervisors_topic_operators_do_not() -> None:
    clock, bus, _tokens, hub = supervised_rig()
    screens = {who.username: open_socket(hub, who, "t")[1] for who in (ANNA, SOFIE, ADMIN)}
    bus.publish(SUPERVISORS_TOPIC, {"type": "queue_update"})
    clock.advance(0)
    assert {name: [m["type"] for m in t.sent] for name, t in screens.items()} == {
        "anna": ["hello"],
        "sofie": ["hello", "queue_update"],
        "ad": ["hello", "queue_update"],
    }


def test_watching_asks_for_the_operators_ringing_pops_again() -> None:
    clock, bus, _tokens, hub = supervised_rig()
    replays: list[dict[str, object]] = []
    bus.subscribe(POP_REPLAY_TOPIC, replays.append)
    socket, transport = open_socket(hub, SOFIE, "t-sofie")
    clock.advance(0)
    assert replays == [{"operator_id": 9}]  # her own, at connect (the hub's)
    socket.textMessageReceived(json.dumps({"type": "watch", "username": "anna"}))
    clock.advance(0)
    assert replays == [{"operator_id": 9}, {"operator_id": 7}]
    assert transport.sent[-1] == {"type": "watching", "username": "anna"}


def test_watch_needs_a_username() -> None:
    _clock, _bus, _tokens, hub = supervised_rig()
    socket, transport = open_socket(hub, SOFIE, "t-sofie")
    for message in (
        {"type": "watch"},
        {"type": "watch", "username": ""},
        {"type": "watch", "username": 7},
        {"type": "watch", "username": ["anna"]},
    ):
        socket.textMessageReceived(json.dumps(message))
    assert transport.sent[1:] == [{"type": "error", "error": "watch needs a username"}] * 4


def test_a_failed_lookup_is_logged_and_the_socket_stays() -> None:
    def broken(username: str) -> Deferred[int | None]:
        return fail(RuntimeError("database unreachable"))

    _clock, _bus, _tokens, hub = rig()
    add_supervisor_screens(hub, broken)
    socket, transport = open_socket(hub, SOFIE, "t-sofie")
    with structlog.testing.capture_logs() as logs:
        socket.textMessageReceived(json.dumps({"type": "watch", "username": "anna"}))
    assert [m["type"] for m in transport.sent] == ["hello"]
    assert logs == [
        {"event": "operator lookup failed", "error": "database unreachable", "log_level": "error"}
    ]
    socket.textMessageReceived(json.dumps({"type": "ping"}))
    assert transport.sent[-1] == {"type": "pong"}


def test_install_adds_the_supervisors_part_to_the_nodes_hub() -> None:
    clock, bus, _tokens, hub = rig()
    parts: dict[str, object] = {}
    node = SimpleNamespace(
        hub=hub,
        bus=bus,
        accounts=SimpleNamespace(operator_id_for=anna_only),
        # What the members board takes from the node: no PBX here, nothing to start.
        reactor=clock,
        pipelines={},
        clients={},
        run=None,
        on_start=lambda hook: None,
        on_stop=lambda hook: None,
        health=Health(),
        provide=parts.__setitem__,
        # What the KPIs take: the config and a web to add their routes to.
        config=parse_config({}),
        http=SimpleNamespace(route=lambda *args, **kwargs: lambda handler: handler),
    )
    queues.install(cast(Node, node))
    assert isinstance(parts["members"], MembersBoard)
    socket, transport = open_socket(hub, SOFIE, "t-sofie")
    socket.textMessageReceived(json.dumps({"type": "watch", "username": "anna"}))
    bus.publish(SUPERVISORS_TOPIC, {"type": "agent_update"})
    clock.advance(0)
    assert [m["type"] for m in transport.sent] == ["hello", "watching", "agent_update"]


def test_without_the_room_a_bare_hub_knows_no_supervisors() -> None:
    clock, bus, _tokens, hub = rig()
    socket, transport = open_socket(hub, SOFIE, "t-sofie")
    socket.textMessageReceived(json.dumps({"type": "watch", "username": "anna"}))
    bus.publish(SUPERVISORS_TOPIC, {"type": "queue_update"})
    clock.advance(0)
    assert transport.sent[1:] == [{"type": "error", "error": "unknown message type"}]
