"""``VarSet``: one event, many meanings; each variable goes to the group that declared it.

The model's ``feed`` lets through only the declared variables (``split_variables``), so
this runs for a handful of ``VarSet`` events per call, not for the thousands the
dialplan sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cti_bridge.calls.handlers.base import VariableHandler
from cti_bridge.calls.live import LiveCalls, Msg, Out

__all__ = ["VariableRouter", "split_variables"]


def split_variables(names: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Declared names -> (exact names, prefixes): ``{"A", "B_*"}`` -> ``({"A"}, ("B_",))``."""
    exact = frozenset(name for name in names if not name.endswith("*"))
    prefixes = tuple(sorted(name[:-1] for name in names if name.endswith("*")))
    return exact, prefixes


class VariableRouter:
    """The ``VarSet`` handler: the channel must be known, then the variable's own handler."""

    def __init__(self, state: LiveCalls, handlers: Mapping[str, VariableHandler]) -> None:
        self.state = state
        self.exact = {name: h for name, h in handlers.items() if not name.endswith("*")}
        self.prefixed = tuple(
            (name[:-1], h) for name, h in sorted(handlers.items()) if name.endswith("*")
        )

    def handler_for(self, variable: str) -> VariableHandler | None:
        handler = self.exact.get(variable)
        if handler is None:
            for prefix, candidate in self.prefixed:
                if variable.startswith(prefix):
                    return candidate
        return handler

    def on_varset(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self.state.known(msg)
        if channel is None:
            return
        handler = self.handler_for(msg.get("Variable", ""))
        if handler is not None:
            handler(channel, msg, rx, out)
