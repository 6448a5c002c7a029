"""What the AMI link hands its listeners, and what they promise to want (pure).

This is the contract between the link (``ami/client.py``, Twisted) and everything fed
by it (the call model's pipeline, later the queue state and the dialer). It imports no
Twisted, so the listeners on the pure side (``calls/``) can depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cti_bridge.ami.parser import EventFilter, Message

__all__ = ["CLIENT_EVENTS", "AMIListener", "ResyncSnapshot", "wanted_by"]

#: Live events the client acts on itself, whatever its listeners want. (List items and
#: answers carry an ActionID and are never skipped; ``OriginateResponse`` always does,
#: named here all the same.)
CLIENT_EVENTS = frozenset({"FullyBooted", "Shutdown", "OriginateResponse"})


@dataclass(frozen=True, slots=True)
class ResyncSnapshot:
    """The PBX as it is right after a (re)connect, before any held-back event.

    The link's first ``FullyBooted`` is here only, not also delivered as an event.
    Events held back during the resync describe changes around the time of the
    snapshot: a listener applies them on top and must take ones the snapshot already
    shows (a ``Newchannel`` for a listed channel) as no-ops.
    """

    pbx: str
    #: ``CoreShowChannel`` items.
    channels: list[Message]
    #: ``QueueParams`` / ``QueueMember`` / ``QueueEntry`` items, in PBX order.
    queue_status: list[Message]
    fully_booted: Message


class AMIListener:
    """What the client calls. Override what you need; every method is optional.

    Duck-typed objects with any subset of these methods work too. Calls are made on the
    reactor thread, in order, and must not block. An exception is logged with its
    traceback and isolated: it never drops the link nor stops the other listeners.
    Messages are shared between listeners: treat them as read-only.

    ``wanted_events`` is a promise, not a subscription: the listener ignores every other
    event, so the link may skip them before they are even parsed. A listener still gets
    whatever another listener wants, and every event with an ``ActionID``.
    """

    #: Event names this listener acts on; ``None`` (the default): it may act on any.
    wanted_events: frozenset[str] | None = None
    #: When ``VarSet`` is wanted: the ``Variable`` names it acts on, ``"PREFIX*"`` for
    #: every name with that prefix; ``None`` (the default): any variable.
    wanted_variables: frozenset[str] | None = None

    def ami_event(self, msg: Message, received_at: float) -> None:
        """A live event; ``received_at`` is the local arrival time (``reactor.seconds()``)."""

    def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
        """Once per (re)connect, after login and ``FullyBooted``, before any live event."""

    def ami_link_lost(self, reason: str, at: float) -> None:
        """The link that delivered the last snapshot is gone (drop or PBX ``Shutdown``)."""


def wanted_by(listeners: Iterable[object]) -> EventFilter | None:
    """The events to parse for these listeners and the client: ``None`` = all of them.

    A listener without ``ami_event`` wants no event; one without ``wanted_events``
    (or with ``None``) may want any, and then nothing is skipped.
    """
    events = set(CLIENT_EVENTS)
    variables: set[str] | None = set()
    for listener in listeners:
        if getattr(listener, "ami_event", None) is None:
            continue
        wanted: frozenset[str] | None = getattr(listener, "wanted_events", None)
        if wanted is None:
            return None
        events.update(wanted)
        if "VarSet" in wanted:
            names: frozenset[str] | None = getattr(listener, "wanted_variables", None)
            if names is None:
                variables = None
            elif variables is not None:
                variables.update(names)
    return EventFilter(frozenset(events), None if variables is None else frozenset(variables))
