"""The operators' phones and load on the node: ``install_workload(node)``.

- ``PhonesFeed`` (one AMI listener per PBX): the endpoint list after every (re)connect
  (``PJSIPShowEndpoints``), ``ContactStatus`` live, a lost link forgets all; with the
  members board's device states (its ``watchers``) and device map this keeps
  ``phones.PhoneStates``.
- ``Workload`` pushes ``phone_status`` when a phone's state changes and
  ``break_reminder`` when someone has worked ``[workload] break_after_minutes`` without
  a break (checked once a minute, ``breaks.BreakWatch``), each to the operator's own
  topic and to the supervisors' topic; ``/healthz`` gets a ``phones`` section that never
  makes the node degraded (an operator off duty with the phone off is no fault of the
  daemon's; a PBX link that is down already says so under ``ami``).
- The wrap-up: ``[workload] wrapup_seconds`` / ``wrapup_queues`` go to each PBX's members
  (``QueueMembers``), which Asterisk 22 does not tell the queues' ``wrapuptime`` to.

All on the node's reactor; the operator's topic needs their account id (the pool).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from cti_bridge.ami.listener import AMIListener, ResyncSnapshot
from cti_bridge.ami.parser import Message
from cti_bridge.ami.protocol import ActionResult, AMIConnectionLost
from cti_bridge.bus import Bus
from cti_bridge.bus.topics import SUPERVISORS_TOPIC, operator_topic

from .breaks import BreakWatch
from .live import iso
from .members import least_available
from .operators import MembersBoard
from .phones import PHONE_EVENTS, PHONE_STATES, Contacts, PhoneChange, PhoneStates

if TYPE_CHECKING:
    from cti_bridge.app.config import WorkloadConfig
    from cti_bridge.app.node import Node

__all__ = ["BREAK_CHECK_SECONDS", "PhonesFeed", "Workload", "install_workload"]

log = structlog.get_logger("cti_bridge.queues.workload")

#: Seconds the endpoint list may take.
ENDPOINT_LIST_TIMEOUT = 10.0
#: Seconds between the checks for operators due a break.
BREAK_CHECK_SECONDS = 60.0

SendAction = Callable[..., Deferred[ActionResult]]
#: username -> Deferred of their account id (``None``: no active account).
OperatorId = Callable[[str], Deferred[Any]]


class PhonesFeed(AMIListener):
    """One PBX's PJSIP contacts, fed by its link; every change tells ``changed``."""

    wanted_events: frozenset[str] | None = PHONE_EVENTS

    def __init__(
        self,
        contacts: Contacts,
        changed: Callable[[str, frozenset[str] | None, float], None],
        clock: IReactorTime,
        *,
        send_action: SendAction | None = None,
    ):
        self.contacts = contacts
        self.pbx = contacts.pbx
        self._changed = changed
        self._clock = clock
        self._send_action = send_action
        self._link = 0  # a late list of an older link is thrown away
        self.errors = 0

    def ami_event(self, msg: Message, received_at: float) -> None:
        if msg.get("Event") not in PHONE_EVENTS:
            return
        try:
            changed = self.contacts.feed(msg, received_at)
            if changed is None or changed:
                self._changed(self.pbx, changed, received_at)
        except Exception:
            self.errors += 1
            log.exception("phones failed on an event", pbx=self.pbx, event_name=msg.get("Event"))

    def ami_resync(self, snapshot: ResyncSnapshot, received_at: float) -> None:
        self._link += 1
        self.contacts.reset()
        self._changed(self.pbx, None, received_at)
        if self._send_action is None:
            self.contacts.refused()
            self._changed(self.pbx, None, received_at)
            return
        link, asked_at = self._link, self._clock.seconds()
        answer = self._send_action(
            "PJSIPShowEndpoints",
            timeout=ENDPOINT_LIST_TIMEOUT,
            list_items=frozenset({"EndpointList"}),
        )

        def listed(result: ActionResult) -> None:
            if link == self._link:
                self.contacts.listed(result.items, asked_at)
                self._changed(self.pbx, None, self._clock.seconds())

        def failed(failure: Failure) -> None:
            if link != self._link or isinstance(failure.value, AMIConnectionLost):
                return
            log.info(
                "no PJSIP endpoint list; phones go by their device state",
                pbx=self.pbx,
                error=failure.getErrorMessage(),
            )
            self.contacts.refused()
            self._changed(self.pbx, None, self._clock.seconds())

        answer.addCallbacks(listed, failed)

    def ami_link_lost(self, reason: str, at: float) -> None:
        self._link += 1
        self.contacts.reset()
        self._changed(self.pbx, None, at)


