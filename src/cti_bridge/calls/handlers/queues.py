"""Queues: a caller waits in a queue, members are rung, one connects (or nobody does).

``AgentCalled`` names the queue and member of a ring that ``DialBegin`` opens (before or
after it); ``AgentConnect`` is when a queue call is answered, not the member's
``DialEnd``; ``QUEUESTATUS`` tells a timeout or an exit apart from an abandon.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from cti_bridge.calls.devices import device_of_interface
from cti_bridge.calls.events import HungUpBy, QueueResult
from cti_bridge.calls.handlers.base import Handler, HandlerGroup, VariableHandler
from cti_bridge.calls.live import DEST, Msg, Out
from cti_bridge.calls.state import ChannelState

__all__ = ["QueueHandlers"]

#: QUEUESTATUS values that mean "left the queue unanswered, not by hanging up".
_QUEUE_EXITS = frozenset({"FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL"})


class QueueHandlers(HandlerGroup):
    __slots__ = ()

    events: ClassVar[frozenset[str]] = frozenset(
        {
            "QueueCallerJoin",
            "QueueCallerLeave",
            "QueueCallerAbandon",
            "AgentCalled",
            "AgentConnect",
            "AgentComplete",
        }
    )
    variables: ClassVar[frozenset[str]] = frozenset({"QUEUESTATUS"})

    def handlers(self) -> dict[str, Handler]:
        return {
            "QueueCallerJoin": self.on_queue_join,
            "QueueCallerLeave": self.on_queue_leave,
            "QueueCallerAbandon": self.on_queue_abandon,
            "AgentCalled": self.on_agent_called,
            "AgentConnect": self.on_agent_connect,
            "AgentComplete": self.on_agent_complete,
        }

    def variable_handlers(self) -> dict[str, VariableHandler]:
        return {"QUEUESTATUS": self.on_queuestatus}

    def on_queue_join(self, msg: Msg, rx: float, out: Out) -> None:
        state = self.state
        channel = state.known(msg)
        if channel is None:
            return
        call = channel.call
        queue = msg.get("Queue") or None
        if queue is not None and call.queue is None:
            call.queue = queue
            call.queue_joined_at = state.event_time(call, msg, rx)
        if queue is not None and queue not in call.queues:
            call.queues.append(queue)
        call.in_queue = True
        call.queue_result = None
        if call.queue_caller_uid is None:
            call.queue_caller_uid = channel.uniqueid
        if call.dialled is None and channel.uniqueid == call.linkedid:
            call.dialled = msg.get("Exten") or None
        state.start(call, out)

    def on_queue_leave(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self.state.known(msg)
        if channel is not None and channel.call.in_queue:
            channel.call.in_queue = False
            channel.call.queue_left_at = self.state.event_time(channel.call, msg, rx)

    def on_queue_abandon(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self.state.known(msg)
        if channel is not None and channel.call.answered_at is None:
            channel.call.queue_result = QueueResult.ABANDONED

    def on_queuestatus(self, channel: ChannelState, msg: Msg, rx: float, out: Out) -> None:
        call = channel.call
        if call.answered_at is not None or call.queue_result is QueueResult.ANSWERED:
            return
        value = msg.get("Value", "")
        if value == "TIMEOUT":
            call.queue_result = QueueResult.TIMEOUT
            at = self.state.event_time(call, msg, rx)
            call.wait_ended_at = call.queue_left_at if call.queue_left_at is not None else at
            if call.side is None:
                call.side = HungUpBy.SYSTEM
        elif value in _QUEUE_EXITS and call.queue_result is None:
            call.queue_result = QueueResult.EXITED

    def on_agent_called(self, msg: Msg, rx: float, out: Out) -> None:
        dest = self.state.known(msg, DEST)
        if dest is None:
            return
        call = dest.call
        info = (msg.get("Queue") or None, msg.get("MemberName") or None)
        index = call.ring_index.get(dest.uniqueid)
        if index is None:
            call.pending_agent[dest.uniqueid] = info
        elif call.rings[index].queue is None:
            call.rings[index] = replace(call.rings[index], queue=info[0], member_name=info[1])

    def on_agent_connect(self, msg: Msg, rx: float, out: Out) -> None:
        state = self.state
        dest = state.known(msg, DEST)
        if dest is None:
            return
        call = dest.call
        at = state.event_time(call, msg, rx)
        call.in_queue = False
        call.queue_result = QueueResult.ANSWERED
        segment = call.open_segment(dest, at)
        call.operator_pairs.add(dest.pair)
        call.side = None
        device = device_of_interface(msg["Interface"]) if msg.get("Interface") else dest.device
        state.answer(call, at, device, segment, out)

    def on_agent_complete(self, msg: Msg, rx: float, out: Out) -> None:
        # Deferred after a Redirect and stripped of caller fields at times (11-shutdown):
        # only a fallback for "who hung up" when no hang-up request told us.
        channel = self.state.known(msg) if "Uniqueid" in msg else None
        if channel is None:
            channel = self.state.known(msg, DEST)
        if channel is None or channel.call.side is not None:
            return
        reason = msg.get("Reason")
        if reason == "caller":
            channel.call.side = HungUpBy.CALLER
        elif reason == "agent":
            channel.call.side = HungUpBy.OPERATOR
