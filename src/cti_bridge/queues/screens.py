"""A supervisor's screen on the WebSocket: the ``supervisors`` topics, and watching an
operator.

A supervisor's (or admin's) socket listens on ``supervisors`` from the moment it opens,
so the room's pushes (queue updates, phones, flagged agreements) reach every supervisor
screen on every node, and on the operators' changes in one of two forms: one
``agent_update`` per operator (``supervisors.agent_update``, PRODUCT's contract, the
default), or, for a socket opened with ``/ws?token=...&agents=batched``, a few
``agents_update`` batches a second (``supervisors.agents_update``; ``pushes.py`` says
why). ``{"type": "watch", "username": ...}`` adds that
operator's topic to the socket and asks again for the operator's ringing pops
(``pop.replay``): the supervisor sees the pop the operator sees now, not only the next
one. The hub (``web/ws.py``) keeps the socket's plumbing; these are the room's rules on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from cti_bridge.bus import Bus
from cti_bridge.bus.topics import (
    POP_REPLAY_TOPIC,
    SUPERVISOR_AGENT_BATCHES_TOPIC,
    SUPERVISOR_AGENTS_TOPIC,
    SUPERVISORS_TOPIC,
    operator_topic,
)
from cti_bridge.web.auth import Principal
from cti_bridge.web.ws import Hub, ScreenSocket

__all__ = [
    "AGENTS_OPTION",
    "OperatorLookup",
    "Watch",
    "add_supervisor_screens",
    "supervisor_topics",
]

#: The socket option (``/ws?token=...&agents=batched``) for ``agents_update`` batches.
AGENTS_OPTION = ("agents", "batched")

log = structlog.get_logger("cti_bridge.queues.screens")


class OperatorLookup(Protocol):
    """The operator's id for a username (``None``: no such operator)."""

    def __call__(self, username: str) -> Deferred[int | None]: ...


def supervisor_topics(
    principal: Principal, options: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Supervisors and admins also listen on ``supervisors`` and on the operators'
    changes: batched if the socket asked for it, else one ``agent_update`` each."""
    if not principal.sees_everything:
        return ()
    name, value = AGENTS_OPTION
    batched = options is not None and options.get(name) == value
    return (
        SUPERVISORS_TOPIC,
        SUPERVISOR_AGENT_BATCHES_TOPIC if batched else SUPERVISOR_AGENTS_TOPIC,
    )


class Watch:
    """``{"type": "watch", "username": ...}``: a supervisor's socket also gets that
    operator's pops, the ringing ones at once."""

    def __init__(self, bus: Bus, operator_id_for: OperatorLookup):
        self.bus = bus
        self.operator_id_for = operator_id_for

    def __call__(self, socket: ScreenSocket, message: dict[str, Any]) -> None:
        username = message.get("username")
        if not socket.principal.sees_everything:
            socket.send({"type": "error", "error": "only supervisors may watch"})
            return
        if not isinstance(username, str) or not username:
            socket.send({"type": "error", "error": "watch needs a username"})
            return

        def found(operator_id: int | None) -> None:
            if operator_id is None:
                socket.send({"type": "error", "error": "no such operator"})
                return
            socket.listen(operator_topic(operator_id))
            socket.send({"type": "watching", "username": username})
            self.bus.publish(POP_REPLAY_TOPIC, {"operator_id": operator_id})

        self.operator_id_for(username).addCallbacks(found, self._lookup_failed)

    @staticmethod
    def _lookup_failed(failure: Failure) -> None:
        log.error("operator lookup failed", error=failure.getErrorMessage())


def add_supervisor_screens(hub: Hub, operator_id_for: OperatorLookup) -> None:
    """The supervisors' topic and the ``watch`` message, on ``hub``."""
    hub.add_options_topic_rule(supervisor_topics)
    hub.add_message_handler("watch", Watch(hub.bus, operator_id_for))
