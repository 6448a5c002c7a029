"""Two nodes on one memory bus and one clock: an owner with a fake live state (its
``SnapshotAnswerer``) and a web node whose ``Supervision`` serves the relayed view. The
web node's answers equal the owner's; it says ``live: false`` until a snapshot; a
missed push is repaired by the snapshot that a reconnect or a silence asks for."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from cti_bridge.bus.memory import MemoryBus
from cti_bridge.bus.topics import (
    QUEUES_SNAPSHOT_REQUEST_TOPIC,
    SUPERVISOR_AGENTS_TOPIC,
    SUPERVISORS_TOPIC,
)
from cti_bridge.queues.live import Account, LiveView
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.queues.relay import (
    ANSWER_SECONDS,
    HEARTBEAT_SECONDS,
    SILENCE_SECONDS,
    RelayedView,
    SnapshotAnswerer,
)
from cti_bridge.queues.service import Supervision

ACCOUNTS = [Account("anna", "Anna", ("PJSIP/1001",), 1), Account("bart", "Bart", (), 2)]


def queue(name: str, state: str = "available", waits: tuple[int, ...] = ()) -> dict[str, Any]:
    return {
        "pbx": "main",
        "name": name,
        "waiting": [
            {
                "call_id": None,
                "linkedid": f"{name}.{i}",
                "caller_number": "+3250123456",
                "caller_withheld": False,
                "position": i + 1,
                "wait_seconds": w,
            }
            for i, w in enumerate(waits)
        ],
        "longest_wait_seconds": max(waits, default=0),
        "members": [
            {
                "operator": "anna",
                "device": "PJSIP/1001",
                "interface": "PJSIP/1001",
                "name": "Anna",
                "state": state,
                "paused": False,
                "paused_reason": None,
                "state_since": "2026-12-03T10:00:00+00:00",
                "wrap_up_until": None,
                "calls_taken": 3,
            }
        ],
        "today": {"offered": 4, "answered": 3},
    }


def agent(account: Account, state: str = "available") -> dict[str, Any]:
    return {
        "operator": account.operator,
        "name": account.name,
        "devices": list(account.devices),
        "state": state,
        "paused_reason": None,
        "state_since": None if state == "unavailable" else "2026-12-03T10:00:00+00:00",
        "queues": ["support"],
        "pbx": ["main"],
        "phones": [],
        "current_call": None,
        "calls_today": 2,
        "talk_seconds_today": 80.0,
    }


class Owner:
    """The owner's live state as its ``Supervision`` shows it (GET and pushes alike)."""

    def __init__(self, bus: MemoryBus, clock: Clock):
        self.bus = bus
        self.clock = clock
        self.queue_views = {"support": queue("support", waits=(12,)), "sales": queue("sales")}
        self.agent_views = {a.operator: agent(a) for a in ACCOUNTS}
        self.roster = {a.operator: a for a in ACCOUNTS}
        self.ids: dict[tuple[str, str], int] = {}
        self.view = self
        self.owned = ["main"]
        self.answerer = SnapshotAnswerer(
            cast(Supervision, self), bus, clock, node="owner", owns=lambda: self.owned
        )

    def queues(self, ids: object = None) -> list[dict[str, Any]]:
        return [dict(q) for _, q in sorted(self.queue_views.items())]

    def queue_json(self, pbx: str, name: str) -> dict[str, Any]:
        return dict(self.queue_views[name])

    def agent_json(self, account: Account) -> dict[str, Any]:
        return dict(self.agent_views[account.operator])

    def change(self, name: str, state: str, *, pushed: bool = True) -> None:
        """A member's change, pushed (or lost on the way) as SupervisorPushes would."""
        self.queue_views[name] = queue(name, state)
        self.agent_views["anna"] = agent(ACCOUNTS[0], state)
        if pushed:
            self.bus.publish(
                SUPERVISORS_TOPIC, {"type": "queue_update", "queue": queue(name, state)}
            )
            self.bus.publish(
                SUPERVISOR_AGENTS_TOPIC,
                {"type": "agent_update", "agent": self.agent_views["anna"]},
            )


