"""Hang-ups: who started tearing the call down, each leg's end, and the PBX's shutdown.

The first ``HangupRequest`` on a party's channel decides who hung up (on a Local pair
only the ``;1`` half counts); ``SoftHangupRequest`` with the shutdown flag makes it the
system. A ``Hangup`` closes its leg; the last one of a call whose origin was seen ends it.
"""

from __future__ import annotations

from typing import ClassVar

from cti_bridge.calls.events import HungUpBy
from cti_bridge.calls.handlers.base import Handler, HandlerGroup
from cti_bridge.calls.live import Msg, Out

__all__ = ["HangupHandlers"]

_SOFTHANGUP_SHUTDOWN = "4"  # AST_SOFTHANGUP_SHUTDOWN: the flag, not a Q.850 cause


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class HangupHandlers(HandlerGroup):
    __slots__ = ()

    events: ClassVar[frozenset[str]] = frozenset(
        {"HangupRequest", "SoftHangupRequest", "Hangup", "Shutdown"}
    )

    def handlers(self) -> dict[str, Handler]:
        return {
            "HangupRequest": self.on_hangup_request,
            "SoftHangupRequest": self.on_soft_hangup_request,
            "Hangup": self.on_hangup,
            "Shutdown": self.on_shutdown,
        }

    def on_hangup_request(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self.state.known(msg)
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

    def on_soft_hangup_request(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self.state.known(msg)
        if channel is None:
            return
        channel.call.hanging_pairs.add(channel.pair)
        if msg.get("Cause") == _SOFTHANGUP_SHUTDOWN and channel.call.side is None:
            channel.call.side = HungUpBy.SYSTEM

    def on_hangup(self, msg: Msg, rx: float, out: Out) -> None:
        state = self.state
        channel = state.known(msg)
        if channel is None or not channel.alive:
            return
        call = channel.call
        channel.alive = False
        call.alive -= 1
        at = state.event_time(call, msg, rx)
        cause = _int(msg.get("Cause"))
        uid = channel.uniqueid
        if uid == call.linkedid or call.hangup_cause is None:
            call.hangup_cause = cause
            call.hangup_cause_text = msg.get("Cause-txt") or None
        state.close_leg(call, uid, at, cause, out)
        if (
            call.answered_at is None
            and call.wait_ended_at is None
            and uid == (call.queue_caller_uid or call.linkedid)
        ):
            call.wait_ended_at = at
        if call.alive <= 0 and call.origin_seen:
            state.end(call, at, out)

    def on_shutdown(self, msg: Msg, rx: float, out: Out) -> None:
        self.state.end_all(rx, out)
