"""A node's view of the queues of PBXs it does not own, relayed over the bus, and the
owner's answer to a snapshot request.

The queue and agent state lives where the PBX link is (the owner's board). A ``web``
node, or an owner-capable standby, has none of its own for a PBX another node owns; but
the owner's pushes carry full views (``queue_update``: one whole queue, as ``GET
/api/queues`` lists it; ``agent_update``: one whole agent), so ``RelayedView`` keeps the
latest of each and serves ``/api/queues``, ``/api/agents`` and ``/api/agents/{operator}``
from it.

Pub/sub keeps nothing: a message published while this node's subscription was down
(Redis restarted, a partition, the node starting) is gone, and pushes only say what
changed. So the relay never trusts what it holds until a snapshot said it is whole:
at start, after each new subscription of the bus (``RedisBus.connected``), and when it
heard nothing from a PBX's owner for ``SILENCE_SECONDS`` (the owner's ``queues_alive``
heartbeat comes every ``HEARTBEAT_SECONDS``), it marks the PBX stale and publishes a
request on ``QUEUES_SNAPSHOT_REQUEST_TOPIC`` (again every ``REQUEST_SECONDS`` while
stale). Each node that owns PBXs (``SnapshotAnswerer``) answers with every queue and
agent it has, as ordinary ``queue_update``/``agent_update``/``agents_update`` pushes
(so every screen on every node is resynced too), then ``queues_snapshot`` naming its
PBXs and their queues; messages from one node arrive in order, so when that arrives
the relay holds the whole view, drops the queues the owner no longer lists and marks
the PBXs live. Until then every relayed queue and agent says ``"live": false``, the
key a screen reads to say the figures are not live (the owner's own views never carry
it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from cti_bridge.bus import Bus
from cti_bridge.bus.topics import (
    QUEUES_SNAPSHOT_REQUEST_TOPIC,
    QUEUES_SNAPSHOT_TOPIC,
    SUPERVISOR_AGENT_BATCHES_TOPIC,
    SUPERVISOR_AGENTS_TOPIC,
    SUPERVISORS_TOPIC,
)

from .pushes import MAX_AGENTS_PER_BATCH, Coalescer
from .service import Supervision

__all__ = [
    "ANSWER_SECONDS",
    "HEARTBEAT_SECONDS",
    "REQUEST_SECONDS",
    "SILENCE_SECONDS",
    "RelayedView",
    "SnapshotAnswerer",
]

log = structlog.get_logger("cti_bridge.queues.relay")

#: An owner says ``queues_alive`` this often.
HEARTBEAT_SECONDS = 2.0
#: Nothing from a PBX's owner for this long: stale, and a snapshot is asked for.
SILENCE_SECONDS = 3 * HEARTBEAT_SECONDS
#: While stale, the request is repeated this often (nobody may have owned it yet).
REQUEST_SECONDS = 2.0
#: An owner answers at most once in this many seconds: many nodes asking at once (all
#: of them resubscribing after a Redis restart) share one snapshot; a request that comes
#: after one was sent gets the next.
ANSWER_SECONDS = 1.0


class SnapshotAnswerer:
    """On an owner-capable node: the heartbeat, and the whole view on request."""

    def __init__(
        self,
        supervision: Supervision,
        bus: Bus,
        clock: IReactorTime,
        *,
        node: str,
        owns: Callable[[], Iterable[str]],
        batch_size: int = MAX_AGENTS_PER_BATCH,
    ):
        self.supervision = supervision
        self.bus = bus
        self.node = node
        self.owns = owns
        self.batch_size = batch_size
        self.answered = 0
        self._answers: Coalescer[None] = Coalescer(clock, ANSWER_SECONDS, lambda _: self.answer())
        self._unsubscribe: Callable[[], None] | None = None
        self._heartbeat = LoopingCall(self.beat)
        self._heartbeat.clock = clock

    def start(self) -> None:
        self._unsubscribe = self.bus.subscribe(QUEUES_SNAPSHOT_REQUEST_TOPIC, self._asked)
        self._heartbeat.start(HEARTBEAT_SECONDS, now=True)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._heartbeat.running:
            self._heartbeat.stop()
        self._answers.stop()

    def beat(self) -> None:
        owned = sorted(self.owns())
        if owned:
            self.bus.publish(
                QUEUES_SNAPSHOT_TOPIC, {"type": "queues_alive", "node": self.node, "pbx": owned}
            )

    def _asked(self, message: dict[str, Any]) -> None:
        self._answers.mark(None)

    def answer(self) -> None:
        """Every queue of the PBXs this node owns and every agent, then the marker."""
        owned = sorted(self.owns())
        if not owned:
            return
        self.answered += 1
        supervision = self.supervision
        names: dict[str, list[str]] = {pbx: [] for pbx in owned}
        for queue in supervision.view.queues(supervision.ids):
            if queue["pbx"] not in names:
                continue
            names[queue["pbx"]].append(queue["name"])
            view = supervision.queue_json(queue["pbx"], queue["name"])
            self.bus.publish(SUPERVISORS_TOPIC, {"type": "queue_update", "queue": view})
        agents = []
        for account in supervision.roster.values():
            try:
                agent = supervision.agent_json(account)
            except Exception:  # one operator's view failing costs that operator only
                log.exception("an operator's view failed", operator=account.operator)
                continue
            agents.append(agent)
            self.bus.publish(SUPERVISOR_AGENTS_TOPIC, {"type": "agent_update", "agent": agent})
        for start in range(0, len(agents), self.batch_size):
            self.bus.publish(
                SUPERVISOR_AGENT_BATCHES_TOPIC,
                {"type": "agents_update", "agents": agents[start : start + self.batch_size]},
            )
        self.bus.publish(
            QUEUES_SNAPSHOT_TOPIC,
            {"type": "queues_snapshot", "node": self.node, "pbx": owned, "queues": names},
        )
        log.info("queues snapshot sent", pbx=owned, agents=len(agents))


class RelayedView:
    """The latest queue and agent views heard on the bus for the PBXs in ``pbxs`` this
    node does not own (``owns``), each PBX live only from a snapshot on."""

    def __init__(
        self,
        bus: Bus,
        clock: IReactorTime,
        pbxs: Iterable[str],
        *,
        node: str,
        owns: Callable[[], Iterable[str]] = lambda: (),
    ):
        self.bus = bus
        self._clock = clock
        self.pbxs = sorted(pbxs)
        self.node = node
        self.owns = owns
        #: (pbx, queue) -> (the queue as pushed, when it arrived)
        self._queues: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        #: operator -> the agent as pushed
        self._agents: dict[str, dict[str, Any]] = {}
        self.live: dict[str, bool] = dict.fromkeys(self.pbxs, False)
        #: pbx -> when its owner was last heard from
        self._heard: dict[str, float] = {}
        self._asked_at: float | None = None
        #: The PBXs relayed at the last check: one this node gave up is stale until a
        #: snapshot from its new owner (what this node held of it was its own).
        self._was_relayed: set[str] = set(self.pbxs)
        self.requests = 0
        self.snapshots = 0
        self._unsubscribe: list[Callable[[], None]] = []
        self._check = LoopingCall(self.check)
        self._check.clock = clock

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._unsubscribe = [
            self.bus.subscribe(SUPERVISORS_TOPIC, self._message),
            self.bus.subscribe(SUPERVISOR_AGENTS_TOPIC, self._message),
            self.bus.subscribe(QUEUES_SNAPSHOT_TOPIC, self._message),
        ]
        connected = getattr(self.bus, "connected", None)
        if isinstance(connected, list):
            connected.append(self.reconnected)
        self._check.start(HEARTBEAT_SECONDS / 2, now=False)
        self.ask()

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        connected = getattr(self.bus, "connected", None)
        if isinstance(connected, list) and self.reconnected in connected:
            connected.remove(self.reconnected)
        if self._check.running:
            self._check.stop()

    # -- trust ----------------------------------------------------------------------------

    def relayed(self) -> list[str]:
        """The PBXs served from here: those this node does not own now."""
        owned = set(self.owns())
        return [pbx for pbx in self.pbxs if pbx not in owned]

    def is_live(self, pbx: str) -> bool:
        return self.live.get(pbx, False)

    def reconnected(self) -> None:
        """The bus subscribed anew: whatever was published meanwhile is lost."""
        log.info("bus reconnected: queues stale until a snapshot")
        self._stale(self.pbxs)
        self.ask()

    def check(self) -> None:
        now = self._clock.seconds()
        relayed = set(self.relayed())
        given_up, self._was_relayed = relayed - self._was_relayed, relayed
        self._stale(given_up)
        silent = [
            pbx
            for pbx in self.relayed()
            if self.live[pbx] and now - self._heard.get(pbx, now) > SILENCE_SECONDS
        ]
        if silent:
            log.warning("nothing from the PBX's owner: queues stale", pbx=silent)
            self._stale(silent)
        stale = [pbx for pbx in self.relayed() if not self.live[pbx]]
        if stale and (self._asked_at is None or now - self._asked_at >= REQUEST_SECONDS):
            self.ask()

    def ask(self) -> None:
        self._asked_at = self._clock.seconds()
        self.requests += 1
        self.bus.publish(QUEUES_SNAPSHOT_REQUEST_TOPIC, {"node": self.node})

    def _stale(self, pbxs: Iterable[str]) -> None:
        for pbx in pbxs:
            self.live[pbx] = False

    # -- what arrives ---------------------------------------------------------------------

    def _message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        now = self._clock.seconds()
        if kind == "queue_update" and isinstance(message.get("queue"), dict):
            queue = message["queue"]
            pbx, name = queue.get("pbx"), queue.get("name")
            if isinstance(pbx, str) and isinstance(name, str):
                self._queues[(pbx, name)] = (queue, now)
                self._heard[pbx] = now
        elif kind == "agent_update" and isinstance(message.get("agent"), dict):
            agent = message["agent"]
            if isinstance(agent.get("operator"), str):
                self._agents[agent["operator"]] = agent
        elif kind == "queues_alive":
            for pbx in _names(message.get("pbx")):
                self._heard[pbx] = now
        elif kind == "queues_snapshot":
            self._snapshot(message, now)

    def _snapshot(self, message: dict[str, Any], now: float) -> None:
        names = message.get("queues")
        names = names if isinstance(names, dict) else {}
        for pbx in _names(message.get("pbx")):
            listed = set(_names(names.get(pbx)))
            for key in [k for k in self._queues if k[0] == pbx and k[1] not in listed]:
                del self._queues[key]
            self._heard[pbx] = now
            if pbx in self.live:
                self.live[pbx] = True
        self.snapshots += 1
        log.info("queues snapshot received", pbx=message.get("pbx"), node=message.get("node"))

    # -- reads ----------------------------------------------------------------------------

    def queues(self, pbxs: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The relayed queues (of ``pbxs``, default all relayed), waits as of now."""
        wanted = set(self.relayed() if pbxs is None else pbxs)
        now = self._clock.seconds()
        return [
            self._aged(queue, now - at)
            for (pbx, _), (queue, at) in sorted(self._queues.items())
            if pbx in wanted
        ]

    def _aged(self, queue: dict[str, Any], elapsed: float) -> dict[str, Any]:
        queue = dict(queue)
        waiting = [
            {**w, "wait_seconds": int(w.get("wait_seconds", 0) + elapsed)}
            for w in queue.get("waiting", [])
        ]
        queue["waiting"] = waiting
        queue["longest_wait_seconds"] = max((w["wait_seconds"] for w in waiting), default=0)
        if not self.is_live(queue["pbx"]):
            queue["live"] = False
        return queue

    def agent(self, operator: str) -> dict[str, Any] | None:
        """The agent as last pushed, ``None`` if never heard of."""
        agent = self._agents.get(operator)
        if agent is None:
            return None
        agent = dict(agent)
        if not all(self.is_live(pbx) for pbx in self.relayed()):
            agent["live"] = False
        return agent

    def status(self) -> dict[str, Any]:
        return {
            "pbx": {pbx: {"live": self.live[pbx]} for pbx in self.relayed()},
            "queues": len(self._queues),
            "agents": len(self._agents),
            "requests": self.requests,
            "snapshots": self.snapshots,
        }


def _names(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