class Kpis:
    """The web node's own KPI part: today's figures from the same records as the owner."""

    def today(self, queues: list[str]) -> Deferred[dict[str, dict[str, Any]]]:
        return succeed({q: {"offered": 9, "answered": 8} for q in queues})

    def operators_today(self) -> Deferred[dict[str, dict[str, Any]]]:
        return succeed({"anna": {"calls_today": 5, "talk_seconds_today": 300.0}})


class WebNode:
    def __init__(self, bus: MemoryBus, clock: Clock, kpis: object | None = None):
        board = MembersBoard(clock.seconds)
        view = LiveView(board, {}, clock.seconds)
        self.supervision = Supervision(
            view,
            lambda work: succeed(work()),
            load_accounts=lambda: list(ACCOUNTS),
            kpis=lambda: kpis,
        )
        self.relay = RelayedView(bus, clock, ["main"], node="web")
        self.supervision.relay = self.relay

    def queues(self) -> list[dict[str, Any]]:
        queues: list[dict[str, Any]] = _value(self.supervision.queues())
        return queues

    def agents(self) -> list[dict[str, Any]]:
        agents: list[dict[str, Any]] = _value(self.supervision.agents())
        return agents

    def agent(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = _value(self.supervision.agent(name))
        return found


def _value(d: Deferred[Any]) -> Any:
    found: list[Any] = []
    d.addCallback(found.append)
    assert found, "not synchronous"
    return found[0]


class Reconnecting(MemoryBus):
    """The memory bus with the Redis bus's ``connected`` callbacks."""

    def __init__(self, clock: Clock):
        super().__init__(clock)
        self.connected: list[Any] = []


def two_nodes() -> tuple[Clock, Reconnecting, Owner, WebNode]:
    clock = Clock()
    clock.advance(1_000_000)
    bus = Reconnecting(clock)
    owner = Owner(bus, clock)
    web = WebNode(bus, clock)
    owner.answerer.start()
    web.relay.start()  # asks at once
    clock.advance(0)  # the request, then the answer, delivered
    clock.advance(0)
    return clock, bus, owner, web


def test_the_web_nodes_answers_equal_the_owners() -> None:
    _clock, _bus, owner, web = two_nodes()
    assert web.relay.live == {"main": True}
    assert web.queues() == owner.queues()
    assert web.agents() == [owner.agent_json(a) for a in ACCOUNTS]
    assert web.agent("bart") == owner.agent_json(ACCOUNTS[1])
    assert web.agent("nobody") is None


def test_pushes_keep_the_relayed_view_current_and_waits_move_on() -> None:
    clock, _bus, owner, web = two_nodes()
    owner.change("support", "on_call")
    clock.advance(0)
    assert web.queues() == owner.queues()
    assert web.agent("anna") == owner.agent_json(ACCOUNTS[0])
    owner.queue_views["sales"] = queue("sales", waits=(5,))
    owner.bus.publish(
        SUPERVISORS_TOPIC, {"type": "queue_update", "queue": queue("sales", waits=(5,))}
    )
    clock.advance(0)
    clock.advance(3)
    (sales,) = [q for q in web.queues() if q["name"] == "sales"]
    assert sales["waiting"][0]["wait_seconds"] == 8 and sales["longest_wait_seconds"] == 8


def test_stale_until_the_snapshot_arrives() -> None:
    clock = Clock()
    bus = Reconnecting(clock)
    web = WebNode(bus, clock)
    web.relay.start()
    clock.advance(0)  # asked; nobody owns the PBX yet
    assert web.queues() == []
    assert all(a["live"] is False and a["state"] == "unavailable" for a in web.agents())
    # A push arrives before any snapshot: shown, but not as live.
    bus.publish(SUPERVISORS_TOPIC, {"type": "queue_update", "queue": queue("support")})
    clock.advance(0)
    (support,) = web.queues()
    assert support["live"] is False
    owner = Owner(bus, clock)
    owner.answerer.start()
    clock.advance(HEARTBEAT_SECONDS)  # the relay asks again while stale
    clock.advance(0)
    clock.advance(0)
    assert web.relay.live == {"main": True}
    assert web.queues() == owner.queues() and all("live" not in q for q in web.queues())


def test_a_missed_message_is_repaired_by_the_snapshot_after_a_reconnect() -> None:
    clock, bus, owner, web = two_nodes()
    owner.change("support", "paused", pushed=False)  # published while Redis was away
    del owner.queue_views["sales"]  # and a queue went away meanwhile
    clock.advance(0)
    assert web.queues() != owner.queues()
    asked: list[dict[str, Any]] = []
    bus.subscribe(QUEUES_SNAPSHOT_REQUEST_TOPIC, asked.append)
    for callback in bus.connected:  # the bus subscribed anew
        callback()
    assert web.relay.live == {"main": False}
    assert all(q.get("live") is False for q in web.queues())
    clock.advance(0)
    assert asked == [{"node": "web"}]
    clock.advance(ANSWER_SECONDS)  # a snapshot went out a moment ago: the next one
    clock.advance(0)
    assert web.relay.live == {"main": True}
    assert web.queues() == owner.queues()
    assert web.agent("anna") == owner.agent_json(ACCOUNTS[0])


def test_a_silent_owner_makes_the_view_stale_and_asks_again() -> None:
    clock, _bus, owner, web = two_nodes()
    owner.answerer.stop()  # the owner died: no heartbeat, no answers
    for _ in range(int(SILENCE_SECONDS / HEARTBEAT_SECONDS * 2) + 2):
        clock.advance(HEARTBEAT_SECONDS / 2)
    assert web.relay.live == {"main": False}
    requests = web.relay.requests
    assert all(q["live"] is False for q in web.queues())
    # A new owner takes over: its snapshot makes the view live again.
    owner.change("support", "on_call", pushed=False)
    owner.answerer = SnapshotAnswerer(
        cast(Supervision, owner), owner.bus, clock, node="owner2", owns=lambda: ["main"]
    )
    owner.answerer.start()
    clock.advance(HEARTBEAT_SECONDS)
    clock.advance(0)
    clock.advance(0)
    assert web.relay.requests > requests
    assert web.relay.live == {"main": True}
    assert web.queues() == owner.queues()


def test_many_requests_at_once_share_one_snapshot_and_a_later_one_gets_its_own() -> None:
    clock, bus, owner, _web = two_nodes()
    assert owner.answerer.answered == 1
    for node in ("web", "web2", "web3"):
        bus.publish(QUEUES_SNAPSHOT_REQUEST_TOPIC, {"node": node})
    clock.advance(0)
    assert owner.answerer.answered == 1  # one was sent just now: the next one comes later
    clock.advance(ANSWER_SECONDS)
    assert owner.answerer.answered == 2


def test_todays_figures_are_read_where_the_question_is_asked() -> None:
    clock = Clock()
    bus = MemoryBus(clock)
    owner = Owner(bus, clock)
    web = WebNode(bus, clock, kpis=Kpis())
    owner.answerer.start()
    web.relay.start()
    clock.advance(0)
    clock.advance(0)
    assert {q["name"]: q["today"] for q in web.queues()} == {
        "sales": {"offered": 9, "answered": 8},
        "support": {"offered": 9, "answered": 8},
    }
    totals = {a["operator"]: (a["calls_today"], a["talk_seconds_today"]) for a in web.agents()}
    assert totals == {"anna": (5, 300.0), "bart": (0, 0.0)}


def test_a_heartbeat_keeps_a_quiet_pbx_live() -> None:
    clock, _bus, _owner, web = two_nodes()
    for _ in range(20):
        clock.advance(HEARTBEAT_SECONDS / 2)
    assert web.relay.live == {"main": True}
    assert web.relay.snapshots == 1


def test_a_node_serves_the_pbxs_it_owns_from_its_own_board() -> None:
    clock = Clock()
    bus = MemoryBus(clock)
    web = WebNode(bus, clock)
    web.relay.owns = lambda: ["main"]
    web.relay.start()
    bus.publish(SUPERVISORS_TOPIC, {"type": "queue_update", "queue": queue("support")})
    clock.advance(0)
    assert web.queues() == []  # its own (empty) board, not what it heard
