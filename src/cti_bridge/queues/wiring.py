"""``install(node)``: the supervisors' part of the screens' WebSocket (``screens.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .screens import add_supervisor_screens

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["install"]


def install(node: Node) -> None:
    """The supervisors' topic and ``watch`` on the node's hub. The live queues, agents,
    KPIs, their endpoints and pushes (a later issue) are added here too."""
    add_supervisor_screens(node.hub, node.accounts.operator_id_for)
