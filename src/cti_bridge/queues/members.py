"""Who can take a call now, on one PBX: queue members and devices, fed by AMI (pure).

The callback dialer must never ring an operator who is on a call, ringing, paused or in
wrap-up, and the supervisors' screens show the same states; both read them from here.
``QueueMembers`` starts from the ``QueueStatus`` snapshot that every (re)connect fetches
(``ResyncSnapshot.queue_status``), follows the queue events and ``DeviceStateChange``
from there, and forgets everything when the link is lost: a state it cannot vouch for
is no state at all.

A member is one (queue, interface) pair; a device is a channel prefix as
``calls/devices.py`` defines it (``Local/1001@agents/n`` is device ``Local/1001@agents``).
A member's state is the least available of what its own events say (ringing from
``AgentCalled`` until its channel connects, gives up or hangs up; on a call from
``AgentConnect`` or ``InCall``; wrap-up after ``AgentComplete``; paused) and what its
state interface's device says (``Status`` of its own events, or the newer
``DeviceStateChange``). Wrap-up is kept as "until T", so a read at any instant is right
without a timer. Every state carries ``since``: when it was entered, on the clock the
caller hands in (``at``).

Trust: member events create or update a member (they carry all of it); ``Agent*``
events about a member never seen are ignored. In the snapshot, a ``QueueMember`` outside
its queue's section, after a ``QueueEntry`` (whose caller name Asterisk sends raw, so a
caller can forge list items after it) or in a queue listed twice is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cti_bridge.calls.devices import Topology, device_of_interface

__all__ = [
    "BUSIEST_FIRST",
    "DEVICE_STATES",
    "MEMBER_EVENTS",
    "MEMBER_STATES",
    "STATUS_NAMES",
    "DeviceView",
    "MemberView",
    "MembershipPart",
    "Part",
    "QueueMembers",
    "least_available",
]

Msg = Mapping[str, str]

#: What a member, a device or an operator can be; the dialer rings ``available`` only.
MEMBER_STATES = ("available", "ringing", "on_call", "wrap_up", "paused", "unavailable")
#: The order in which one state outweighs another ("least available" first).
BUSIEST_FIRST = ("on_call", "ringing", "wrap_up", "paused", "unavailable", "available")
_RANK = {state: rank for rank, state in enumerate(BUSIEST_FIRST)}

#: Asterisk's numeric device states (the ``Status`` of ``QueueMember*``), by the names
#: ``DeviceStateChange`` gives them.
STATUS_NAMES = {
    "0": "UNKNOWN",
    "1": "NOT_INUSE",
    "2": "INUSE",
    "3": "BUSY",
    "4": "INVALID",
    "5": "UNAVAILABLE",
    "6": "RINGING",
    "7": "RINGINUSE",
    "8": "ONHOLD",
}
#: What a device state means for taking a call. Unknown is not free: a device nobody
#: vouches for is never rung (and a name not listed here means the same).
DEVICE_STATES = {
    "NOT_INUSE": "available",
    "INUSE": "on_call",
    "BUSY": "on_call",
    "ONHOLD": "on_call",
    "RINGINUSE": "on_call",
    "RINGING": "ringing",
    "UNAVAILABLE": "unavailable",
    "INVALID": "unavailable",
    "UNKNOWN": "unavailable",
}

_MEMBER_UPDATES = frozenset(
    {
        "QueueMemberAdded",
        "QueueMemberStatus",
        "QueueMemberPause",
        "QueueMemberPaused",  # Asterisk 12's name of QueueMemberPause
        "QueueMemberPenalty",
        "QueueMemberRinginuse",
    }
)
_AGENT_EVENTS = frozenset(
    {"AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "AgentDump"}
)
#: The live events ``QueueMembers.feed`` acts on (the AMI listener's ``wanted_events``).
MEMBER_EVENTS = (
    _MEMBER_UPDATES
    | _AGENT_EVENTS
    | {
        "QueueMemberRemoved",
        "DeviceStateChange",
        "Hangup",
        "Shutdown",
    }
)

#: Devices remembered outside any queue before the one silent longest is forgotten
#: (callbacks make a new ``Local/<number>@…`` device per customer).
DEFAULT_MAX_DEVICES = 10_000


class Part(Protocol):
    """What an operator's state is summed up from: a device or a membership."""

    @property
    def state(self) -> str: ...
    @property
    def since(self) -> float: ...


