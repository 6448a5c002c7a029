"""``/wallboard``: the supervisors' wall screen, a page of the web's static files
(``web/static/wallboard.html``, ``js/wallboard.js``). It reads ``/api/queues``,
``/api/kpis`` and the agreements with a supervisor's token and follows the supervisors'
pushes (docs/wallboard.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["add_wallboard"]


def add_wallboard(node: Node) -> None:
    node.http.page("/wallboard", "wallboard.html")
