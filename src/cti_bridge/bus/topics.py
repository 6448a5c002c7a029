"""The bus's topic names, defined once: the pop engine publishes on them, the WebSocket
hub listens on them, and another node on the same Redis must spell them the same way.

Pure (no Twisted, no I/O), so a decision module such as ``pop/core.py`` can name a topic
without loading the bus.
"""

from __future__ import annotations

__all__ = [
    "OPERATOR_TOPIC_PREFIX",
    "POP_REPLAY_TOPIC",
    "QUEUES_SNAPSHOT_REQUEST_TOPIC",
    "QUEUES_SNAPSHOT_TOPIC",
    "SUPERVISORS_TOPIC",
    "SUPERVISOR_AGENTS_TOPIC",
    "SUPERVISOR_AGENT_BATCHES_TOPIC",
    "operator_topic",
]

#: Every operator topic starts with this, followed by the operator's id.
OPERATOR_TOPIC_PREFIX = "operator."

#: Pushes for supervisors and admins (queue updates, phones, flagged agreements).
SUPERVISORS_TOPIC = "supervisors"

#: The supervisors' ``agent_update``s, one message per changed operator (PRODUCT's
#: contract: a supervisor's socket listens here unless it asked for batches).
SUPERVISOR_AGENTS_TOPIC = "supervisors.agent_update"

#: The same changes batched: one ``agents_update`` per interval with every operator that
#: changed (a socket opened with ``/ws?token=...&agents=batched`` listens here instead).
SUPERVISOR_AGENT_BATCHES_TOPIC = "supervisors.agents_update"

#: Published by the WebSocket hub when a screen connects (or a supervisor starts watching
#: an operator): ``{"operator_id": N}``; the node that follows the PBX sends that
#: operator's ringing pops again.
POP_REPLAY_TOPIC = "pop.replay"


#: A node that relays the queues of PBXs it does not own asks here for a snapshot
#: (``{"node": name}``: at start, after its bus reconnected, after a silence); every node
#: that owns a PBX answers with its whole view: ``queue_update``s and ``agent_update``s
#: on their usual topics, then a ``queues_snapshot`` here (``queues/relay.py``).
QUEUES_SNAPSHOT_REQUEST_TOPIC = "supervisors.snapshot_request"

#: The owners' side of the relay: ``queues_snapshot`` (a snapshot is complete: its PBXs
#: and their queues) and ``queues_alive`` (a heartbeat: the PBXs it owns now).
QUEUES_SNAPSHOT_TOPIC = "supervisors.snapshot"


def operator_topic(operator_id: int) -> str:
    """The topic of one operator's screens (pops, call updates): ``operator.<id>``.

    Routing is by topic only, so a pop for one operator never reaches another's screen.
    """
    return f"{OPERATOR_TOPIC_PREFIX}{operator_id}"