class MembershipPart(Part, Protocol):
    @property
    def queue(self) -> str: ...
    @property
    def paused(self) -> bool: ...
    @property
    def paused_reason(self) -> str | None: ...
    @property
    def wrap_up_until(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class MemberView:
    """One queue membership as read at one instant."""

    queue: str
    interface: str  # as the queue dials it: ``Local/1001@agents/n``
    device: str  # its device: ``Local/1001@agents``
    state_interface: str  # whose device state counts: ``Local/1001@agents``
    name: str  # the member name in queues.conf (text from the PBX)
    state: str
    since: float
    paused: bool
    paused_reason: str | None
    device_state: str  # the raw device state it was judged by: ``NOT_INUSE``, ...
    #: A queue ring is open (``AgentCalled``, not yet connected or over). A Local
    #: channel state interface says INUSE while it rings (12-burst #3162), so the state
    #: may be ``on_call`` then: this tells the two apart.
    ringing: bool
    wrap_up_until: float | None  # set while in wrap-up
    membership: str  # static | dynamic | realtime
    penalty: int
    calls_taken: int


@dataclass(frozen=True, slots=True)
class DeviceView:
    """One device's own state (``DeviceStateChange``), members aside."""

    device: str
    state: str
    since: float
    device_state: str


@dataclass(slots=True)
class _Member:
    queue: str
    interface: str
    device: str
    state_interface: str
    state_device: str  # the state interface's device
    name: str = ""
    membership: str = ""
    penalty: int = 0
    calls_taken: int = 0
    paused: bool = False
    paused_reason: str | None = None
    wrapup: float = 0.0  # the member's own Wrapuptime; 0: the queue's
    status: str = "UNKNOWN"  # device state from its own Status header
    status_seq: int = 0  # when it was said (the holder's update counter)
    in_call: bool = False  # InCall: 1, for a connection whose channel we do not know
    rings: set[str] = field(default_factory=set)  # AgentCalled channels still ringing
    connected: str | None = None  # the AgentConnect channel
    wrap_up_until: float | None = None
    state: str = "unavailable"
    since: float = 0.0


@dataclass(slots=True)
class _Device:
    raw: str
    updated_at: float
    seq: int  # the holder's update counter: newer than a member's Status or not
    state: str
    since: float


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _epoch(value: str | None, at: float) -> float | None:
    """A PBX epoch header (``LastCall``, ``LastPause``) if it is set and not after ``at``."""
    seconds = _int(value)
    return float(seconds) if 0 < seconds <= at else None


class QueueMembers:
    """The members and devices of one PBX. Every method takes the instant it happens at.

    ``feed``, ``resync``, ``listed_devices`` and ``reset`` return the devices of which
    something a reader sees changed (a state, its since, a pause or its reason, a
    wrap-up, an open ring), so the operator board recomputes only those. A repeat that
    changes none of that (Asterisk says most device states twice) returns none.
    """

    def __init__(
        self,
        pbx: str,
        *,
        topology: Topology | None = None,
        wrapup_seconds: Mapping[str, float] | None = None,
        default_wrapup_seconds: float = 0.0,
        max_devices: int = DEFAULT_MAX_DEVICES,
    ):
        self.pbx = pbx
        self.topology = topology or Topology()
        #: Per queue, the wrap-up to assume when neither the member nor the queue's
        #: ``QueueParams`` say (Asterisk 22 sends the queue's own in neither).
        self.wrapup_seconds = dict(wrapup_seconds or {})
        #: The same for a queue ``wrapup_seconds`` does not name (``[workload]``).
        self.default_wrapup_seconds = default_wrapup_seconds
        self.max_devices = max_devices
        self._members: dict[tuple[str, str], _Member] = {}
        self._devices: dict[str, _Device] = {}
        #: device -> members whose interface or state interface is that device.
        self._by_device: dict[str, set[tuple[str, str]]] = {}
        #: state interface -> members judged by its device state.
        self._by_state_interface: dict[str, set[tuple[str, str]]] = {}
        self._rings: dict[str, set[tuple[str, str]]] = {}  # ringing channel -> members
        self._connected: dict[str, tuple[str, str]] = {}  # connected channel -> member
        self._queue_wrapup: dict[str, float] = {}  # from QueueParams, if it says
        #: Counts every device state said (a member's Status or a device's own), so
        #: "the newer of the two" holds also for events of the same instant.
        self._seq = 0
        self.counts = {"events": 0, "unknown_member": 0, "dropped_items": 0, "resets": 0}

    # -- the link -------------------------------------------------------------------------

    def resync(self, items: Sequence[Msg], at: float) -> frozenset[str]:
        """A ``QueueStatus`` list (``QueueParams``/``QueueMember``/``QueueEntry``, in PBX
        order) replaces every member. Rings and connections the list cannot show are
        forgotten; ``InCall`` and ``Status`` stand for them."""
        touched = set(self._by_device)
        self._members.clear()
        self._by_device.clear()
        self._by_state_interface.clear()
        self._rings.clear()
        self._connected.clear()
        self._queue_wrapup.clear()
        accepted: dict[str, list[Msg]] = {}
        listed_twice: set[str] = set()
        section: str | None = None
        entries_seen = False
        for item in items:
            event, queue = item.get("Event"), item.get("Queue", "")
            if event == "QueueParams":
                if queue in accepted:
                    listed_twice.add(queue)
                section, entries_seen = queue, False
                accepted.setdefault(queue, [])
                wrapup = _int(item.get("Wrapuptime"))
                if wrapup:
                    self._queue_wrapup[queue] = float(wrapup)
            elif event == "QueueEntry":
                entries_seen = entries_seen or queue == section
            elif event == "QueueMember":
                if queue != section or entries_seen or section is None:
                    self.counts["dropped_items"] += 1
                    continue
                accepted[queue].append(item)
        for queue, members in accepted.items():
            if queue in listed_twice:
                self.counts["dropped_items"] += len(members)
                continue
            for item in members:
                touched |= self._listed_member(item, at)
        return frozenset(touched)

    def reset(self, at: float) -> frozenset[str]:
        """The link is lost (or the PBX shut down): nothing here is known any more."""
        touched = frozenset(self._by_device) | frozenset(self._devices)
        self._members.clear()
        self._devices.clear()
        self._by_device.clear()
        self._by_state_interface.clear()
        self._rings.clear()
        self._connected.clear()
        self._queue_wrapup.clear()
        self.counts["resets"] += 1
        return touched

    def listed_devices(self, items: Iterable[Msg], asked_at: float, at: float) -> frozenset[str]:
        """A ``DeviceStateList`` answer (asked at ``asked_at``): each device's state,
        unless a live ``DeviceStateChange`` since then already said newer."""
        touched: set[str] = set()
        for item in items:
            device, state = item.get("Device"), item.get("State")
            if not device or not state:
                continue
            known = self._devices.get(device)
            if known is not None and known.updated_at >= asked_at:
                continue
            touched |= self._device_state(device, state, at)
        return frozenset(touched)

    # -- live events ----------------------------------------------------------------------

    def feed(self, msg: Msg, at: float) -> frozenset[str]:
        event = msg.get("Event")
        if event not in MEMBER_EVENTS:
            return frozenset()
        self.counts["events"] += 1
        if event == "Hangup":
            return self._hangup(msg.get("Uniqueid", ""), at)
        if event == "DeviceStateChange":
            return self._device_state(msg.get("Device", ""), msg.get("State", ""), at)
        if event == "Shutdown":
            return self.reset(at)
        queue, interface = msg.get("Queue"), msg.get("Interface")
        if not queue or not interface:
            return frozenset()
        key = (queue, interface)
        if event in _MEMBER_UPDATES:
            return self._member_update(key, msg, at)
        member = self._members.get(key)
        if member is None:
            self.counts["unknown_member"] += 1
            return frozenset()
        if event == "QueueMemberRemoved":
            self._forget(member)
            return frozenset({member.device, member.state_device})
        channel = msg.get("DestUniqueid") or msg.get("DestChannel") or ""
        before = _signature(member)
        self._settle(member, at)
        if event == "AgentCalled":
            member.rings.add(channel)
            self._rings.setdefault(channel, set()).add(key)
        elif event == "AgentConnect":
            self._ring_over(member, channel)
            member.connected = channel
            self._connected[channel] = key
        elif event in ("AgentRingNoAnswer", "AgentDump"):
            self._ring_over(member, channel)
            if member.connected == channel:
                self._disconnect(member)
        elif event == "AgentComplete":
            # Late after a redirect (05-blind-transfer-redirect): the member may be on
            # the next call by now, which this one must not end.
            self._ring_over(member, channel)
            if member.connected == channel:
                self._disconnect(member)
            if member.connected is None:
                member.in_call = False
            wrapup = self._wrapup_of(member)
            member.wrap_up_until = at + wrapup if wrapup > 0 else None
        return self._update(member, at, before)

    # -- reads ----------------------------------------------------------------------------

    def members(self, at: float) -> list[MemberView]:
        """Every member, by queue then interface, as at ``at``."""
        return [self._view(self._members[key], at) for key in sorted(self._members)]

    def members_of_queue(self, queue: str, at: float) -> list[MemberView]:
        """``queue``'s members, by interface, as at ``at`` (the others' views not built)."""
        keys = sorted(key for key in self._members if key[0] == queue)
        return [self._view(self._members[key], at) for key in keys]

    def memberships(self, device: str, at: float) -> list[MemberView]:
        """The members whose interface or state interface is ``device``."""
        keys = sorted(self._by_device.get(device, ()))
        return [self._view(self._members[key], at) for key in keys]

    def device(self, device: str, at: float) -> DeviceView | None:
        """``device``'s own state, if a ``DeviceStateChange`` (or the list) gave one."""
        known = self._devices.get(device)
        if known is None:
            return None
        return DeviceView(device, known.state, known.since, known.raw)

    def parts(self, devices: Iterable[str], at: float) -> tuple[list[Part], list[MembershipPart]]:
        """The own states of these devices and their memberships (each once, by queue
        and interface), right at ``at``: what ``operators.operator_state`` reads, without
        building a view of each. Read-only; valid until the next change."""
        own: list[Part] = []
        keys: set[tuple[str, str]] = set()
        for device in devices:
            known = self._devices.get(device)
            if known is not None:
                own.append(known)
            keys.update(self._by_device.get(device, ()))
        memberships: list[MembershipPart] = []
        for key in sorted(keys):
            member = self._members[key]
            self._settle(member, at)  # a wrap-up that ran out: as an event would find it
            memberships.append(member)
        return own, memberships

    def queue_names(self) -> set[str]:
        """The queues that have members (no view built)."""
        return {queue for queue, _ in self._members}

    def queues_by_device(self) -> dict[str, frozenset[str]]:
        """Per device, the queues it is a member of (its interface or state interface)."""
        return {
            device: frozenset(queue for queue, _ in keys)
            for device, keys in self._by_device.items()
            if keys
        }

    def queues_of(self, device: str) -> frozenset[str]:
        """The queues ``device`` is a member of now."""
        return frozenset(queue for queue, _ in self._by_device.get(device, ()))

    def sizes(self) -> dict[str, int]:
        return {"members": len(self._members), "devices": len(self._devices)}

    # -- inside ---------------------------------------------------------------------------

    def _listed_member(self, item: Msg, at: float) -> set[str]:
        """A snapshot's ``QueueMember`` (``Name``/``Location``, not ``MemberName``/
        ``Interface``). Its ``since`` is estimated from the PBX's own times: paused since
        ``LastPause``, available since the latest of its last call, pause and login."""
        queue, interface = item.get("Queue", ""), item.get("Location", "")
        if not queue or not interface:
            return set()
        member = self._new_member((queue, interface), item.get("StateInterface") or interface)
        self._apply_fields(member, item, item.get("Name", ""))
        member.state = self._derive(member, at)
        hints = [item.get("LastCall"), item.get("LastPause"), item.get("LoginTime")]
        if member.state == "paused":
            hints = [item.get("LastPause")]
        estimates = [t for t in (_epoch(h, at) for h in hints) if t is not None]
        quiet = member.state in ("available", "paused")
        member.since = max(estimates) if quiet and estimates else at
        return {member.device, member.state_device}

    def _member_update(self, key: tuple[str, str], msg: Msg, at: float) -> frozenset[str]:
        member = self._members.get(key)
        state_interface = msg.get("StateInterface") or key[1]
        if member is None:
            member = self._new_member(key, state_interface)
            member.since = at
            return self._apply_and_update(member, msg, at, None)
        if member.state_interface != state_interface:
            touched = {member.state_device}
            self._forget(member)
            rings, connected = member.rings, member.connected
            member = self._new_member(key, state_interface)
            member.rings, member.connected = rings, connected
            for channel in rings:  # a ring or a call under way goes on
                self._rings.setdefault(channel, set()).add(key)
            if connected is not None:
                self._connected[connected] = key
            member.since = at
            return frozenset(touched) | self._apply_and_update(member, msg, at, None)
        before = _signature(member)
        self._settle(member, at)
        return self._apply_and_update(member, msg, at, before)

    def _apply_and_update(
        self, member: _Member, msg: Msg, at: float, before: tuple[object, ...] | None
    ) -> frozenset[str]:
        self._apply_fields(member, msg, msg.get("MemberName", ""))
        return self._update(member, at, before)

    def _apply_fields(self, member: _Member, msg: Msg, name: str) -> None:
        member.name = name or member.name
        member.membership = msg.get("Membership", member.membership)
        member.penalty = _int(msg.get("Penalty"))
        member.calls_taken = _int(msg.get("CallsTaken"))
        member.paused = msg.get("Paused") == "1"
        member.paused_reason = (msg.get("PausedReason") or None) if member.paused else None
        member.wrapup = float(_int(msg.get("Wrapuptime")))
        status = msg.get("Status")
        if status is not None:
            self._seq += 1
            member.status = STATUS_NAMES.get(status, "UNKNOWN")
            member.status_seq = self._seq
        in_call = msg.get("InCall")
        if in_call is not None:
            member.in_call = in_call == "1"

    def _new_member(self, key: tuple[str, str], state_interface: str) -> _Member:
        queue, interface = key
        member = _Member(
            queue,
            interface,
            device_of_interface(interface),
            state_interface,
            device_of_interface(state_interface),
        )
        self._members[key] = member
        self._by_device.setdefault(member.device, set()).add(key)
        self._by_device.setdefault(member.state_device, set()).add(key)
        self._by_state_interface.setdefault(state_interface, set()).add(key)
        return member

    def _forget(self, member: _Member) -> None:
        key = (member.queue, member.interface)
        self._members.pop(key, None)
        for index, name in (
            (self._by_device, member.device),
            (self._by_device, member.state_device),
            (self._by_state_interface, member.state_interface),
        ):
            keys = index.get(name)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[name]
        for channel in member.rings:
            self._rings.get(channel, set()).discard(key)
        if member.connected is not None:
            self._connected.pop(member.connected, None)

    def _ring_over(self, member: _Member, channel: str) -> None:
        member.rings.discard(channel)
        ringing = self._rings.get(channel)
        if ringing is not None:
            ringing.discard((member.queue, member.interface))
            if not ringing:
                del self._rings[channel]

    def _disconnect(self, member: _Member) -> None:
        if member.connected is not None:
            self._connected.pop(member.connected, None)
            member.connected = None

    def _hangup(self, channel: str, at: float) -> frozenset[str]:
        """A rung or connected member channel ended: no wrap-up (that is AgentComplete's)."""
        keys = set(self._rings.pop(channel, ()))
        connected = self._connected.pop(channel, None)
        if connected is not None:
            keys.add(connected)
        touched: set[str] = set()
        for key in keys:
            member = self._members.get(key)
            if member is None:
                continue
            before = _signature(member)
            self._settle(member, at)
            member.rings.discard(channel)
            if member.connected == channel:
                member.connected = None
            touched |= self._update(member, at, before)
        return frozenset(touched)

    def _device_state(self, device: str, raw: str, at: float) -> frozenset[str]:
        if not device or not raw or device.startswith("Queue:"):
            return frozenset()  # app_queue's own pseudo-devices (queue and pause lamps)
        keys = self._by_state_interface.get(device)
        if keys is None and self.topology.is_trunk(device):
            return frozenset()  # the public network is nobody's phone
        members = [self._members[k] for k in sorted(keys)] if keys else []
        known = self._devices.get(device)
        if (
            known is not None
            and known.raw == raw
            and all(m.status_seq < known.seq for m in members)
        ):
            # Said again (Asterisk often does, twice in a row): nothing a reader sees
            # changes; it only stays the newest word on this device.
            self._seq += 1
            known.updated_at, known.seq = at, self._seq
            del self._devices[device]
            self._devices[device] = known  # the newest word: forgotten last
            return frozenset()
        befores = [_signature(member) for member in members]
        for member in members:
            self._settle(member, at)
        state = DEVICE_STATES.get(raw, "unavailable")
        self._seq += 1
        touched: set[str] = set()
        known = self._devices.pop(device, None)  # re-inserted last: oldest first
        if known is None:
            known = _Device(raw, at, self._seq, state, at)
            self._make_room()
            touched.add(device)
        elif known.state != state:
            known.state, known.since = state, at
            touched.add(device)
        known.raw, known.updated_at, known.seq = raw, at, self._seq
        self._devices[device] = known
        for member, before in zip(members, befores, strict=True):
            touched |= self._update(member, at, before)
        return frozenset(touched)

    def _make_room(self) -> None:
        while len(self._devices) >= self.max_devices:
            oldest = next(iter(self._devices))
            del self._devices[oldest]

    def _wrapup_of(self, member: _Member) -> float:
        if member.wrapup > 0:
            return member.wrapup
        return self._queue_wrapup.get(member.queue) or self.wrapup_seconds.get(
            member.queue, self.default_wrapup_seconds
        )

    def _device_state_of(self, member: _Member) -> str:
        """The newer of the member's own ``Status`` and its state interface's device."""
        device = self._devices.get(member.state_interface)
        if device is not None and device.seq > member.status_seq:
            return device.raw
        return member.status

    def _derive(self, member: _Member, at: float) -> str:
        device = DEVICE_STATES.get(self._device_state_of(member), "unavailable")
        if member.connected is not None or member.in_call or device == "on_call":
            return "on_call"
        if member.rings or device == "ringing":
            return "ringing"
        if member.wrap_up_until is not None and at < member.wrap_up_until:
            return "wrap_up"
        if member.paused:
            return "paused"
        return device  # available | unavailable

    def _settle(self, member: _Member, at: float) -> None:
        """Before a change at ``at``: a wrap-up that ran out meanwhile ended at its own
        instant, not at ``at``."""
        until = member.wrap_up_until
        if until is not None and until <= at:
            member.wrap_up_until = None
            if member.state == "wrap_up":
                state = self._derive(member, until)
                if state != member.state:
                    member.state, member.since = state, until

    def _update(
        self, member: _Member, at: float, before: tuple[object, ...] | None
    ) -> frozenset[str]:
        """The member's state after a change; its devices if what a reader sees of it
        changed (``before``: as it was; ``None``: new), else none: Asterisk repeats
        itself a lot (a device INUSE twice, a status that changes nothing)."""
        state = self._derive(member, at)
        if state != member.state:
            member.state, member.since = state, at
        if before is not None and _signature(member) == before:
            return frozenset()
        return frozenset({member.device, member.state_device})

    def _view(self, member: _Member, at: float) -> MemberView:
        state, since, until = member.state, member.since, member.wrap_up_until
        if state == "wrap_up" and until is not None and until <= at:
            state, since, until = self._derive(member, until), until, None
        return MemberView(
            queue=member.queue,
            interface=member.interface,
            device=member.device,
            state_interface=member.state_interface,
            name=member.name,
            state=state,
            since=since,
            paused=member.paused,
            paused_reason=member.paused_reason,
            device_state=self._device_state_of(member),
            ringing=bool(member.rings) and member.connected is None,
            wrap_up_until=until if state == "wrap_up" else None,
            membership=member.membership,
            penalty=member.penalty,
            calls_taken=member.calls_taken,
        )


def _signature(member: _Member) -> tuple[object, ...]:
    """What a reader sees of a member's state: a change of it is worth telling."""
    return (
        member.state,
        member.since,
        member.paused,
        member.paused_reason,
        member.wrap_up_until,
        bool(member.rings) and member.connected is None,
    )


def least_available(states: Iterable[str]) -> str:
    """The state that outweighs the others (``BUSIEST_FIRST``); none: ``unavailable``."""
    return min(states, key=lambda s: _RANK.get(s, _RANK["unavailable"]), default="unavailable")
