"""``install(node)``: the supervisors' part of the screens' WebSocket (``screens.py``) and
the live members board (``members.py``, ``operators.py``, fed by ``feed.py``).

Per PBX link a ``MembersFeed`` listens (the ``QueueStatus`` snapshot of every reconnect,
the queue and device events); the board is ``node.part("members", MembersBoard)``, and
it implements the dialer's ``OperatorBoard`` port (``operator_states(pbx)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog
from twisted.internet.task import LoopingCall

from .callers import QueueCallers
from .current import CurrentCalls
from .feed import CallersFeed, MembersFeed, OperatorDevices
from .kpi_service import install_kpis
from .live import Account, LiveView
from .members import QueueMembers
from .operators import MembersBoard
from .pushes import SupervisorPushes
from .relay import RelayedView, SnapshotAnswerer
from .routes import add_routes
from .screens import add_supervisor_screens
from .service import SendAction, Supervision
from .wallboard import add_wallboard
from .workload import install_workload

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["install"]

log = structlog.get_logger("cti_bridge.queues")

#: Seconds between reloads of the device -> operator map.
OPERATOR_RELOAD_SECONDS = 60.0
#: Seconds between the pushes' sweeps (a wrap-up that ran out, a reloaded roster) and
#: between reloads of the agents' roster and today's figures for the pushes.
SWEEP_SECONDS = 5.0
ROSTER_RELOAD_SECONDS = 60.0


def install(node: Node) -> None:
    """The supervisors' topic and ``watch`` on the node's hub; the members board; the
    waiting callers; the calls each device is on; ``GET /api/queues``, ``GET
    /api/agents`` (and one agent), the pause reasons, pause and unpause; the
    ``queue_update``/``agent_update`` pushes."""
    add_supervisor_screens(node.hub, node.accounts.operator_id_for)
    board = MembersBoard(node.reactor.seconds)
    feeds: dict[str, MembersFeed] = {}
    callers: dict[str, QueueCallers] = {}
    caller_feeds: dict[str, CallersFeed] = {}
    links: dict[str, tuple[Callable[[], bool], SendAction]] = {}
    for pbx, pipeline in node.pipelines.items():
        members = QueueMembers(pbx, topology=pipeline.model.topology)
        board.add(members)
        client = node.clients.get(pbx)
        feed = MembersFeed(
            members,
            board,
            node.reactor,
            send_action=client.send_action if client is not None else None,
        )
        node.add_listener(feed, pbx=pbx)
        feeds[pbx] = feed
        callers[pbx] = QueueCallers(pbx)
        caller_feeds[pbx] = CallersFeed(callers[pbx])
        node.add_listener(caller_feeds[pbx], pbx=pbx)
        if client is not None:
            links[pbx] = (_is_up(client), client.send_action)

    def load_operators() -> dict[str, str]:
        # Looked up at each reload, not at install (a test node may have no accounts).
        return node.store.accounts.device_operators()

    devices = OperatorDevices(
        board,
        load_operators,
        node.run,
        node.reactor,
        interval=OPERATOR_RELOAD_SECONDS,
    )
    node.on_start(devices.start)
    node.on_stop(devices.stop)

    def status() -> dict[str, Any]:
        return {
            "pbx": {pbx: feed.status() for pbx, feed in feeds.items()},
            "operators": board.status()["operators"],
            "operator_reloads": devices.reloads,
            "operator_reload_failures": devices.failures,
        }

    node.health.add("members", status, counts=False)
    node.provide("members", board)

    view = LiveView(board, callers, node.reactor.seconds, region=node.config.phone.default_region)
    current = CurrentCalls()
    for pipeline in node.pipelines.values():
        pipeline.add_consumer(current.feed)
    view.current_calls = current

    def load_accounts() -> list[Account]:
        return [
            Account(o.username, o.name, tuple(o.devices), o.id)
            for o in node.store.accounts.list_operators()
            if o.active
        ]

    def call_ids(pbx: str, linkedids: Iterable[str]) -> dict[str, int]:
        return node.store.calls.call_ids(pbx, linkedids)

    supervision = Supervision(
        view,
        node.run,
        load_accounts=load_accounts,
        call_ids=call_ids,
        kpis=lambda: node.parts.get("kpis"),
        links=links,
    )
    pushes = SupervisorPushes(supervision, node.bus, node.reactor)
    board.watchers.append(pushes.members_changed)
    current.changed.append(pushes.calls_changed)
    for feed_of_callers in caller_feeds.values():
        feed_of_callers.changed = pushes.callers_changed
    add_routes(node.http, supervision, node.config.queues.pause_reasons)
    _install_relay(node, supervision)

    sweep = LoopingCall(pushes.sweep)
    sweep.clock = node.reactor

    def reload() -> Any:
        def failed(failure: Any) -> None:
            log.error("cannot load the agents' roster", error=failure.getErrorMessage())

        loading = supervision.reload_roster().addCallback(lambda _: supervision.refresh_today())
        return loading.addErrback(failed)

    roster = LoopingCall(reload)
    roster.clock = node.reactor

    def start() -> None:
        roster.start(ROSTER_RELOAD_SECONDS, now=True)
        sweep.start(SWEEP_SECONDS, now=False)

    def stop() -> None:
        for loop in (roster, sweep):
            if loop.running:
                loop.stop()
        pushes.stop()

    node.on_start(start)
    node.on_stop(stop)
    node.health.add(
        "supervision",
        lambda: {
            "pbx": {pbx: f.status() for pbx, f in caller_feeds.items()},
            "pushed": dict(pushes.pushed),
            "agents": len(supervision.roster),
        },
        counts=False,
    )
    node.provide("supervision", supervision)
    install_kpis(node)
    add_wallboard(node)
    install_workload(node)


def _install_relay(node: Node, supervision: Supervision) -> None:
    """With several nodes (a bus across them): an owner-capable node answers snapshot
    requests and beats; every node relays the PBXs it does not own (``relay.py``)."""
    if node.config.bus.url.startswith("memory://"):
        return  # one node: it owns every PBX, nothing to relay
    name = node.config.node.name
    if node.config.node.role != "web":
        answerer = SnapshotAnswerer(supervision, node.bus, node.reactor, node=name, owns=node.owns)
        node.on_start(answerer.start)
        node.on_stop(answerer.stop)
    relay = RelayedView(node.bus, node.reactor, node.pipelines, node=name, owns=node.owns)
    supervision.relay = relay
    node.on_start(relay.start)
    node.on_stop(relay.stop)
    node.health.add("relayed_queues", relay.status, counts=False)


def _is_up(client: Any) -> Callable[[], bool]:
    return lambda: bool(client.state == "connected")