class Workload:
    """The phones' states and the break watch, kept current by the board's changes; the
    pushes for both."""

    def __init__(
        self,
        board: MembersBoard,
        bus: Bus,
        clock: IReactorTime,
        operator_id: OperatorId,
        *,
        break_after_minutes: float = 120.0,
        break_minutes: float = 5.0,
    ):
        self.board = board
        self.bus = bus
        self._clock = clock
        self._operator_id = operator_id
        self.phones = PhoneStates(self._device_state)
        self.breaks = BreakWatch(break_after_minutes * 60.0, break_minutes * 60.0)
        self._owners_loaded_at: float | None = None
        self.pushed = {"phone_status": 0, "break_reminder": 0}
        self.check = LoopingCall(self.remind)
        self.check.clock = clock

    # -- what changed ---------------------------------------------------------------------

    def contacts_changed(self, pbx: str, devices: frozenset[str] | None, at: float) -> None:
        self._tell(self.phones.changed(pbx, devices, at))

    def members_changed(
        self, pbx: str, usernames: frozenset[str], devices: frozenset[str] | None, at: float
    ) -> None:
        """The board's watcher: these operators (and their devices) were computed."""
        if self.board.operators_loaded_at != self._owners_loaded_at:
            self._owners_loaded_at = self.board.operators_loaded_at
            self._tell(self.phones.set_owners(self.board.device_owners(), at))
            known = set(self.board.device_owners().values())
            for username in [u for u in self.breaks.operators() if u not in known]:
                self.breaks.forget(username)
        else:
            self._tell(self.phones.changed(pbx, self.phones.devices_of(usernames), at))
        for username in usernames:
            self.breaks.observe(username, *self._duty_state(username, at))

    def remind(self) -> None:
        """Once a minute: who is due a break reminder."""
        for reminder in self.breaks.due(self._clock.seconds()):
            message = {
                "type": "break_reminder",
                "operator": reminder.operator,
                "on_duty_minutes": reminder.on_duty_minutes,
            }
            log.info("break reminder", operator=reminder.operator, minutes=reminder.on_duty_minutes)
            self._publish(reminder.operator, message)

    # -- reads ----------------------------------------------------------------------------

    def agent_phones(self, username: str) -> list[dict[str, Any]]:
        """The agent view's ``phones``."""
        return [
            {"pbx": p.pbx, "device": p.device, "state": p.state}
            for p in self.phones.of_operator(username)
        ]

    def status(self) -> dict[str, Any]:
        """The ``/healthz`` section: per PBX the endpoint list's state, the counts and
        every bound phone. ``degraded`` when a phone is not registered (the section
        does not count towards the node's status)."""
        pbxs: dict[str, Any] = {}
        bad = False
        for pbx, contacts in sorted(self.phones.contacts.items()):
            phones = self.phones.phones(pbx)
            counts = dict.fromkeys(PHONE_STATES, 0)
            for phone in phones:
                counts[phone.state] += 1
            bad = bad or counts["unreachable"] > 0 or counts["unregistered"] > 0
            pbxs[pbx] = {
                "endpoint_list": contacts.listing,
                **counts,
                **{f"contact_{k}": v for k, v in contacts.counts.items()},
                "phones": [
                    {
                        "device": p.device,
                        "operator": p.operator,
                        "state": p.state,
                        "since": iso(p.since),
                    }
                    for p in phones
                ],
            }
        return {"status": "degraded" if bad else "ok", "pbx": pbxs, "pushed": dict(self.pushed)}

    # -- inside ---------------------------------------------------------------------------

    def _device_state(self, pbx: str, device: str) -> str | None:
        if pbx not in self.board.pbxs():
            return None
        members = self.board.members_of(pbx)
        at = self._clock.seconds()
        own = members.device(device, at)
        if own is not None:
            return own.device_state
        for member in members.memberships(device, at):
            return member.device_state
        return None

    def _duty_state(self, username: str, at: float) -> tuple[str | None, float]:
        """Over every PBX, as the agent view sums it up: the least available state and
        the latest ``since`` of it; ``None`` when no PBX knows the operator."""
        views = [v for pbx in self.board.pbxs() if (v := self.board.operator(pbx, username, at))]
        if not views:
            return None, at
        state = least_available(v.state for v in views)
        return state, max(v.since for v in views if v.state == state)

    def _tell(self, changes: list[PhoneChange]) -> None:
        for change in changes:
            phone = change.phone
            if change.before is None and phone.state == "unknown":
                continue  # first seen, nothing known yet: nothing to tell
            message = {
                "type": "phone_status",
                "pbx": phone.pbx,
                "operator": phone.operator,
                "device": phone.device,
                "state": phone.state,
                "since": iso(phone.since),
            }
            self.pushed["phone_status"] += 1
            self._publish(phone.operator, message)

    def _publish(self, username: str, message: Mapping[str, Any]) -> None:
        kind = str(message["type"])
        if kind == "break_reminder":
            self.pushed[kind] += 1
        self.bus.publish(SUPERVISORS_TOPIC, message)

        def found(operator_id: Any) -> None:
            if operator_id is not None:
                self.bus.publish(operator_topic(operator_id), message)

        def failed(failure: Failure) -> None:
            log.error(
                "cannot find the operator's account for a push",
                operator=username,
                message_type=kind,
                error=failure.getErrorMessage(),
            )

        self._operator_id(username).addCallbacks(found, failed)


