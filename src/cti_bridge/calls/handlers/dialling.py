"""Dialling: a ring per dialled leg (``DialBegin`` .. ``DialEnd``), and the originate's answer.

A ring is opened by ``DialBegin`` and closed by the first ``DialEnd`` with a result
(later ones are ignored); an answered one opens the leg's talk segment. An
``OriginateResponse`` attaches the dialer's ActionID to the call it started and, on a
failure, closes the first leg's ring with the reason Asterisk gives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from cti_bridge.calls.devices import device_of_interface
from cti_bridge.calls.events import Direction, OperatorRinging, Ring, RingEnded, RingResult
from cti_bridge.calls.handlers.base import Handler, HandlerGroup
from cti_bridge.calls.live import DEST, Msg, Out
from cti_bridge.calls.state import CallState

__all__ = ["DiallingHandlers"]

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
#: OriginateResponse ``Reason`` (Asterisk's AST_CONTROL_* codes) for a failed first leg.
_ORIGINATE_RESULTS = {
    "1": RingResult.FAILED,  # hung up
    "3": RingResult.NO_ANSWER,
    "5": RingResult.BUSY,
    "8": RingResult.UNAVAILABLE,
}


def _number_of_dialstring(dialstring: str) -> str:
    """``050123456@pstn`` / ``PJSIP/0470@trunk`` / ``0478@pstn-out/n`` -> the number."""
    if "/" in dialstring.split("@", 1)[0]:
        dialstring = dialstring.split("/", 1)[1]
    return dialstring.split("@", 1)[0].split("/", 1)[0]


class DiallingHandlers(HandlerGroup):
    __slots__ = ()

    events: ClassVar[frozenset[str]] = frozenset({"DialBegin", "DialEnd", "OriginateResponse"})

    def handlers(self) -> dict[str, Handler]:
        return {
            "DialBegin": self.on_dial_begin,
            "DialEnd": self.on_dial_end,
            "OriginateResponse": self.on_originate_response,
        }

    def on_dial_begin(self, msg: Msg, rx: float, out: Out) -> None:
        state = self.state
        topology = self.topology
        dest = state.known(msg, DEST)
        if dest is None:
            return
        call = dest.call
        if dest.uniqueid in call.ring_index or topology.is_not_rung(dest.device):
            return
        source = state.known(msg) if "Uniqueid" in msg else None
        if "Channel" not in msg and dest.uniqueid == call.linkedid:
            call.originated = True
        at = state.event_time(call, msg, rx)
        queue, member = call.pending_agent.pop(dest.uniqueid, (None, None))
        outside = topology.is_trunk(dest.device)
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
            call.make_outbound()
        if call.dialled is None:
            if source is not None and source.uniqueid == call.linkedid:
                call.dialled = msg.get("Exten") or None
            elif outside and call.direction is Direction.OUTBOUND:
                call.dialled = _number_of_dialstring(msg.get("DialString", "")) or None
        call.add_ring(ring)
        if call.wants_target and not outside and call.transfers:
            call.transfers[-1] = replace(call.transfers[-1], to=dest.device)
            call.wants_target = False
        state.start(call, out)
        if not outside:
            out.append(OperatorRinging(call.snapshot(), ring))

    def on_dial_end(self, msg: Msg, rx: float, out: Out) -> None:
        status = msg.get("DialStatus", "")
        if status in _DIAL_PROGRESS:
            return
        state = self.state
        topology = self.topology
        dest = state.known(msg, DEST)
        if dest is None:
            return
        call = dest.call
        at = state.event_time(call, msg, rx)
        result = _DIAL_RESULTS.get(status, RingResult.FAILED)
        ring = call.close_ring(dest.uniqueid, at, result)
        if ring is None:
            return  # not a ring (the simulated trunk leg), or a duplicate DialEnd
        outside = topology.is_trunk(dest.device)
        if not outside:
            out.append(RingEnded(call.snapshot(), ring))
        if result is not RingResult.ANSWERED:
            return
        source = state.known(msg) if "Uniqueid" in msg else None
        call.side = None
        if not outside:
            segment = call.open_segment(dest, at)
            call.operator_pairs.add(dest.pair)
            if ring.queue is not None or call.in_queue:
                return  # a queue member picked up; AgentConnect says when the call is his
            if "Channel" not in msg:
                return  # an originate's first leg: the operator picked up the callback
            state.answer(call, at, dest.device, segment, out)
            return
        call.caller_pairs.add(dest.pair)  # the customer picked up
        if source is None:
            return
        op_segment: int | None = None
        if not topology.is_trunk(source.device):
            op_segment = call.open_segment(source, at)
            call.operator_pairs.add(source.pair)
        state.answer(call, at, source.device if op_segment is not None else None, op_segment, out)

    def on_originate_response(self, msg: Msg, rx: float, out: Out) -> None:
        action_id = msg.get("ActionID")
        if not action_id:
            return
        state = self.state
        uid = msg.get("Uniqueid", "")
        dial = msg.get("Channel", "")
        call: CallState | None = None
        if uid and uid != "<unknown>":
            channel = state.channels.get(uid)
            if channel is not None and device_of_interface(dial) in (channel.name, channel.device):
                call = channel.call
        else:
            device = device_of_interface(dial)
            for candidate in reversed(state.calls.values()):
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
            at = state.event_time(call, msg, rx)
            result = _ORIGINATE_RESULTS.get(msg.get("Reason", ""), RingResult.FAILED)
            ring = call.close_ring(call.linkedid, at, result)
            if ring is not None and not self.topology.is_trunk(ring.device):
                out.append(RingEnded(call.snapshot(), ring))
