"""Channels: a call is made of the channels that share its ``Linkedid``.

Only ``Newchannel`` (and the resync) creates calls and channels; the other events here
keep what is known about them up to date: the caller ID (Local channels learn it just
after ``Newchannel``), a channel's new name, and the dialplan's ``CTI_*`` variables.
"""

from __future__ import annotations

from typing import ClassVar

from cti_bridge.calls.handlers.base import Handler, HandlerGroup, VariableHandler
from cti_bridge.calls.live import Msg, Out, set_caller
from cti_bridge.calls.state import ChannelState

__all__ = ["ChannelHandlers"]


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class ChannelHandlers(HandlerGroup):
    __slots__ = ()

    events: ClassVar[frozenset[str]] = frozenset({"Newchannel", "NewCallerid", "Rename"})
    variables: ClassVar[frozenset[str]] = frozenset({"CTI_*"})

    def handlers(self) -> dict[str, Handler]:
        return {
            "Newchannel": self.on_newchannel,
            "NewCallerid": self.on_newcallerid,
            "Rename": self.on_rename,
        }

    def variable_handlers(self) -> dict[str, VariableHandler]:
        return {"CTI_*": self.on_cti_variable}

    def on_newchannel(self, msg: Msg, rx: float, out: Out) -> None:
        state = self.state
        uid = msg.get("Uniqueid")
        lid = msg.get("Linkedid")
        name = msg.get("Channel")
        if not uid or not lid or not name or uid in state.channels or lid in state.recently_ended:
            return
        call = state.calls.get(lid)
        if call is None:
            ts = _float(msg.get("Timestamp"))
            if ts is not None:
                state.pbx_clock_seen(ts, rx)
            start = ts if ts is not None else rx
            call = state.new_call(lid, start, pbx_clock=ts is not None, complete=uid == lid)
        state.register_channel(call, uid, name, msg, origin=uid == lid)

    def on_newcallerid(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self.state.known(msg)
        if channel is not None and channel.uniqueid == channel.linkedid:
            set_caller(channel.call, msg)

    def on_rename(self, msg: Msg, rx: float, out: Out) -> None:
        channel = self.state.channels.get(msg.get("Uniqueid", ""))
        new = msg.get("Newname")
        if channel is not None and new and msg.get("Channel") == channel.name:
            channel.name = new

    def on_cti_variable(self, channel: ChannelState, msg: Msg, rx: float, out: Out) -> None:
        """The dialplan's ``CTI_*`` variables go with the call (``CTI_AGREEMENT_ID``...)."""
        call = channel.call
        variable = msg.get("Variable", "")
        value = msg.get("Value", "")
        call.variables[variable] = value
        if variable == "CTI_AGREEMENT_ID" and value:
            call.agreement_id = value
            call.make_outbound()
