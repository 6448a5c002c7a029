"""``install(node)``: nothing yet (see the package's docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["install"]


def install(node: Node) -> None:
    """The supervisor view's queue state, KPIs and endpoints will be added here."""
