"""The supervisors' ``agents_update`` batches: every operator marked in an interval in
one message (a few a second per socket, whatever the helpdesk's size), each as they are
when it is sent, bounded in size, and none lost; beside them the per-operator
``agent_update`` (PRODUCT's contract, and the operator's own screen) as before. And who
gets which: a supervisor's socket opened with ``agents=batched`` the batches, any other
the ``agent_update``s."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

from twisted.internet.task import Clock

from cti_bridge.bus.memory import MemoryBus
from cti_bridge.bus.topics import (
    SUPERVISOR_AGENT_BATCHES_TOPIC,
    SUPERVISOR_AGENTS_TOPIC,
    SUPERVISORS_TOPIC,
    operator_topic,
)
from cti_bridge.queues.live import Account
from cti_bridge.queues.pushes import MAX_AGENTS_PER_BATCH, PUSH_INTERVAL, SupervisorPushes
from cti_bridge.queues.service import Supervision
from cti_bridge.web.ws import socket_options
from tests.support.screens import ANNA, SOFIE, open_socket, supervised_rig


class Rig:
    """The pushes over a roster of ``count`` operators whose state is a table here."""

    def __init__(self, count: int = 5, *, batch_size: int = MAX_AGENTS_PER_BATCH) -> None:
        self.clock = Clock()
        self.bus = MemoryBus(self.clock)
        self.state = {f"op{n:03d}": "available" for n in range(count)}
        self.broken: set[str] = set()
        self.built: list[str] = []
        roster = {u: Account(u, u.title(), (), n + 1) for n, u in enumerate(self.state)}
        no_queues = SimpleNamespace(board=SimpleNamespace(pbxs=lambda: []))
        supervision = SimpleNamespace(roster=roster, agent_json=self.agent_json, view=no_queues)
        self.pushes = SupervisorPushes(
            cast(Supervision, supervision), self.bus, self.clock, batch_size=batch_size
        )
        self.batches: list[list[dict[str, Any]]] = []
        self.unsubscribe = self.bus.subscribe(
            SUPERVISOR_AGENT_BATCHES_TOPIC, lambda m: self.batches.append(m["agents"])
        )

    def agent_json(self, account: Account) -> dict[str, Any]:
        if account.operator in self.broken:
            raise RuntimeError("this operator's view cannot be built")
        self.built.append(account.operator)
        return {"operator": account.operator, "state": self.state[account.operator]}

    def change(self, username: str, state: str) -> None:
        self.state[username] = state
        self.pushes.mark_agent(username)

    def sent(self) -> list[list[dict[str, Any]]]:
        self.clock.advance(0)  # the bus delivers on the next turn
        sent, self.batches = self.batches, []
        return sent


def test_a_burst_of_changes_is_one_message_per_interval_with_the_latest_state() -> None:
    rig = Rig()
    rig.change("op000", "ringing")  # the first at once
    assert rig.sent() == [[{"operator": "op000", "state": "ringing"}]]
    for state in ("on_call", "wrap_up"):  # inside the window: they wait for its end
        for username in ("op001", "op002", "op000"):
            rig.change(username, state)
            rig.clock.advance(PUSH_INTERVAL / 10)
    assert rig.sent() == []
    rig.clock.advance(PUSH_INTERVAL)
    # One message, each operator once, as they are now, in the order first marked.
    assert rig.sent() == [
        [
            {"operator": "op001", "state": "wrap_up"},
            {"operator": "op002", "state": "wrap_up"},
            {"operator": "op000", "state": "wrap_up"},
        ]
    ]
    rig.clock.advance(10 * PUSH_INTERVAL)
    assert rig.sent() == []  # nothing changed: nothing sent


def test_an_operator_changed_and_back_within_the_window_is_not_sent_again() -> None:
    rig = Rig()
    rig.change("op000", "ringing")
    rig.sent()
    rig.change("op000", "on_call")
    rig.change("op000", "ringing")  # as last pushed
    rig.change("op001", "paused")
    rig.clock.advance(PUSH_INTERVAL)
    assert rig.sent() == [[{"operator": "op001", "state": "paused"}]]


def test_a_batch_holds_at_most_batch_size_operators_and_loses_none() -> None:
    rig = Rig(250, batch_size=100)
    for username in rig.state:
        rig.change(username, "ringing")  # the first goes at once, the rest wait
    rig.clock.advance(PUSH_INTERVAL)
    sent = rig.sent()
    assert [len(batch) for batch in sent] == [1, 100, 100, 49]
    names = [agent["operator"] for batch in sent for agent in batch]
    assert sorted(names) == sorted(rig.state)  # every changed operator exactly once
    assert {agent["state"] for batch in sent for agent in batch} == {"ringing"}


def test_every_operator_changed_in_a_long_burst_is_shown_in_its_last_state() -> None:
    """Nothing lost: whatever the interleaving, after the burst each operator's last
    state is the last one the batches carried for them."""
    rig = Rig(40)
    shown: dict[str, str] = {}
    states = ["ringing", "on_call", "wrap_up", "available", "paused"]
    for step in range(400):
        rig.change(f"op{(step * 7) % 40:03d}", states[step % 5])
        rig.clock.advance(0.013)
        for batch in rig.sent():
            shown.update({a["operator"]: a["state"] for a in batch})
    rig.clock.advance(PUSH_INTERVAL)
    for batch in rig.sent():
        shown.update({a["operator"]: a["state"] for a in batch})
    assert shown == rig.state


def test_the_per_operator_agent_update_goes_on_as_before_and_is_built_once() -> None:
    """The operator's own screen and a supervisor without batches get one
    ``agent_update`` each; the batch reuses the view built for it (no second build)."""
    rig = Rig(2)
    own: list[dict[str, Any]] = []
    legacy: list[dict[str, Any]] = []
    rig.bus.subscribe(operator_topic(1), own.append)
    rig.bus.subscribe(SUPERVISOR_AGENTS_TOPIC, legacy.append)
    rig.change("op000", "ringing")
    assert rig.sent() == [[{"operator": "op000", "state": "ringing"}]]
    assert (
        own
        == legacy
        == [{"type": "agent_update", "agent": {"operator": "op000", "state": "ringing"}}]
    )
    assert rig.built == ["op000"]  # for the three of them
    rig.change("op001", "paused")  # another operator's: not on op000's own topic
    rig.clock.advance(PUSH_INTERVAL)
    assert rig.sent() == [[{"operator": "op001", "state": "paused"}]]
    assert [m["agent"]["operator"] for m in legacy] == ["op000", "op001"]
    assert len(own) == 1
    assert rig.pushes.pushed == {"queue_update": 0, "agent_update": 2, "agents_update": 2}


def test_one_operator_whose_view_fails_costs_only_that_operator() -> None:
    rig = Rig(3)
    rig.broken.add("op001")
    rig.change("op000", "ringing")
    rig.change("op001", "ringing")
    rig.change("op002", "ringing")
    rig.clock.advance(PUSH_INTERVAL)
    assert [a["operator"] for batch in rig.sent() for a in batch] == ["op000", "op002"]
    rig.broken.clear()
    rig.change("op001", "on_call")
    rig.clock.advance(PUSH_INTERVAL)
    assert rig.sent() == [[{"operator": "op001", "state": "on_call"}]]


def test_no_batch_is_built_while_no_screen_asked_for_them() -> None:
    rig = Rig(2)
    rig.unsubscribe()
    rig.change("op000", "ringing")
    rig.clock.advance(PUSH_INTERVAL)
    assert rig.built == []  # no supervisor, no operator screen: nothing built at all
    rig.bus.subscribe(SUPERVISOR_AGENT_BATCHES_TOPIC, lambda m: rig.batches.append(m["agents"]))
    rig.change("op001", "paused")
    rig.clock.advance(PUSH_INTERVAL)
    assert rig.sent() == [[{"operator": "op001", "state": "paused"}]]
    rig.pushes.sweep()  # op000 was never sent to anyone: a sweep brings it
    rig.clock.advance(PUSH_INTERVAL)
    assert rig.sent() == [[{"operator": "op000", "state": "ringing"}]]


def test_a_supervisor_socket_gets_agent_update_unless_it_asked_for_batches() -> None:
    clock, bus, _tokens, hub = supervised_rig()
    plain = open_socket(hub, SOFIE, "t-sofie")[1]
    batched = open_socket(hub, SOFIE, "t-sofie", {"agents": "batched"})[1]
    other = open_socket(hub, SOFIE, "t-sofie", {"agents": "something else"})[1]
    operator = open_socket(hub, ANNA, "t-anna", {"agents": "batched"})[1]
    bus.publish(SUPERVISORS_TOPIC, {"type": "queue_update"})
    bus.publish(SUPERVISOR_AGENTS_TOPIC, {"type": "agent_update"})
    bus.publish(SUPERVISOR_AGENT_BATCHES_TOPIC, {"type": "agents_update", "agents": []})
    clock.advance(0)
    assert [m["type"] for m in plain.sent] == ["hello", "queue_update", "agent_update"]
    assert [m["type"] for m in other.sent] == ["hello", "queue_update", "agent_update"]
    assert [m["type"] for m in batched.sent] == ["hello", "queue_update", "agents_update"]
    assert [m["type"] for m in operator.sent] == ["hello"]  # no supervisors' pushes


def test_a_sockets_options_are_its_query_but_the_token_bounded() -> None:
    args = {b"token": [b"secret"], b"agents": [b"batched", b"twice"], b"x" * 100: [b"y" * 100]}
    args.update({f"k{n}".encode(): [b"v"] for n in range(20)})
    options = socket_options(cast(Any, SimpleNamespace(args=args)))
    assert "token" not in options and "secret" not in json.dumps(options)
    assert options["agents"] == "batched"
    assert len(options) == 8
    assert all(len(k) <= 64 and len(v) <= 64 for k, v in options.items())
