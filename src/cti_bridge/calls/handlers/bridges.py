"""Bridges and transfers: blind, attended, and the Redirect that Asterisk does not announce.

A transfer ends the transferring operator's part (his pair is no longer an operator of
the call) and resets "who hung up"; its target is the extension, replaced by the device
once it rings (``DialBegin``), or the latest other talking device (attended).
"""

from __future__ import annotations

from typing import ClassVar

from cti_bridge.calls.events import TransferKind
from cti_bridge.calls.handlers.base import Handler, HandlerGroup
from cti_bridge.calls.live import ChannelKeys, Msg, Out

__all__ = ["BridgeHandlers"]

_TRANSFERER: ChannelKeys = ("TransfererUniqueid", "TransfererChannel", "TransfererLinkedid")
_TRANSFEREE: ChannelKeys = ("TransfereeUniqueid", "TransfereeChannel", "TransfereeLinkedid")
_ORIG_TRANSFERER: ChannelKeys = (
    "OrigTransfererUniqueid",
    "OrigTransfererChannel",
    "OrigTransfererLinkedid",
)
_SECOND_TRANSFERER: ChannelKeys = (
    "SecondTransfererUniqueid",
    "SecondTransfererChannel",
    "SecondTransfererLinkedid",
)


class BridgeHandlers(HandlerGroup):
    __slots__ = ()

    events: ClassVar[frozenset[str]] = frozenset(
        {"BridgeEnter", "BridgeLeave", "BlindTransfer", "AttendedTransfer"}
    )

    def handlers(self) -> dict[str, Handler]:
        return {
            "BridgeEnter": self.on_bridge_enter,
            "BridgeLeave": self.on_bridge_leave,
            "BlindTransfer": self.on_blind_transfer,
            "AttendedTransfer": self.on_attended_transfer,
        }

    def on_bridge_enter(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self.state.known(msg)
        if channel is not None:
            channel.bridge = msg.get("BridgeUniqueid")

    def on_bridge_leave(self, msg: Msg, rx: float, out: Out) -> None:
        state = self.state
        channel = state.known(msg)
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
        at = state.event_time(call, msg, rx)
        to = msg.get("Exten") or None
        state.transfer(
            call, TransferKind.REDIRECT, at=at, from_device=operators[0].device, to=to, out=out
        )

    def on_blind_transfer(self, msg: Msg, rx: float, out: Out) -> None:
        if msg.get("Result", "Success") != "Success":
            return
        state = self.state
        transferer = state.known(msg, _TRANSFERER)
        channel = transferer or state.known(msg, _TRANSFEREE)
        if channel is None:
            return
        call = channel.call
        if transferer is not None:
            call.operator_pairs.discard(transferer.pair)
        at = state.event_time(call, msg, rx)
        state.transfer(
            call,
            TransferKind.BLIND,
            at=at,
            from_device=transferer.device if transferer is not None else None,
            to=msg.get("Extension") or None,
            out=out,
        )

    def on_attended_transfer(self, msg: Msg, rx: float, out: Out) -> None:
        if msg.get("Result", "Success") != "Success":
            return
        state = self.state
        first = state.known(msg, _ORIG_TRANSFERER)
        second = state.known(msg, _SECOND_TRANSFERER)
        channel = first or second or state.known(msg, _TRANSFEREE)
        if channel is None:
            return
        call = channel.call
        gone = {c.pair for c in (first, second) if c is not None}
        call.operator_pairs.difference_update(gone)
        target = call.latest_open_segment(gone)
        at = state.event_time(call, msg, rx)
        transferer = first or second
        from_device = transferer.device if transferer is not None else None
        to = target.device if target is not None else None
        state.transfer(call, TransferKind.ATTENDED, at=at, from_device=from_device, to=to, out=out)