def configure_wrapup(board: MembersBoard, workload: WorkloadConfig) -> None:
    """``[workload]``'s wrap-up for every PBX's members (see docs/queues.md)."""
    for pbx in board.pbxs():
        members = board.members_of(pbx)
        members.default_wrapup_seconds = workload.wrapup_seconds
        members.wrapup_seconds.update(workload.wrapup_queues)


def install_workload(node: Node) -> Workload:
    """After the queues room's ``install``: the board and the live view are there."""
    board = node.parts["members"]
    assert isinstance(board, MembersBoard)
    config = node.config.workload
    configure_wrapup(board, config)
    workload = Workload(
        board,
        node.bus,
        node.reactor,
        node.accounts.operator_id_for,
        break_after_minutes=config.break_after_minutes,
        break_minutes=config.break_minutes,
    )
    for pbx in board.pbxs():
        contacts = Contacts(pbx)
        workload.phones.add(contacts)
        client = node.clients.get(pbx)
        feed = PhonesFeed(
            contacts,
            workload.contacts_changed,
            node.reactor,
            send_action=client.send_action if client is not None else None,
        )
        node.add_listener(feed, pbx=pbx)
    # First: the phones are judged before the supervisors' pushes build the agents' views
    # from the same change (an agent_update must carry the phone state it is pushed for).
    board.watchers.insert(0, workload.members_changed)
    supervision = node.parts.get("supervision")
    view = getattr(supervision, "view", None)
    if view is not None:
        view.phones = workload.agent_phones
    node.health.add("phones", workload.status, counts=False)
    node.provide("workload", workload)

    def start() -> None:
        workload.check.start(BREAK_CHECK_SECONDS, now=False)

    def stop() -> None:
        if workload.check.running:
            workload.check.stop()

    node.on_start(start)
    node.on_stop(stop)
    return workload
