"""What a group of handlers is: the events and ``VarSet`` variables it consumes, and how.

A group is one concern of the model (channels, queues, dialling, bridges, hang-ups). It
declares what it consumes (``events``, ``variables``) and hands out its handlers as
bound methods (``handlers``, ``variable_handlers``); the model builds its dispatch table
from them once, at construction, so ``feed`` stays one dict lookup to a bound method. A
test holds each group's declaration to its handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from cti_bridge.calls.live import LiveCalls, Msg, Out
from cti_bridge.calls.state import ChannelState

__all__ = ["Handler", "HandlerGroup", "VariableHandler"]

#: An event handler: the event, its local arrival time, the domain events it causes.
Handler = Callable[[Msg, float, Out], None]
#: A ``VarSet`` handler: the (known) channel it is set on, the event, arrival, out.
VariableHandler = Callable[[ChannelState, Msg, float, Out], None]


class HandlerGroup:
    """One concern's handlers, all working on the same ``LiveCalls``."""

    __slots__ = ("state", "topology")  # subclasses add ``__slots__ = ()``: no dict

    #: The AMI events this group handles (``VarSet`` is not one: see ``variables``).
    events: ClassVar[frozenset[str]] = frozenset()
    #: The ``VarSet`` variables it handles; a trailing ``*`` makes a prefix (``CTI_*``).
    variables: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, state: LiveCalls) -> None:
        self.state = state
        self.topology = state.topology

    def handlers(self) -> dict[str, Handler]:
        """Event name -> bound handler, one per name in ``events``."""
        return {}

    def variable_handlers(self) -> dict[str, VariableHandler]:
        """Variable (or ``PREFIX*``) -> bound handler, one per name in ``variables``."""
        return {}
