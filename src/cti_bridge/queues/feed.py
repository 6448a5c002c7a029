"""What keeps the operator board current, on the reactor: one AMI listener per PBX, and
the device map's reloads.

``MembersFeed`` is the PBX link's listener (``ami/listener.py``): the ``QueueStatus``
snapshot of every (re)connect (``ResyncSnapshot.queue_status``) replaces the members,
live events follow, and a lost link forgets them. Right after each snapshot it also asks
``DeviceStateList``, so a phone outside every queue has a state before it next changes
(a PBX that refuses the action, like the demo PBX, only leaves those unknown until then).

``OperatorDevices`` reloads ``store.accounts.device_operators()`` in the node's pool at
start and every ``interval`` seconds; a failed reload keeps the map it had.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from cti_bridge.ami.listener import AMIListener, ResyncSnapshot
from cti_bridge.ami.parser import Message
from cti_bridge.ami.protocol import ActionResult, AMIConnectionLost

from .callers import CALLER_EVENTS, QueueCallers
from .members import MEMBER_EVENTS, QueueMembers
from .operators import MembersBoard

__all__ = ["DEVICE_LIST_TIMEOUT", "CallersFeed", "MembersFeed", "OperatorDevices"]

log = structlog.get_logger("cti_bridge.queues")

#: Seconds the ``DeviceStateList`` answer may take.
DEVICE_LIST_TIMEOUT = 10.0

#: Sends an action on the PBX link: ``AMIClient.send_action``'s shape.
SendAction = Callable[..., Deferred[ActionResult]]
Runner = Callable[[Callable[[], Any]], Deferred[Any]]


class MembersFeed(AMIListener):
    """One PBX's members and devices, fed by its link; every change tells the board."""

    wanted_events: frozenset[str] | None = MEMBER_EVENTS

    def __init__(
        self,
        members: QueueMembers,
        board: MembersBoard,
        clock: IReactorTime,
        *,
        send_action: SendAction | None = None,
    ):
        self.members = members
        self.board = board
        self.pbx = members.pbx
        self._clock = clock
        self._send_action = send_action
        #: Grows with every snapshot and loss: a late device list of an older link is
        #: thrown away.
        self._link = 0
        self.errors = 0
        self.device_lists = {"asked": 0, "answered": 0, "failed": 0}

    def ami_event(self, msg: Message, received_at: float) -> None:
        if msg.get("Event") not in MEMBER_EVENTS:
            return  # the call model's events: the link hands every listener all of them
        try:
            changed = self.members.feed(msg, received_at)
            if changed:
                self.board.changed(self.pbx, changed, received_at)
        except Exception:
            self.errors += 1
            log.exception(
                "queue members failed on an event", pbx=self.pbx, event_name=msg.get("Event")
            )

    def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
        self._link += 1
        self.members.resync(snapshot.queue_status, received_at)
        self.board.changed(self.pbx, None, received_at)
        log.info("queue members resynchronised", pbx=self.pbx, **self.members.sizes())
        self._ask_device_states()

    def ami_link_lost(self, reason: str, at: float) -> None:
        self._link += 1
        self.members.reset(at)
        self.board.changed(self.pbx, None, at)

    def _ask_device_states(self) -> None:
        if self._send_action is None:
            return
        link, asked_at = self._link, self._clock.seconds()
        self.device_lists["asked"] += 1
        answer = self._send_action(
            "DeviceStateList",
            timeout=DEVICE_LIST_TIMEOUT,
            list_items=frozenset({"DeviceStateChange"}),
        )

        def listed(result: ActionResult) -> None:
            if link != self._link:
                return  # the link it answers for is gone
            self.device_lists["answered"] += 1
            now = self._clock.seconds()
            changed = self.members.listed_devices(result.items, asked_at, now)
            if changed:
                self.board.changed(self.pbx, changed, now)

        def failed(failure: Failure) -> None:
            self.device_lists["failed"] += 1
            if not isinstance(failure.value, AMIConnectionLost):
                log.info(
                    "no device state list; phones outside the queues count from their next change",
                    pbx=self.pbx,
                    error=failure.getErrorMessage(),
                )

        answer.addCallbacks(listed, failed)

    def status(self) -> dict[str, Any]:
        return {
            **self.members.sizes(),
            **self.members.counts,
            "errors": self.errors,
            "device_lists": dict(self.device_lists),
        }


class CallersFeed(AMIListener):
    """One PBX's waiting callers, fed by its link (a sibling of ``MembersFeed``): the
    snapshot's ``QueueEntry`` items, the ``QueueCaller*`` events, a lost link forgets
    them. ``changed(pbx, queues, at)`` hears of every queue whose list changed."""

    wanted_events: frozenset[str] | None = CALLER_EVENTS

    def __init__(
        self,
        callers: QueueCallers,
        changed: Callable[[str, frozenset[str], float], None] | None = None,
    ):
        self.callers = callers
        self.pbx = callers.pbx
        self.changed = changed
        self.errors = 0

    def ami_event(self, msg: Message, received_at: float) -> None:
        if msg.get("Event") not in CALLER_EVENTS:
            return
        try:
            self._tell(self.callers.feed(msg, received_at), received_at)
        except Exception:
            self.errors += 1
            log.exception(
                "queue callers failed on an event", pbx=self.pbx, event_name=msg.get("Event")
            )

    def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
        self._tell(self.callers.resync(snapshot.queue_status, received_at), received_at)

    def ami_link_lost(self, reason: str, at: float) -> None:
        self._tell(self.callers.reset(at), at)

    def _tell(self, queues: frozenset[str], at: float) -> None:
        if queues and self.changed is not None:
            self.changed(self.pbx, queues, at)

    def status(self) -> dict[str, Any]:
        return {**self.callers.sizes(), **self.callers.counts, "errors": self.errors}


class OperatorDevices:
    """The device -> username map, reloaded in the node's pool for the board."""

    def __init__(
        self,
        board: MembersBoard,
        load: Callable[[], Mapping[str, str]],
        run: Runner,
        clock: IReactorTime,
        *,
        interval: float = 60.0,
    ):
        self.board = board
        self._load = load
        self._run = run
        self._clock = clock
        self._loop = LoopingCall(self.refresh)
        self._loop.clock = clock
        self.interval = interval
        self.reloads = 0
        self.failures = 0

    def start(self) -> None:
        """Not waited for: the node starts while the first load runs."""
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def refresh(self) -> Deferred[None]:
        def loaded(owners: dict[str, str]) -> None:
            self.reloads += 1
            self.board.set_operators(owners, self._clock.seconds())

        def failed(failure: Failure) -> None:
            self.failures += 1
            log.error("cannot load operators' devices", error=failure.getErrorMessage())

        loading: Deferred[dict[str, str]] = self._run(lambda: dict(self._load()))
        return loading.addCallbacks(loaded, failed)
