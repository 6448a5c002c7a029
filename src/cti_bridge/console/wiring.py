"""``install(node)``: the console's endpoints on the node's web."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from cti_bridge.callbacks import AGREEMENTS_CHANGED

from .http import add_routes
from .service import Console

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["install"]


def _pops_of(node: Node, operator_id: int) -> list[tuple[str, str]]:
    """The calls popped on the operator's screen now, if this node runs the pop engine
    (its part ``pops_on_screen``: the rooms meet through the node, never by import)."""
    pops_of = node.parts.get("pops_on_screen")
    return list(pops_of(operator_id)) if callable(pops_of) else []


def install(node: Node) -> None:
    console = Console(
        node.store,
        node.run,
        clock=node.reactor.seconds,
        policy=node.config.dialer.policy(),
        default_service_hours=node.config.agreements.default_service_hours,
        call_history=node.config.web.call_history,
        ringing=lambda operator_id: _pops_of(node, operator_id),
    )
    # The dialer (when on) looks at an agreement made or changed here at once.
    console.agreement_listeners.append(partial(node.notify, AGREEMENTS_CHANGED))
    add_routes(node.http, console)
    node.provide("console", console)
