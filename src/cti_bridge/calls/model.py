"""The call model: AMI events in, calls and domain events out. Pure - no I/O, no Twisted.

State is kept apart from the wire (txtorcon's ``TorState``): the AMI link feeds it
events, a resync snapshot after every (re)connect, and tells it when the link is lost.
Channels are grouped into calls by ``Linkedid``, which Asterisk keeps across queues,
Local channel pairs, transfers and the legs an originate dials, so a call keeps its
identity through all of them. The machines (drawn in ``docs/call-model.md``) are small:
a call (live -> ended), a ring per dialled leg (open -> ended with a result), a talk
segment per answered leg, and "who started the hang-up" since the last answer/transfer.

Trust: only channels seen in a ``Newchannel`` (or listed at resync) exist; events about
other channels are dropped. Every event must name a known channel with its exact
``Channel``, ``Uniqueid`` and ``Linkedid``; a contradiction is dropped and counted in
``rejected_events``. Real call events never carry an ``ActionID`` (only
``OriginateResponse`` does), so one that does is a forged or misplaced list item and is
dropped and counted too (trace 13-crlf). See docs/call-model.md for what is left.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from cti_bridge.calls.callerid import unescape_c, withheld_by_presentation
from cti_bridge.calls.devices import Topology, device_of_channel, device_of_interface
from cti_bridge.calls.events import (
    Call,
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    Direction,
    DomainEvent,
    HungUpBy,
    OperatorRinging,
    QueueResult,
    Ring,
    RingEnded,
    RingResult,
    Transfer,
    TransferKind,
)
from cti_bridge.calls.state import CallState, ChannelState

__all__ = ["CONSUMED_EVENTS", "CONSUMED_VARIABLES", "CallModel"]

Msg = Mapping[str, str]
Out = list[DomainEvent]
Handler = Callable[[Msg, float, Out], None]

_DIAL_RESULTS = {
    "ANSWER": RingResult.ANSWERED,
    "CANCEL": RingResult.CANCELLED,
    "NOANSWER": RingResult.NO_ANSWER,
    "BUSY": RingResult.BUSY,
    "CONGESTION": RingResult.UNAVAILABLE,
    "CHANUNAVAIL": RingResult.UNAVAILABLE,
}
#: DialStatus values that report progress, not the end of the attempt.
_DIAL_PROGRESS = frozenset({"RINGING", "PROCEEDING", "PROGRESS"})
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
#: OriginateResponse ``Reason`` (Asterisk's AST_CONTROL_* codes) for a failed first leg.
_ORIGINATE_RESULTS = {
    "1": RingResult.FAILED,  # hung up
    "3": RingResult.NO_ANSWER,
    "5": RingResult.BUSY,
    "8": RingResult.UNAVAILABLE,
}
#: QUEUESTATUS values that mean "left the queue unanswered, not by hanging up".
_QUEUE_EXITS = frozenset({"FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL"})
_SOFTHANGUP_SHUTDOWN = "4"  # AST_SOFTHANGUP_SHUTDOWN: the flag, not a Q.850 cause

_CHAN = ("Uniqueid", "Channel", "Linkedid")
_DEST = ("DestUniqueid", "DestChannel", "DestLinkedid")
_TRANSFERER = ("TransfererUniqueid", "TransfererChannel", "TransfererLinkedid")
_TRANSFEREE = ("TransfereeUniqueid", "TransfereeChannel", "TransfereeLinkedid")
_ORIG_TRANSFERER = ("OrigTransfererUniqueid", "OrigTransfererChannel", "OrigTransfererLinkedid")
_SECOND_TRANSFERER = (
    "SecondTransfererUniqueid",
    "SecondTransfererChannel",
    "SecondTransfererLinkedid",
)

#: Ended Linkedids remembered so late events (AgentComplete, a second replay) cannot
#: start the call again.
DEFAULT_ENDED_MEMORY = 20_000

#: The AMI events the model acts on: the names of its handler table. ``feed`` returns
#: nothing for any other event, so the AMI link may skip them unparsed (``AMIListener``).
CONSUMED_EVENTS = frozenset(
    {
        "Newchannel",
        "NewCallerid",
        "Rename",
        "VarSet",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "DialBegin",
        "DialEnd",
        "BridgeEnter",
        "BridgeLeave",
        "BlindTransfer",
        "AttendedTransfer",
        "HangupRequest",
        "SoftHangupRequest",
        "Hangup",
        "OriginateResponse",
        "Shutdown",
    }
)
#: The ``VarSet`` variables ``feed`` passes on (``*``: a prefix): the queue's verdict and
#: the dialplan's ``CTI_*`` variables; every other ``VarSet`` is ignored.
CONSUMED_VARIABLES = frozenset({"QUEUESTATUS", "CTI_*"})


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _number_of_dialstring(dialstring: str) -> str:
    """``050123456@pstn`` / ``PJSIP/0470@trunk`` / ``0478@pstn-out/n`` -> the number."""
    if "/" in dialstring.split("@", 1)[0]:
        dialstring = dialstring.split("/", 1)[1]
    return dialstring.split("@", 1)[0].split("/", 1)[0]


class CallModel:
    """Live calls of one PBX, derived from its AMI events.

    Every public method returns the domain events it caused, in order. One
    ``CallStarted`` and one ``CallEnded`` per Linkedid, ever, for the life of the
    instance. ``CallStarted`` is sent when the call first does something worth telling
    (enters a queue, rings somebody, ends, ...), so its snapshot already carries the
    caller ID that Local channels only learn just after ``Newchannel``.
    """

    #: What ``feed`` acts on (module constants; a test holds them to the handler table).
    consumed_events: frozenset[str] = CONSUMED_EVENTS
    consumed_variables: frozenset[str] = CONSUMED_VARIABLES

    def __init__(
        self,
        pbx: str,
        *,
        topology: Topology | None = None,
        ended_memory: int = DEFAULT_ENDED_MEMORY,
    ) -> None:
        self.pbx = pbx
        self.topology = topology or Topology()
        self._calls: dict[str, CallState] = {}
        self._channels: dict[str, ChannelState] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._ended_memory = ended_memory
        self._offset = 0.0  # PBX clock minus local clock, from the last Timestamp seen
        self._offset_known = False
        self._suspect_since: float | None = None
        #: Events dropped because they named unknown channels or contradicted known state.
        self.rejected_events = 0
        self._handlers: dict[str, Handler] = {
            "Newchannel": self._on_newchannel,
            "NewCallerid": self._on_newcallerid,
            "Rename": self._on_rename,
            "VarSet": self._on_varset,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerLeave": self._on_queue_leave,
            "QueueCallerAbandon": self._on_queue_abandon,
            "AgentCalled": self._on_agent_called,
            "AgentConnect": self._on_agent_connect,
            "AgentComplete": self._on_agent_complete,
            "DialBegin": self._on_dial_begin,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "HangupRequest": self._on_hangup_request,
            "SoftHangupRequest": self._on_soft_hangup_request,
            "Hangup": self._on_hangup,
            "OriginateResponse": self._on_originate_response,
            "Shutdown": self._on_shutdown,
        }

    # -- public interface ---------------------------------------------------------------

    def feed(self, msg: Mapping[str, str], received_at: float) -> list[DomainEvent]:
        """One AMI event (any ``Mapping``; a parser ``Message`` on the live link)."""
        event = msg.get("Event")
        if event == "VarSet":  # the most frequent event; only a few variables matter
            variable = msg.get("Variable") or ""
            if variable != "QUEUESTATUS" and not variable.startswith("CTI_"):
                return []
        handler = self._handlers.get(event) if event is not None else None
        if handler is None:
            return []
        if "ActionID" in msg and event != "OriginateResponse":
            self.rejected_events += 1  # a list item or a forged event, not a call event
            return []
        out: Out = []
        handler(msg, received_at, out)
        return out

    def resync(
        self, channels: Sequence[Mapping[str, str]], received_at: float
    ) -> list[DomainEvent]:
        """Reconcile with the PBX's ``CoreShowChannels`` items after a (re)connect."""
        from cti_bridge.calls.resync import reconcile  # noqa: PLC0415 (cycle)

        out: Out = []
        reconcile(self, channels, received_at, out)
        return out

    def link_lost(self, at: float) -> list[DomainEvent]:
        """The link dropped: keep the calls, but they are suspect until the next resync."""
        if self._suspect_since is None:
            self._suspect_since = at
        return []

    def shutdown(self, at: float) -> list[DomainEvent]:
        """The PBX is going down: every call ends now, hung up by the system."""
        out: Out = []
        for call in list(self._calls.values()):
            self._end(call, self._local_to_call(call, at), out, complete=False, system=True)
        return out

    @property
    def live_calls(self) -> list[Call]:
        return [call.snapshot() for call in self._calls.values()]

    @property
    def suspect(self) -> bool:
        """True between ``link_lost`` and the next ``resync``."""
        return self._suspect_since is not None

    def state_sizes(self) -> dict[str, int]:
        """How much the model holds (for metrics and the memory tests)."""
        return {
            "calls": len(self._calls),
            "channels": len(self._channels),
            "recently_ended": len(self._ended),
        }

    # -- helpers ------------------------------------------------------------------------

    def _known(self, msg: Msg, keys: tuple[str, str, str] = _CHAN) -> ChannelState | None:
        """The channel an event names, only if it names it exactly as we know it."""
        uid = msg.get(keys[0])
        if uid is None:
            return None
        channel = self._channels.get(uid)
        if channel is None:
            return None
        if msg.get(keys[1]) != channel.name or msg.get(keys[2]) != channel.linkedid:
            self.rejected_events += 1
            return None
        return channel

    def _time(self, call: CallState, msg: Msg, received_at: float) -> float:
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
                self._offset = ts - received_at
                return ts
        return received_at + self._offset

    def _local_to_call(self, call: CallState, at: float) -> float:
        return at + self._offset if call.pbx_clock else at

    def _start(self, call: CallState, out: Out) -> None:
        if not call.started:
            call.started = True
            out.append(CallStarted(call.snapshot()))

    def _set_caller(self, call: CallState, msg: Msg) -> None:
        number = msg.get("CallerIDNum")
        if number is not None:
            call.caller_number_raw = number
        name = msg.get("CallerIDName")
        if name is not None:
            call.caller_name = None if name in ("", "<unknown>") else unescape_c(name)
        pres = msg.get("CID-CallingPres")
        if pres is not None:
            call.pres_withheld = withheld_by_presentation(pres)

    def register_channel(
        self, call: CallState, uid: str, name: str, msg: Msg, *, origin: bool
    ) -> ChannelState:
        """A channel joins a call (``Newchannel``, or a resync item)."""
        device = device_of_channel(name)
        channel = ChannelState(uid, name, call.linkedid, device, call)
        call.channels[uid] = channel
        call.alive += 1
        self._channels[uid] = channel
        if origin:
            call.origin_seen = True
            call.origin_device = device
            call.origin_pair = channel.pair
            self._set_caller(call, msg)
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

    def _make_outbound(self, call: CallState) -> None:
        if call.direction is Direction.INTERNAL:
            call.direction = Direction.OUTBOUND
            if call.origin_pair is not None:
                call.caller_pairs.discard(call.origin_pair)

    def _end(
        self, call: CallState, at: float, out: Out, *, complete: bool = True, system: bool = False
    ) -> None:
        self._start(call, out)
        for uid in list(call.open_rings):
            ring = call.close_ring(uid, at, RingResult.CANCELLED)
            if ring is not None and not self.topology.is_trunk(ring.device):
                out.append(RingEnded(call.snapshot(), ring))
        for uid in list(call.open_segments):
            call.close_segment(uid, at)
        if not complete:
            call.complete = False
        call.finish(at, system=system)
        out.append(CallEnded(call.snapshot()))
        for uid in call.channels:
            self._channels.pop(uid, None)
        call.channels.clear()
        self._calls.pop(call.linkedid, None)
        self._ended[call.linkedid] = None
        while len(self._ended) > self._ended_memory:
            self._ended.popitem(last=False)

    def _answer(
        self, call: CallState, at: float, device: str | None, segment: int | None, out: Out
    ) -> None:
        """A conversation starts: the first one sets answered_at/answered_by."""
        self._start(call, out)
        if call.answered_at is None:
            call.answered_at = at
            call.wait_ended_at = None
        if call.answered_by is None and device is not None:
            call.answered_by = device
        if segment is not None and segment not in call.announced:
            call.announced.add(segment)
            out.append(CallAnswered(call.snapshot(), call.segments[segment]))

    def _transfer(
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
        self._start(call, out)
        out.append(CallTransferred(call.snapshot(), call.transfers[-1]))

    def _close_leg(self, call: CallState, uid: str, at: float, cause: int | None, out: Out) -> None:
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

    # -- channels -----------------------------------------------------------------------

    def _on_newchannel(self, msg: Msg, rx: float, out: Out) -> None:
        uid = msg.get("Uniqueid")
        lid = msg.get("Linkedid")
        name = msg.get("Channel")
        if not uid or not lid or not name or uid in self._channels or lid in self._ended:
            return
        call = self._calls.get(lid)
        if call is None:
            ts = _float(msg.get("Timestamp"))
            if ts is not None:
                self._offset = ts - rx
                self._offset_known = True
            start = ts if ts is not None else rx
            call = CallState(self.pbx, lid, start, pbx_clock=ts is not None, complete=uid == lid)
            self._calls[lid] = call
        self.register_channel(call, uid, name, msg, origin=uid == lid)

    def _on_newcallerid(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is not None and channel.uniqueid == channel.linkedid:
            self._set_caller(channel.call, msg)

    def _on_rename(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._channels.get(msg.get("Uniqueid", ""))
        new = msg.get("Newname")
        if channel is not None and new and msg.get("Channel") == channel.name:
            channel.name = new

    def _on_varset(self, msg: Msg, rx: float, out: Out) -> None:
        variable = msg.get("Variable", "")
        channel = self._known(msg)
        if channel is None:
            return
        call = channel.call
        value = msg.get("Value", "")
        if variable == "QUEUESTATUS":
            if call.answered_at is not None or call.queue_result is QueueResult.ANSWERED:
                return
            if value == "TIMEOUT":
                call.queue_result = QueueResult.TIMEOUT
                at = self._time(call, msg, rx)
                call.wait_ended_at = call.queue_left_at if call.queue_left_at is not None else at
                if call.side is None:
                    call.side = HungUpBy.SYSTEM
            elif value in _QUEUE_EXITS and call.queue_result is None:
                call.queue_result = QueueResult.EXITED
            return
        call.variables[variable] = value
        if variable == "CTI_AGREEMENT_ID" and value:
            call.agreement_id = value
            self._make_outbound(call)

    # -- queues -------------------------------------------------------------------------

    def _on_queue_join(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is None:
            return
        call = channel.call
        queue = msg.get("Queue") or None
        if queue is not None and call.queue is None:
            call.queue = queue
            call.queue_joined_at = self._time(call, msg, rx)
        if queue is not None and queue not in call.queues:
            call.queues.append(queue)
        call.in_queue = True
        call.queue_result = None
        if call.queue_caller_uid is None:
            call.queue_caller_uid = channel.uniqueid
        if call.dialled is None and channel.uniqueid == call.linkedid:
            call.dialled = msg.get("Exten") or None
        self._start(call, out)

    def _on_queue_leave(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is not None and channel.call.in_queue:
            channel.call.in_queue = False
            channel.call.queue_left_at = self._time(channel.call, msg, rx)

    def _on_queue_abandon(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is not None and channel.call.answered_at is None:
            channel.call.queue_result = QueueResult.ABANDONED

    def _on_agent_called(self, msg: Msg, rx: float, out: Out) -> None:
        dest = self._known(msg, _DEST)
        if dest is None:
            return
        call = dest.call
        info = (msg.get("Queue") or None, msg.get("MemberName") or None)
        index = call.ring_index.get(dest.uniqueid)
        if index is None:
            call.pending_agent[dest.uniqueid] = info
        elif call.rings[index].queue is None:
            call.rings[index] = replace(call.rings[index], queue=info[0], member_name=info[1])

    def _on_agent_connect(self, msg: Msg, rx: float, out: Out) -> None:
        dest = self._known(msg, _DEST)
        if dest is None:
            return
        call = dest.call
        at = self._time(call, msg, rx)
        call.in_queue = False
        call.queue_result = QueueResult.ANSWERED
        segment = call.open_segment(dest, at)
        call.operator_pairs.add(dest.pair)
        call.side = None
        device = device_of_interface(msg["Interface"]) if msg.get("Interface") else dest.device
        self._answer(call, at, device, segment, out)

    def _on_agent_complete(self, msg: Msg, rx: float, out: Out) -> None:
        # Deferred after a Redirect and stripped of caller fields at times (11-shutdown):
        # only a fallback for "who hung up" when no hang-up request told us.
        channel = self._known(msg) if "Uniqueid" in msg else None
        if channel is None:
            channel = self._known(msg, _DEST)
        if channel is None or channel.call.side is not None:
            return
        reason = msg.get("Reason")
        if reason == "caller":
            channel.call.side = HungUpBy.CALLER
        elif reason == "agent":
            channel.call.side = HungUpBy.OPERATOR

    # -- dialling -----------------------------------------------------------------------

    def _on_dial_begin(self, msg: Msg, rx: float, out: Out) -> None:
        dest = self._known(msg, _DEST)
        if dest is None:
            return
        call = dest.call
        if dest.uniqueid in call.ring_index or self.topology.is_not_rung(dest.device):
            return
        source = self._known(msg) if "Uniqueid" in msg else None
        if "Channel" not in msg and dest.uniqueid == call.linkedid:
            call.originated = True
        at = self._time(call, msg, rx)
        queue, member = call.pending_agent.pop(dest.uniqueid, (None, None))
        outside = self.topology.is_trunk(dest.device)
        ring = Ring(
            dest.device,
            dest.name,
            dest.uniqueid,
            at,
            queue=queue,
            member_name=member,
            outside=outside,
        )
        if outside:
            self._make_outbound(call)
        if call.dialled is None:
            if source is not None and source.uniqueid == call.linkedid:
                call.dialled = msg.get("Exten") or None
            elif outside and call.direction is Direction.OUTBOUND:
                call.dialled = _number_of_dialstring(msg.get("DialString", "")) or None
        call.add_ring(ring)
        if call.wants_target and not outside and call.transfers:
            call.transfers[-1] = replace(call.transfers[-1], to=dest.device)
            call.wants_target = False
        self._start(call, out)
        if not outside:
            out.append(OperatorRinging(call.snapshot(), ring))

    def _on_dial_end(self, msg: Msg, rx: float, out: Out) -> None:
        status = msg.get("DialStatus", "")
        if status in _DIAL_PROGRESS:
            return
        dest = self._known(msg, _DEST)
        if dest is None:
            return
        call = dest.call
        at = self._time(call, msg, rx)
        result = _DIAL_RESULTS.get(status, RingResult.FAILED)
        ring = call.close_ring(dest.uniqueid, at, result)
        if ring is None:
            return  # not a ring (the simulated trunk leg), or a duplicate DialEnd
        outside = self.topology.is_trunk(dest.device)
        if not outside:
            out.append(RingEnded(call.snapshot(), ring))
        if result is not RingResult.ANSWERED:
            return
        source = self._known(msg) if "Uniqueid" in msg else None
        call.side = None
        if not outside:
            segment = call.open_segment(dest, at)
            call.operator_pairs.add(dest.pair)
            if ring.queue is not None or call.in_queue:
                return  # a queue member picked up; AgentConnect says when the call is his
            if "Channel" not in msg:
                return  # an originate's first leg: the operator picked up the callback
            self._answer(call, at, dest.device, segment, out)
            return
        call.caller_pairs.add(dest.pair)  # the customer picked up
        if source is None:
            return
        op_segment: int | None = None
        if not self.topology.is_trunk(source.device):
            op_segment = call.open_segment(source, at)
            call.operator_pairs.add(source.pair)
        self._answer(call, at, source.device if op_segment is not None else None, op_segment, out)

    def _on_originate_response(self, msg: Msg, rx: float, out: Out) -> None:
        action_id = msg.get("ActionID")
        if not action_id:
            return
        uid = msg.get("Uniqueid", "")
        dial = msg.get("Channel", "")
        call: CallState | None = None
        if uid and uid != "<unknown>":
            channel = self._channels.get(uid)
            if channel is not None and device_of_interface(dial) in (channel.name, channel.device):
                call = channel.call
        else:
            device = device_of_interface(dial)
            for candidate in reversed(self._calls.values()):
                if (
                    candidate.originated
                    and candidate.origin_device == device
                    and candidate.originate_action_id is None
                ):
                    call = candidate
                    break
        if call is None:
            return
        if call.originate_action_id is None:
            call.originate_action_id = action_id
        if call.dialled is None and call.direction is Direction.OUTBOUND:
            call.dialled = msg.get("Exten") or None  # operator-first: the customer's number
        if msg.get("Response") == "Failure":
            at = self._time(call, msg, rx)
            result = _ORIGINATE_RESULTS.get(msg.get("Reason", ""), RingResult.FAILED)
            ring = call.close_ring(call.linkedid, at, result)
            if ring is not None and not self.topology.is_trunk(ring.device):
                out.append(RingEnded(call.snapshot(), ring))

    # -- bridges and transfers ----------------------------------------------------------

    def _on_bridge_enter(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is not None:
            channel.bridge = msg.get("BridgeUniqueid")

    def _on_bridge_leave(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is None:
            return
        bridge, channel.bridge = channel.bridge, None
        call = channel.call
        # A caller leaving an operator's bridge while nobody is hanging up is an AMI
        # Redirect: Asterisk sends no transfer event for it (trace 05-redirect).
        if (
            bridge is None
            or call.answered_at is None
            or call.side is not None
            or channel.pair not in call.caller_pairs
            or channel.pair in call.hanging_pairs
        ):
            return
        operators = [
            other
            for other in call.channels.values()
            if other.alive and other.bridge == bridge and other.pair in call.operator_pairs
        ]
        if not operators:
            return
        for other in operators:
            call.operator_pairs.discard(other.pair)
        at = self._time(call, msg, rx)
        to = msg.get("Exten") or None
        self._transfer(
            call, TransferKind.REDIRECT, at=at, from_device=operators[0].device, to=to, out=out
        )

    def _on_blind_transfer(self, msg: Msg, rx: float, out: Out) -> None:
        if msg.get("Result", "Success") != "Success":
            return
        transferer = self._known(msg, _TRANSFERER)
        channel = transferer or self._known(msg, _TRANSFEREE)
        if channel is None:
            return
        call = channel.call
        if transferer is not None:
            call.operator_pairs.discard(transferer.pair)
        at = self._time(call, msg, rx)
        self._transfer(
            call,
            TransferKind.BLIND,
            at=at,
            from_device=transferer.device if transferer is not None else None,
            to=msg.get("Extension") or None,
            out=out,
        )

    def _on_attended_transfer(self, msg: Msg, rx: float, out: Out) -> None:
        if msg.get("Result", "Success") != "Success":
            return
        first = self._known(msg, _ORIG_TRANSFERER)
        second = self._known(msg, _SECOND_TRANSFERER)
        channel = first or second or self._known(msg, _TRANSFEREE)
        if channel is None:
            return
        call = channel.call
        gone = {c.pair for c in (first, second) if c is not None}
        call.operator_pairs.difference_update(gone)
        target = call.latest_open_segment(gone)
        at = self._time(call, msg, rx)
        transferer = first or second
        from_device = transferer.device if transferer is not None else None
        to = target.device if target is not None else None
        self._transfer(call, TransferKind.ATTENDED, at=at, from_device=from_device, to=to, out=out)

    # -- hang-ups -----------------------------------------------------------------------

    def _on_hangup_request(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is None:
            return
        call = channel.call
        call.hanging_pairs.add(channel.pair)
        # On a Local pair the ;2 half gets the request when the ;1 side ended (the network
        # or the dialplan), so only ;1 and plain channels say which party hung up.
        if call.side is not None or channel.name.endswith(";2"):
            return
        if channel.pair in call.caller_pairs:
            call.side = HungUpBy.CALLER
        elif channel.pair in call.operator_pairs:
            call.side = HungUpBy.OPERATOR

    def _on_soft_hangup_request(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is None:
            return
        channel.call.hanging_pairs.add(channel.pair)
        if msg.get("Cause") == _SOFTHANGUP_SHUTDOWN and channel.call.side is None:
            channel.call.side = HungUpBy.SYSTEM

    def _on_hangup(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self._known(msg)
        if channel is None or not channel.alive:
            return
        call = channel.call
        channel.alive = False
        call.alive -= 1
        at = self._time(call, msg, rx)
        cause = _int(msg.get("Cause"))
        uid = channel.uniqueid
        if uid == call.linkedid or call.hangup_cause is None:
            call.hangup_cause = cause
            call.hangup_cause_text = msg.get("Cause-txt") or None
        self._close_leg(call, uid, at, cause, out)
        if (
            call.answered_at is None
            and call.wait_ended_at is None
            and uid == (call.queue_caller_uid or call.linkedid)
        ):
            call.wait_ended_at = at
        if call.alive <= 0 and call.origin_seen:
            self._end(call, at, out)

    def _on_shutdown(self, msg: Msg, rx: float, out: Out) -> None:
        out.extend(self.shutdown(rx))
