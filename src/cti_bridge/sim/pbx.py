"""The simulated PBX's state (channels, bridges, devices) and the events it emits.

Everything here is a primitive that changes state *and* emits the AMI event Asterisk
22 emits for that change, as an ordered list of header tuples. Call flows
(``dialplan.py``, ``queues.py``) are written in these primitives, so a flow reads
like the event list of a recorded trace. Nothing here knows about TCP: the AMI
server (``server.py``) subscribes to :attr:`PBX.listeners`.

Numbering follows Asterisk: a ``Uniqueid`` is ``<epoch seconds>.<global counter>``,
PJSIP channels share one 8-hex-digit counter (``PJSIP/pstn-0000001b``), Local channels
another, and every channel created on behalf of a call inherits its ``Linkedid``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from .channels import CAUSE_TEXT, DOWN, RING, RINGING, UP, Bridge, Channel, Headers

__all__ = ["PBX", "Endpoint", "Scheduler"]

CALL, DIALPLAN, AGENT, SYSTEM = "call,all", "dialplan,all", "agent,all", "system,all"


class Scheduler:
    """Simulated time on an injected reactor, optionally faster than real time.

    ``now()`` is PBX wall-clock time: it runs ``speed`` times as fast as the reactor's
    clock, so a demo at speed 10 shows a 60 s queue wait in 6 s while Asterisk's own
    duration fields (``HoldTime``, ``TalkTime``) still read 60.
    """

    def __init__(self, reactor: IReactorTime, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.reactor = reactor
        self.speed = speed
        self._r0 = reactor.seconds()
        self._pending: set[IDelayedCall] = set()

    def now(self) -> float:
        return self._r0 + (self.reactor.seconds() - self._r0) * self.speed

    def later(self, delay: float, fn: Callable[..., Any], *args: Any) -> IDelayedCall:
        """Run ``fn(*args)`` after ``delay`` simulated seconds."""

        def run() -> None:
            self._pending.discard(call)
            fn(*args)

        call = self.reactor.callLater(max(0.0, delay) / self.speed, run)
        self._pending.add(call)
        return call

    def cancel(self, call: IDelayedCall | None) -> None:
        if call is None:
            return
        if call.active():
            call.cancel()
        self._pending.discard(call)

    def cancel_all(self) -> None:
        for call in list(self._pending):
            self.cancel(call)


@dataclass(eq=False)
class Endpoint:
    """A SIP phone: an operator's desk phone or the second line."""

    device: str  # PJSIP/1001: the queue member interface and the device-state name
    exten: str  # 1001
    name: str  # the endpoint's callerid name: Anna
    context: str = "agents"
    #: What qualify believes. False: DeviceStateChange UNAVAILABLE, the queue skips it.
    reachable: bool = True
    #: False while reachable: the phone died and qualify has not noticed (trace 07b).
    alive: bool = True


