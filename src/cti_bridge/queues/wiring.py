"""``install(node)``: the supervisors' part of the screens' WebSocket (``screens.py``) and
the live members board (``members.py``, ``operators.py``, fed by ``feed.py``).

Per PBX link a ``MembersFeed`` listens (the ``QueueStatus`` snapshot of every reconnect,
the queue and device events); the board is ``node.part("members", MembersBoard)``, and
it implements the dialer's ``OperatorBoard`` port (``operator_states(pbx)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .feed import MembersFeed, OperatorDevices
from .kpi_service import install_kpis
from .members import QueueMembers
from .operators import MembersBoard
from .screens import add_supervisor_screens

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["install"]

#: Seconds between reloads of the device -> operator map.
OPERATOR_RELOAD_SECONDS = 60.0


def install(node: Node) -> None:
    """The supervisors' topic and ``watch`` on the node's hub; the members board. The
    live queues, agents, KPIs, their endpoints and pushes (a later issue) are added
    here too."""
    add_supervisor_screens(node.hub, node.accounts.operator_id_for)
    board = MembersBoard(node.reactor.seconds)
    feeds: dict[str, MembersFeed] = {}
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
    install_kpis(node)
