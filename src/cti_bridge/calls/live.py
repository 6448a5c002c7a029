"""The live calls of one PBX: the one state holder that the handlers and the resync change.

The event handlers (``calls/handlers/``) and the reconnect resync (``calls/resync.py``)
read and change the model's state only through this class: its calls and channels, the
PBX clock offset, whether the link was lost, the ended Linkedids, and the operations that
every concern shares - start a call, answer it, transfer it, close a leg, end it. The
operations append the domain events they cause to ``out``, in order.

Trust lives here too (``known``): an event names a channel only if it names it exactly
as the model knows it; a contradiction is counted in ``rejected_events``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from cti_bridge.calls.callerid import unescape_c, withheld_by_presentation
from cti_bridge.calls.devices import Topology, device_of_channel
from cti_bridge.calls.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    Direction,
    DomainEvent,
    RingEnded,
    RingResult,
    Transfer,
    TransferKind,
)
from cti_bridge.calls.state import CallState, ChannelState

__all__ = [
    "CHANNEL",
    "DEFAULT_ENDED_MEMORY",
    "DEST",
    "ChannelKeys",
    "LiveCalls",
    "Msg",
    "Out",
    "set_caller",
]

Msg = Mapping[str, str]
Out = list[DomainEvent]
#: The three headers by which an event names one channel: Uniqueid, Channel, Linkedid.
ChannelKeys = tuple[str, str, str]
CHANNEL: ChannelKeys = ("Uniqueid", "Channel", "Linkedid")
DEST: ChannelKeys = ("DestUniqueid", "DestChannel", "DestLinkedid")

#: Ended Linkedids remembered so late events (AgentComplete, a second replay) cannot
#: start the call again.
DEFAULT_ENDED_MEMORY = 20_000

#: Hang-up causes (Q.850) of a leg that ended without a DialEnd (pjsip 06b).
_CAUSE_RESULTS = {
    17: RingResult.BUSY,
    18: RingResult.NO_ANSWER,
    19: RingResult.NO_ANSWER,
    21: RingResult.FAILED,
    26: RingResult.CANCELLED,
    27: RingResult.UNAVAILABLE,
    34: RingResult.UNAVAILABLE,
    38: RingResult.UNAVAILABLE,
}


def set_caller(call: CallState, msg: Msg) -> None:
    """The caller ID an event carries (``Newchannel``/``NewCallerid`` of the origin)."""
    number = msg.get("CallerIDNum")
    if number is not None:
        call.caller_number_raw = number
    name = msg.get("CallerIDName")
    if name is not None:
        call.caller_name = None if name in ("", "<unknown>") else unescape_c(name)
    pres = msg.get("CID-CallingPres")
    if pres is not None:
        call.pres_withheld = withheld_by_presentation(pres)


class LiveCalls:
    """Calls by Linkedid, channels by Uniqueid, the PBX clock, and what ended recently.

    ``calls``, ``channels`` and ``recently_ended`` are the state (read them freely; change
    them through ``new_call``, ``register_channel`` and ``end``). A call on the PBX clock
    (``CallState.pbx_clock``) takes its times from the events' ``Timestamp:``;
    ``clock_offset`` is the PBX clock minus the local clock at the last one seen, and
    ``clock_known`` says whether one was ever seen.
    """

    def __init__(
        self, pbx: str, topology: Topology, *, ended_memory: int = DEFAULT_ENDED_MEMORY
    ) -> None:
        self.pbx = pbx
        self.topology = topology
        self.calls: dict[str, CallState] = {}
        self.channels: dict[str, ChannelState] = {}
        self.clock_offset = 0.0
        self.clock_known = False
        #: When the link was lost, until the next resync (``None``: the state is trusted).
        self.suspect_since: float | None = None
        #: Events dropped because they named unknown channels or contradicted known state.
        self.rejected_events = 0
        #: Linkedids that ended, oldest first, the last ``ended_memory`` of them: late
        #: events (AgentComplete, a second replay) cannot start them again.
        self.recently_ended: OrderedDict[str, None] = OrderedDict()
        self._ended_memory = ended_memory

    # -- reading events -----------------------------------------------------------------

    def known(self, msg: Msg, keys: ChannelKeys = CHANNEL) -> ChannelState | None:
        """The channel an event names, only if it names it exactly as we know it."""
        uid = msg.get(keys[0])
        if uid is None:
            return None
        channel = self.channels.get(uid)
        if channel is None:
            return None
        if msg.get(keys[1]) != channel.name or msg.get(keys[2]) != channel.linkedid:
            self.rejected_events += 1
            return None
        return channel

    def event_time(self, call: CallState, msg: Msg, received_at: float) -> float:
        """When an event happened, on the clock this call uses (parsed only when needed)."""
        if not call.pbx_clock:
            return received_at
        raw = msg.get("Timestamp")
        if raw is not None:
            try:
                ts = float(raw)
            except ValueError:
                pass
            else:
                self.clock_offset = ts - received_at
                return ts
        return received_at + self.clock_offset

    def local_to_call(self, call: CallState, at: float) -> float:
        """A local time on the clock this call uses."""
        return at + self.clock_offset if call.pbx_clock else at

    def pbx_clock_seen(self, timestamp: float, received_at: float) -> None:
        """An event stamped ``timestamp`` by the PBX arrived at local ``received_at``."""
        self.clock_offset = timestamp - received_at
        self.clock_known = True

    # -- calls and channels -------------------------------------------------------------

    def new_call(
        self, linkedid: str, started_at: float, *, pbx_clock: bool, complete: bool
    ) -> CallState:
        call = CallState(self.pbx, linkedid, started_at, pbx_clock=pbx_clock, complete=complete)
        self.calls[linkedid] = call
        return call

    def register_channel(
        self, call: CallState, uid: str, name: str, msg: Msg, *, origin: bool
    ) -> ChannelState:
        """A channel joins a call (``Newchannel``, or a resync item)."""
        device = device_of_channel(name)
        channel = ChannelState(uid, name, call.linkedid, device, call)
        call.channels[uid] = channel
        call.alive += 1
        self.channels[uid] = channel
        if origin:
            call.origin_seen = True
            call.origin_device = device
            call.origin_pair = channel.pair
            set_caller(call, msg)
            trunk = self.topology.is_trunk(device)
            if self.topology.is_inbound_context(msg.get("Context", "")) or (
                trunk and msg.get("ChannelState") == "4"
            ):
                call.direction = Direction.INBOUND
                call.caller_pairs.add(channel.pair)
            elif trunk:  # originated towards a customer (customer-first callback)
                call.direction = Direction.OUTBOUND
                call.dialled = msg.get("Exten") or None
            elif call.agreement_id is None:
                call.caller_pairs.add(channel.pair)  # internal: the caller is this device
        return channel

    # -- what happens to a call ---------------------------------------------------------

    def start(self, call: CallState, out: Out) -> None:
        """Tell the call exists (once): at the first thing it does worth telling."""
        if not call.started:
            call.started = True
            out.append(CallStarted(call.snapshot()))

    def answer(
        self, call: CallState, at: float, device: str | None, segment: int | None, out: Out
    ) -> None:
        """A conversation starts: the first one sets answered_at/answered_by."""
        self.start(call, out)
        if call.answered_at is None:
            call.answered_at = at
            call.wait_ended_at = None
        if call.answered_by is None and device is not None:
            call.answered_by = device
        if segment is not None and segment not in call.announced:
            call.announced.add(segment)
            out.append(CallAnswered(call.snapshot(), call.segments[segment]))

    def transfer(
        self,
        call: CallState,
        kind: TransferKind,
        *,
        at: float,
        from_device: str | None,
        to: str | None,
        out: Out,
    ) -> None:
        call.transfers.append(Transfer(kind, at, from_device, to))
        call.wants_target = to is None or "/" not in to
        call.side = None
        self.start(call, out)
        out.append(CallTransferred(call.snapshot(), call.transfers[-1]))

    def close_leg(self, call: CallState, uid: str, at: float, cause: int | None, out: Out) -> None:
        """A leg is gone: its ring (if no DialEnd closed it) and its talk segment end."""
        if uid in call.open_rings:
            result = _CAUSE_RESULTS.get(cause or 0, RingResult.CANCELLED)
            ring = call.close_ring(uid, at, result)
            if ring is not None and not self.topology.is_trunk(ring.device):
                out.append(RingEnded(call.snapshot(), ring))
        elif cause == 17:
            index = call.ring_index.get(uid)
            if index is not None and call.rings[index].result is RingResult.NO_ANSWER:
                call.refine_ring(uid, RingResult.BUSY)  # a 486 that the queue calls NOANSWER
        call.close_segment(uid, at)

    def end(
        self,
        call: CallState,
        at: float,
        out: Out,
        *,
        complete: bool = True,
        system: bool = False,
        approximate: bool = False,
    ) -> None:
        """The call is over: open rings are cancelled, its state released, its id kept.

        ``approximate``: the end itself was not seen, ``at`` is an estimate."""
        self.start(call, out)
        for uid in list(call.open_rings):
            ring = call.close_ring(uid, at, RingResult.CANCELLED)
            if ring is not None and not self.topology.is_trunk(ring.device):
                out.append(RingEnded(call.snapshot(), ring))
        for uid in list(call.open_segments):
            call.close_segment(uid, at)
        if not complete:
            call.complete = False
        call.finish(at, system=system, approximate=approximate)
        out.append(CallEnded(call.snapshot()))
        for uid in call.channels:
            self.channels.pop(uid, None)
        call.channels.clear()
        self.calls.pop(call.linkedid, None)
        self.recently_ended[call.linkedid] = None
        while len(self.recently_ended) > self._ended_memory:
            self.recently_ended.popitem(last=False)

    def end_all(self, at: float, out: Out) -> None:
        """The PBX is going down: every call ends at local time ``at``, by the system."""
        for call in list(self.calls.values()):
            self.end(call, self.local_to_call(call, at), out, complete=False, system=True)

    # -- the link -----------------------------------------------------------------------

    def link_lost(self, at: float) -> None:
        """The calls are suspect from ``at`` (the first loss counts) until ``trusted``."""
        if self.suspect_since is None:
            self.suspect_since = at

    def trusted(self) -> float | None:
        """The resync restored the truth: no longer suspect; when the link was lost."""
        lost_at, self.suspect_since = self.suspect_since, None
        return lost_at

    def sizes(self) -> dict[str, int]:
        return {
            "calls": len(self.calls),
            "channels": len(self.channels),
            "recently_ended": len(self.recently_ended),
        }