class PBX:
    """Channels, bridges and device states of one simulated Asterisk."""

    def __init__(
        self,
        scheduler: Scheduler,
        rng: random.Random,
        endpoints: list[Endpoint],
        *,
        trunk: str = "pstn",
        first_uniqueid: int = 1,
        first_channel_number: int = 1,
    ) -> None:
        self.sched = scheduler
        self.rng = rng
        self.trunk = trunk
        self.booted_at = scheduler.now()
        self.endpoints = {e.device: e for e in endpoints}
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.device_states: dict[str, str] = {e.device: "NOT_INUSE" for e in endpoints}
        self.listeners: list[Callable[[Headers], None]] = []
        #: Called as ``hook(device, state)`` after a DeviceStateChange (the queues).
        self.device_hooks: list[Callable[[str, str], None]] = []
        #: Called once after the ``Hangup`` of the channel of that name (a Local half
        #: takes its other half with it).
        self.hangup_hooks: dict[str, Callable[[], object]] = {}
        self.calls_processed = 0
        self._uniqueid = first_uniqueid
        self._pjsip_counter = first_channel_number
        self._local_counter = first_channel_number

    # -- time and numbering ------------------------------------------------------

    def now(self) -> float:
        return self.sched.now()

    def _next_uniqueid(self) -> str:
        uid = f"{int(self.now())}.{self._uniqueid}"
        self._uniqueid += 1
        return uid

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def sip_call_id(self) -> str:
        """A SIP Call-ID as Asterisk makes them (the value of ``BRIDGEPVTCALLID``)."""
        return self._uuid()

    def endpoint_for_exten(self, exten: str) -> Endpoint | None:
        return next((e for e in self.endpoints.values() if e.exten == exten), None)

    # -- emission ---------------------------------------------------------------

    def emit(self, event: str, privilege: str, headers: Headers) -> None:
        message = [("Event", event), ("Privilege", privilege), *headers]
        for listener in list(self.listeners):
            listener(message)

    def chan_event(
        self, event: str, chan: Channel, extra: Sequence[tuple[str, str]] = (), priv: str = CALL
    ) -> None:
        self.emit(event, priv, [*chan.snapshot(), *extra])

    # -- channels ---------------------------------------------------------------

    def new_pjsip(
        self,
        endpoint: str,
        *,
        state: int,
        caller: tuple[str, str],
        context: str,
        exten: str,
        linkedid: str | None = None,
        uniqueid: str | None = None,
        language: str = "en",
    ) -> Channel:
        """A PJSIP channel: ``PJSIP/<endpoint>-<counter>``; emits ``Newchannel``."""
        name = f"PJSIP/{endpoint}-{self._pjsip_counter:08x}"
        self._pjsip_counter += 1
        return self._new_channel(
            name,
            f"PJSIP/{endpoint}",
            state,
            caller,
            context=context,
            exten=exten,
            linkedid=linkedid,
            uniqueid=uniqueid,
            language=language,
        )

    def new_local_pair(
        self,
        exten: str,
        context: str,
        caller: tuple[str, str],
        linkedid: str | None,
        uniqueids: tuple[str | None, str | None] = (None, None),
    ) -> tuple[Channel, Channel]:
        """``Local/<exten>@<context>-<n>;1`` (Down) and ``;2`` (Ring), both emitted.

        ``linkedid`` None: the pair starts a call of its own (an Originate); ``uniqueids``
        are an Originate's ``ChannelId``/``OtherChannelId`` (trace 07-channelid)."""
        base = f"Local/{exten}@{context}-{self._local_counter:08x}"
        self._local_counter += 1
        device = f"Local/{exten}@{context}"
        unknown = ("<unknown>", "<unknown>")
        one = self._new_channel(
            f"{base};1", device, DOWN, unknown, context=context, exten=exten,
            linkedid=linkedid, uniqueid=uniqueids[0],
        )  # fmt: skip
        two = self._new_channel(
            f"{base};2", device, RING, caller, context=context, exten=exten,
            linkedid=one.linkedid, uniqueid=uniqueids[1],
        )  # fmt: skip
        return one, two

    def _new_channel(
        self,
        name: str,
        device: str,
        state: int,
        caller: tuple[str, str],
        *,
        context: str,
        exten: str,
        linkedid: str | None,
        uniqueid: str | None = None,
        language: str = "en",
    ) -> Channel:
        uid = uniqueid or self._next_uniqueid()
        chan = Channel(
            name=name,
            uniqueid=uid,
            linkedid=linkedid or uid,
            device=device,
            state=state,
            caller_num=caller[0],
            caller_name=caller[1],
            context=context,
            exten=exten,
            language=language,
            created_at=self.now(),
        )
        self.channels[name] = chan
        self.chan_event("Newchannel", chan)
        self.update_device(device)
        return chan

    def setvar(self, chan: Channel, name: str, value: str) -> None:
        chan.variables[name] = value
        self.chan_event("VarSet", chan, [("Variable", name), ("Value", value)], DIALPLAN)

    def newexten(self, chan: Channel, app: str, data: str = "", *, priority: int = 0) -> None:
        if priority:
            chan.priority = priority
        chan.application, chan.app_data = app, data
        extra = [("Extension", chan.exten), ("Application", app), ("AppData", data)]
        self.chan_event("Newexten", chan, extra, DIALPLAN)

    def set_state(self, chan: Channel, state: int) -> None:
        chan.state = state
        if state == UP and chan.answered_at is None:
            chan.answered_at = self.now()
        self.chan_event("Newstate", chan)
        self.update_device(chan.device)

    def connected_line(self, chan: Channel, num: str, name: str) -> None:
        chan.connected_num, chan.connected_name = num, name
        self.chan_event("NewConnectedLine", chan)

    def new_callerid(self, chan: Channel, num: str, name: str, pres: str) -> None:
        chan.caller_num, chan.caller_name = num, name
        self.chan_event("NewCallerid", chan, [("CID-CallingPres", pres)])

    def hangup_request(self, chan: Channel, cause: int | None = None, tech: str = "") -> None:
        """The far end of ``chan`` hung up (a SIP BYE, 486, ...)."""
        extra: Headers = []
        if cause is not None:
            extra.append(("Cause", str(cause)))
            if tech:
                extra.append(("TechCause", tech))
        self.chan_event("HangupRequest", chan, extra)

    def soft_hangup_request(self, chan: Channel, cause: int = 16) -> None:
        """Asterisk itself ends ``chan`` (dialplan ``Hangup()``, the bridge peer left)."""
        self.chan_event("SoftHangupRequest", chan, [("Cause", str(cause))])

    def hangup(self, chan: Channel, cause: int, tech: str = "") -> None:
        if chan.hung_up:
            return
        chan.hung_up = True
        extra = [("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown"))]
        if tech:
            extra.append(("TechCause", tech))
        self.chan_event("Hangup", chan, extra)
        self.channels.pop(chan.name, None)
        self.update_device(chan.device)
        hook = self.hangup_hooks.pop(chan.name, None)
        if hook is not None:
            hook()

    def hold(self, chan: Channel, held: bool) -> None:
        self.chan_event("Hold" if held else "Unhold", chan)

    # -- dialling ---------------------------------------------------------------

    def dial_event(
        self,
        event: str,
        caller: Channel | None,
        dest: Channel,
        tail: Headers,
        dest_snap: Sequence[tuple[str, str]],
    ) -> None:
        """DialBegin/DialState/DialEnd: an Originate's own dial has no caller side."""
        headers = [*(caller.snapshot() if caller else []), *dest_snap, *tail]
        self.emit(event, CALL, headers)

    def dial_begin(
        self,
        caller: Channel | None,
        dest: Channel,
        dialstring: str,
        dest_snap: Sequence[tuple[str, str]] = (),
    ) -> None:
        snap = list(dest_snap) or dest.snapshot("Dest")
        self.dial_event("DialBegin", caller, dest, [("DialString", dialstring)], snap)

    def dial_state(self, caller: Channel | None, dest: Channel, status: str = "RINGING") -> None:
        self.dial_event("DialState", caller, dest, [("DialStatus", status)], dest.snapshot("Dest"))

    def dial_end(self, caller: Channel | None, dest: Channel, status: str) -> None:
        self.dial_event("DialEnd", caller, dest, [("DialStatus", status)], dest.snapshot("Dest"))

    # -- bridges ----------------------------------------------------------------

    def bridge_create(self) -> Bridge:
        bridge = Bridge(self._uuid())
        self.bridges[bridge.uniqueid] = bridge
        self.emit("BridgeCreate", CALL, bridge.snapshot())
        return bridge

    def bridge_enter(self, bridge: Bridge, chan: Channel) -> None:
        bridge.channels.append(chan)
        chan.bridge = bridge
        self.emit("BridgeEnter", CALL, [*bridge.snapshot(), *chan.snapshot()])

    def bridge_leave(self, bridge: Bridge, chan: Channel) -> None:
        if chan in bridge.channels:
            bridge.channels.remove(chan)
        chan.bridge = None
        self.emit("BridgeLeave", CALL, [*bridge.snapshot(), *chan.snapshot()])

    def bridge_destroy(self, bridge: Bridge) -> None:
        self.bridges.pop(bridge.uniqueid, None)
        self.emit("BridgeDestroy", CALL, bridge.snapshot())

    def bridge_peer_vars(self, a: Channel, b: Channel, *, clear: bool = False) -> None:
        """``BRIDGEPEER``/``BRIDGEPVTCALLID`` as set (or cleared) on entering a bridge."""
        for chan, peer in ((a, b), (b, a)):
            self.setvar(chan, "BRIDGEPEER", "" if clear else peer.name)
            self.setvar(chan, "BRIDGEPVTCALLID", "" if clear else self.sip_call_id())

    # -- devices ----------------------------------------------------------------

    def set_reachable(self, device: str, reachable: bool) -> None:
        """Qualify's verdict on a phone: PeerStatus, DeviceStateChange, ContactStatus."""
        endpoint = self.endpoints[device]
        if endpoint.reachable == reachable:
            return
        endpoint.reachable = reachable
        word = "Reachable" if reachable else "Unreachable"
        self.emit(
            "PeerStatus", SYSTEM, [("ChannelType", "PJSIP"), ("Peer", device), ("PeerStatus", word)]
        )
        self.update_device(device)
        rtt = str(self.rng.randint(300, 900)) if reachable else "0"
        self.emit(
            "ContactStatus",
            SYSTEM,
            [
                ("URI", f"sip:{endpoint.exten}@127.0.0.1:5{endpoint.exten[-3:]}"),
                ("ContactStatus", word),
                ("AOR", endpoint.exten),
                ("EndpointName", endpoint.exten),
                ("RoundtripUsec", rtt),
            ],
        )

    def has_channels(self, device: str) -> bool:
        """Any channel on ``device``, even one still ``Down`` (an INVITE in flight)."""
        return any(c.device == device for c in self.channels.values())

    def device_state_of(self, device: str) -> str:
        endpoint = self.endpoints.get(device)
        if endpoint is not None and not endpoint.reachable:
            return "UNAVAILABLE"
        states = [c.state for c in self.channels.values() if c.device == device]
        if device.startswith("Local/"):  # Local devices never say ringing (quirk 13)
            return "INUSE" if states else "NOT_INUSE"
        busy = any(s in (UP, RING) for s in states)
        ringing = RINGING in states
        if busy and ringing:
            return "RINGINUSE"
        if busy:
            return "INUSE"
        if ringing:
            return "RINGING"
        return "NOT_INUSE"

    def update_device(self, device: str) -> None:
        """Emit ``DeviceStateChange`` when the aggregated state of a device changed."""
        state = self.device_state_of(device)
        if self.device_states.get(device, "NOT_INUSE") == state:
            return
        self.device_states[device] = state
        self.emit("DeviceStateChange", CALL, [("Device", device), ("State", state)])
        for hook in list(self.device_hooks):
            hook(device, state)

    def pseudo_device(self, device: str, state: str) -> None:
        """Queue pseudo devices (``Queue:support``, ``Queue:support_avail``, ...)."""
        if self.device_states.get(device, "NOT_INUSE") == state:
            return
        self.device_states[device] = state
        self.emit("DeviceStateChange", CALL, [("Device", device), ("State", state)])
