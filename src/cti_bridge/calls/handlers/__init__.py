"""The model's event handlers, one group per concern, and the dispatch table built from them.

What the model consumes is what the groups declare: ``CONSUMED_EVENTS`` and
``CONSUMED_VARIABLES`` are their union (``VarSet`` is consumed when any group declares a
variable). Adding a concern is a module with one ``HandlerGroup`` and one line in
``GROUPS``.
"""

from __future__ import annotations

from cti_bridge.calls.handlers.base import Handler, HandlerGroup, VariableHandler
from cti_bridge.calls.handlers.bridges import BridgeHandlers
from cti_bridge.calls.handlers.channels import ChannelHandlers
from cti_bridge.calls.handlers.dialling import DiallingHandlers
from cti_bridge.calls.handlers.hangups import HangupHandlers
from cti_bridge.calls.handlers.queues import QueueHandlers
from cti_bridge.calls.handlers.variables import VariableRouter, split_variables
from cti_bridge.calls.live import LiveCalls

__all__ = [
    "CONSUMED_EVENTS",
    "CONSUMED_VARIABLES",
    "GROUPS",
    "Handler",
    "HandlerGroup",
    "VariableHandler",
    "dispatch_table",
    "split_variables",
]

GROUPS: tuple[type[HandlerGroup], ...] = (
    ChannelHandlers,
    QueueHandlers,
    DiallingHandlers,
    BridgeHandlers,
    HangupHandlers,
)

#: The ``VarSet`` variables the model acts on (``*``: a prefix): the queue's verdict and
#: the dialplan's ``CTI_*`` variables; every other ``VarSet`` is ignored.
CONSUMED_VARIABLES: frozenset[str] = frozenset().union(*(g.variables for g in GROUPS))
#: The AMI events the model acts on. ``feed`` returns nothing for any other event, so the
#: AMI link may skip them unparsed (``AMIListener.wanted_events``).
CONSUMED_EVENTS: frozenset[str] = frozenset().union(*(g.events for g in GROUPS)) | (
    frozenset({"VarSet"}) if CONSUMED_VARIABLES else frozenset()
)


def dispatch_table(state: LiveCalls) -> dict[str, Handler]:
    """Event name -> bound handler, for every group working on ``state`` (built once)."""
    table: dict[str, Handler] = {}
    by_variable: dict[str, VariableHandler] = {}
    for group_class in GROUPS:
        group = group_class(state)
        handlers = group.handlers()
        variables = group.variable_handlers()
        if handlers.keys() & table.keys() or variables.keys() & by_variable.keys():
            raise ValueError(f"{group_class.__name__} handles what another group handles")
        table.update(handlers)
        by_variable.update(variables)
    if by_variable:
        table["VarSet"] = VariableRouter(state, by_variable).on_varset
    return table
