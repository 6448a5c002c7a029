"""``queue_update`` on the supervisors' topic, and each operator's changes three ways:
``agent_update`` per operator on the supervisors' ``agent_update`` topic (PRODUCT's
contract) and on the operator's own topic (their screen shows their state), and
``agents_update`` batches on the supervisors' batch topic, for the screens that asked
for them (``/ws?token=...&agents=batched``: the console's Team view, the wallboard).

A change (the board's watchers, the callers' feed) only marks a queue or an operator as
"maybe changed". ``Coalescer`` sends a marked key at once if it has not sent that key
for ``interval`` seconds, else once when the interval is up: a burst of events costs at
most one push per queue (and per operator) per interval, and the one sent is built at
send time, so it is always the latest state. A view equal to the one last pushed (but
for the waits, which move by themselves) is not pushed again. All on the node's clock.

Why the batch: 500 operators at 50 calls/s change ~240 times a second, and one message
per change per supervisor socket was 12,000 frames a second for 50 supervisors, a
quarter of the reactor's time in the sockets' sends (docs/performance.md, "Supervisors'
pushes"). The batch is one
coalesced key for all operators: every operator marked since the last batch, each with
their state at send time, at most ``batch_size`` per message (a shift starting or a
resync is a few messages, not one of megabytes), so a supervisor's socket gets a few
agent messages a second whatever the helpdesk's size.

A wrap-up ends without an event: ``sweep`` (every few seconds) marks everything, and the
comparison keeps what did not change quiet.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import structlog
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from cti_bridge.bus import Bus
from cti_bridge.bus.topics import (
    SUPERVISOR_AGENT_BATCHES_TOPIC,
    SUPERVISOR_AGENTS_TOPIC,
    SUPERVISORS_TOPIC,
    operator_topic,
)

from .live import signature
from .service import Supervision

__all__ = ["MAX_AGENTS_PER_BATCH", "PUSH_INTERVAL", "Coalescer", "SupervisorPushes"]

log = structlog.get_logger("cti_bridge.queues.pushes")

#: At most one push per queue (and per operator) in this many seconds.
PUSH_INTERVAL = 0.3

#: At most this many operators in one ``agents_update`` (more changed: more messages).
MAX_AGENTS_PER_BATCH = 100

K = TypeVar("K", bound=Hashable)


class Coalescer(Generic[K]):
    """``mark(key)``: ``send(key)`` now, or once at most ``interval`` after the last."""

    def __init__(self, clock: IReactorTime, interval: float, send: Callable[[K], None]):
        self._clock = clock
        self.interval = interval
        self._send = send
        self._last: dict[K, float] = {}
        self._due: dict[K, IDelayedCall] = {}
        self.sent = 0

    def mark(self, key: K) -> None:
        if key in self._due:
            return  # already on its way, built when it goes
        now = self._clock.seconds()
        last = self._last.get(key)
        if last is None or now - last >= self.interval:
            self._go(key)
        else:
            self._due[key] = self._clock.callLater(last + self.interval - now, self._later, key)

    def _later(self, key: K) -> None:
        del self._due[key]
        self._go(key)

    def _go(self, key: K) -> None:
        self._last[key] = self._clock.seconds()
        self.sent += 1
        try:
            self._send(key)
        except Exception:
            log.exception("a supervisors' push failed", key=repr(key))

    def stop(self) -> None:
        for call in self._due.values():
            if call.active():
                call.cancel()
        self._due.clear()


class SupervisorPushes:
    """Marks what a change may have touched; pushes what did change."""

    def __init__(
        self,
        supervision: Supervision,
        bus: Bus,
        clock: IReactorTime,
        *,
        interval: float = PUSH_INTERVAL,
        batch_size: int = MAX_AGENTS_PER_BATCH,
    ):
        self.supervision = supervision
        self.bus = bus
        self.batch_size = batch_size
        self.queues: Coalescer[tuple[str, str]] = Coalescer(clock, interval, self._push_queue)
        self.agents: Coalescer[str] = Coalescer(clock, interval, self._push_agent)
        #: One key (``None``) for all operators: the ``agents_update`` batch.
        self.batches: Coalescer[None] = Coalescer(clock, interval, self._push_batch)
        #: The operators marked since the last batch, in the order they were marked.
        self._batch: dict[str, None] = {}
        #: username -> the view ``_push_agent`` built since the operator's last mark:
        #: the batch sends it as it is instead of building it again.
        self._fresh: dict[str, dict[str, Any]] = {}
        #: The waiting calls' record ids, looked up at most once per interval per PBX
        #: (a burst of joins is one query, not one per event).
        self.lookups: Coalescer[str] = Coalescer(clock, interval, self._look_up_ids)
        #: (pbx, device) -> the queues it was a member of at its last change: a member
        #: removed still marks the queue it left.
        self._queues_of: dict[tuple[str, str], frozenset[str]] = {}
        self._pushed: dict[object, object] = {}
        self.pushed = {"queue_update": 0, "agent_update": 0, "agents_update": 0}

    # -- what changed ---------------------------------------------------------------------

    def members_changed(
        self, pbx: str, usernames: frozenset[str], devices: frozenset[str] | None, at: float
    ) -> None:
        """The board's watcher: these devices of ``pbx`` (``None``: all) and these
        operators may have changed. Only the queues those devices are (or were) members
        of are marked: this runs on every member event, on the hot path."""
        board = self.supervision.view.board
        if pbx not in board.pbxs():
            return
        members = board.members_of(pbx)
        names: set[str] = set()
        if devices is None:  # a snapshot or a lost link: everything, before and after
            for key in [k for k in self._queues_of if k[0] == pbx]:
                names |= self._queues_of.pop(key)
            for device, queues in members.queues_by_device().items():
                self._queues_of[(pbx, device)] = queues
                names |= queues
        else:
            for device in devices:
                now = members.queues_of(device)
                names |= now | self._queues_of.get((pbx, device), frozenset())
                if now:
                    self._queues_of[(pbx, device)] = now
                else:
                    self._queues_of.pop((pbx, device), None)
        for name in names:
            self.queues.mark((pbx, name))
        for username in usernames:
            self.mark_agent(username)

    def calls_changed(self, pbx: str, devices: frozenset[str]) -> None:
        """The current calls' watcher (``current.py``): these devices gained, lost or
        changed a call, so their operators' ``current_call`` did."""
        board = self.supervision.view.board
        for device in devices:
            username = board.owner_of(device)
            if username is not None:
                self.mark_agent(username)

    def callers_changed(self, pbx: str, queues: frozenset[str], at: float) -> None:
        for name in queues:
            self.queues.mark((pbx, name))
        if self.supervision.view.linkedids().get(pbx):
            self.lookups.mark(pbx)

    def _look_up_ids(self, pbx: str) -> None:
        self.supervision.resolve_ids().addCallbacks(
            lambda found: self._ids_found() if found else None,
            lambda failure: log.error(
                "cannot look up the waiting calls' ids", error=failure.getErrorMessage()
            ),
        )

    def _ids_found(self) -> None:
        """Some waiting calls got their record id: the queues they wait in change."""
        view = self.supervision.view
        for pbx, callers in view.callers.items():
            for name in callers.queues():
                if callers.waiting(name):
                    self.queues.mark((pbx, name))

    def sweep(self) -> None:
        """Everything may have changed (a wrap-up ran out, the roster was reloaded)."""
        view = self.supervision.view
        for pbx in view.board.pbxs():
            for name in view.queue_names(pbx):
                self.queues.mark((pbx, name))
        for username in self.supervision.roster:
            self.mark_agent(username)

    def mark_agent(self, username: str) -> None:
        """The operator may have changed: their ``agent_update`` and the next batch."""
        self._fresh.pop(username, None)  # built before this change: stale now
        self.agents.mark(username)
        self._batch[username] = None
        self.batches.mark(None)

    # -- pushing --------------------------------------------------------------------------

    def _push_queue(self, key: tuple[str, str]) -> None:
        if not self.bus.may_reach(SUPERVISORS_TOPIC):
            # Nobody watches: not built (it ran on every change, beside the pops). The
            # next push after a screen opens is sent whatever it holds; the screen reads
            # GET /api/queues when it opens.
            self._pushed.pop(("queue", key), None)
            return
        queue = self.supervision.queue_json(*key)
        self._publish(("queue", key), "queue_update", "queue", queue)

    def _push_agent(self, username: str) -> None:
        account = self.supervision.roster.get(username)
        if account is None:
            return  # not an active account (yet): the roster's next load brings them
        own = None if account.operator_id is None else operator_topic(account.operator_id)
        if own is not None and not self.bus.may_reach(own):
            own = None  # that operator has no screen open
        if own is None and not self.bus.may_reach(SUPERVISOR_AGENTS_TOPIC):
            self._pushed.pop(("agent", username), None)
            return
        agent = self._fresh[username] = self.supervision.agent_json(account)
        self._publish(
            ("agent", username),
            "agent_update",
            "agent",
            agent,
            topic=SUPERVISOR_AGENTS_TOPIC,
            also=own,
        )

    def _push_batch(self, _: None) -> None:
        """Every operator marked since the last batch, as they are now, in messages of at
        most ``batch_size``; the unchanged ones left out."""
        marked, self._batch = self._batch, {}
        if not self.bus.may_reach(SUPERVISOR_AGENT_BATCHES_TOPIC):
            for username in marked:  # nobody to tell: pushed whatever it holds next time
                self._pushed.pop(("agents", username), None)
            return
        agents = []
        for username in marked:
            account = self.supervision.roster.get(username)
            if account is None:
                continue
            try:
                agent = self._fresh.get(username) or self.supervision.agent_json(account)
            except Exception:  # one operator's view failing costs that operator only
                log.exception("an operator's view failed", operator=username)
                continue
            seen = signature(agent)
            if self._pushed.get(("agents", username)) != seen:
                self._pushed[("agents", username)] = seen
                agents.append(agent)
        for start in range(0, len(agents), self.batch_size):
            self.pushed["agents_update"] += 1
            self.bus.publish(
                SUPERVISOR_AGENT_BATCHES_TOPIC,
                {"type": "agents_update", "agents": agents[start : start + self.batch_size]},
            )

    def _publish(
        self,
        key: object,
        kind: str,
        field: str,
        view: dict[str, Any],
        *,
        topic: str = SUPERVISORS_TOPIC,
        also: str | None = None,
    ) -> None:
        seen = signature(view, moving=("longest_wait_seconds", "today"))
        if self._pushed.get(key) == seen:
            return
        self._pushed[key] = seen
        self.pushed[kind] += 1
        message = {"type": kind, field: view}
        if self.bus.may_reach(topic):
            self.bus.publish(topic, message)
        if also is not None:  # the operator's own screen (and whoever watches it)
            self.bus.publish(also, message)

    def stop(self) -> None:
        self.queues.stop()
        self.agents.stop()
        self.batches.stop()
        self.lookups.stop()
