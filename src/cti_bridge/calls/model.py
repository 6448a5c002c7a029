"""The call model: AMI events in, calls and domain events out. Pure - no I/O, no Twisted.

State is kept apart from the wire (txtorcon's ``TorState``): the AMI link feeds it
events, a resync snapshot after every (re)connect, and tells it when the link is lost.
Channels are grouped into calls by ``Linkedid``, which Asterisk keeps across queues,
Local channel pairs, transfers and the legs an originate dials, so a call keeps its
identity through all of them. The machines (drawn in ``docs/call-model.md``) are small:
a call (live -> ended), a ring per dialled leg (open -> ended with a result), a talk
segment per answered leg, and "who started the hang-up" since the last answer/transfer.

This class is the facade: the state is one ``LiveCalls`` (``calls/live.py``), the
handlers are grouped by concern (``calls/handlers/``), the reconnect resync is
``calls/resync.py``; ``feed`` is one dict lookup to a bound handler per event.

Trust: only channels seen in a ``Newchannel`` (or listed at resync) exist; events about
other channels are dropped. Every event must name a known channel with its exact
``Channel``, ``Uniqueid`` and ``Linkedid``; a contradiction is dropped and counted in
``rejected_events``. Real call events never carry an ``ActionID`` (only
``OriginateResponse`` does), so one that does is a forged or misplaced list item and is
dropped and counted too (trace 13-crlf). See docs/call-model.md for what is left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cti_bridge.calls.devices import Topology
from cti_bridge.calls.events import Call, DomainEvent
from cti_bridge.calls.handlers import (
    CONSUMED_EVENTS,
    CONSUMED_VARIABLES,
    Handler,
    dispatch_table,
    split_variables,
)
from cti_bridge.calls.live import DEFAULT_ENDED_MEMORY, LiveCalls, Out
from cti_bridge.calls.resync import reconcile

__all__ = ["CONSUMED_EVENTS", "CONSUMED_VARIABLES", "DEFAULT_ENDED_MEMORY", "CallModel"]


class CallModel:
    """Live calls of one PBX, derived from its AMI events.

    Every public method returns the domain events it caused, in order. One
    ``CallStarted`` and one ``CallEnded`` per Linkedid, ever, for the life of the
    instance. ``CallStarted`` is sent when the call first does something worth telling
    (enters a queue, rings somebody, ends, ...), so its snapshot already carries the
    caller ID that Local channels only learn just after ``Newchannel``.
    """

    #: What ``feed`` acts on: what the handler groups declare (``calls/handlers/``).
    consumed_events: frozenset[str] = CONSUMED_EVENTS
    consumed_variables: frozenset[str] = CONSUMED_VARIABLES

    def __init__(
        self,
        pbx: str,
        *,
        topology: Topology | None = None,
        ended_memory: int = DEFAULT_ENDED_MEMORY,
    ) -> None:
        self.pbx = pbx
        self.topology = topology or Topology()
        #: The live calls and channels; the handlers and the resync change only this.
        self.state = LiveCalls(pbx, self.topology, ended_memory=ended_memory)
        self._handlers: dict[str, Handler] = dispatch_table(self.state)
        self._variables, self._variable_prefixes = split_variables(CONSUMED_VARIABLES)
        #: One ``startswith`` turns away most VarSets (a set lookup would hash each name).
        self._variable_starts = (*sorted(self._variables), *self._variable_prefixes)

    # -- public interface ---------------------------------------------------------------

    def feed(self, msg: Mapping[str, str], received_at: float) -> list[DomainEvent]:
        """One AMI event (any ``Mapping``; a parser ``Message`` on the live link)."""
        event = msg.get("Event")
        if event == "VarSet":  # the most frequent event; only a few variables matter
            variable = msg.get("Variable") or ""
            if not variable.startswith(self._variable_starts) or (
                variable not in self._variables and not variable.startswith(self._variable_prefixes)
            ):
                return []
        handler = self._handlers.get(event) if event is not None else None
        if handler is None:
            return []
        if "ActionID" in msg and event != "OriginateResponse":
            self.state.rejected_events += 1  # a list item or a forged event, not a call event
            return []
        out: Out = []
        handler(msg, received_at, out)
        return out

    def resync(
        self, channels: Sequence[Mapping[str, str]], received_at: float
    ) -> list[DomainEvent]:
        """Reconcile with the PBX's ``CoreShowChannels`` items after a (re)connect."""
        out: Out = []
        reconcile(self.state, channels, received_at, out)
        return out

    def link_lost(self, at: float) -> list[DomainEvent]:
        """The link dropped: keep the calls, but they are suspect until the next resync."""
        self.state.link_lost(at)
        return []

    def shutdown(self, at: float) -> list[DomainEvent]:
        """The PBX is going down: every call ends now, hung up by the system."""
        out: Out = []
        self.state.end_all(at, out)
        return out

    @property
    def live_calls(self) -> list[Call]:
        return [call.snapshot() for call in self.state.calls.values()]

    @property
    def suspect(self) -> bool:
        """True between ``link_lost`` and the next ``resync``."""
        return self.state.suspect_since is not None

    @property
    def rejected_events(self) -> int:
        """Events dropped because they named unknown channels or contradicted known state."""
        return self.state.rejected_events

    def state_sizes(self) -> dict[str, int]:
        """How much the model holds (for metrics and the memory tests)."""
        return self.state.sizes()
