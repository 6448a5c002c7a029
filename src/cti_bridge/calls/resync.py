"""Reconnect resync: make the model agree with the PBX's ``CoreShowChannels`` list.

After a lost link the model cannot know what it missed; the channel list is the truth.
Calls known and still listed continue (with ``complete=False`` if the link was lost during
them: events may be missing); calls known but no longer listed are closed by the system,
at the time the link was lost, marked ``ended_at_approximate`` (the hang-up was not seen);
calls listed but unknown are started from the list (``complete=False``), with their
rings and conversations estimated from the channels' states and ``Duration``. It works
on the model's ``LiveCalls`` (``calls/live.py``) through its public interface only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cti_bridge.calls.events import Direction, OperatorRinging, Ring
from cti_bridge.calls.live import LiveCalls, Out
from cti_bridge.calls.state import CallState, ChannelState

__all__ = ["reconcile"]

_UP = "6"
_RINGING_STATES = frozenset({"0", "5"})  # Down (being dialled), Ringing


def _seconds(duration: str | None) -> float:
    """``00:01:05`` -> 65.0; anything unreadable -> 0."""
    if not duration:
        return 0.0
    total = 0.0
    for part in duration.split(":"):
        if not part.isdigit():
            return 0.0
        total = total * 60 + int(part)
    return total


def reconcile(
    state: LiveCalls, channels: Sequence[Mapping[str, str]], received_at: float, out: Out
) -> None:
    by_call: dict[str, dict[str, Mapping[str, str]]] = {}
    for item in channels:
        if item.get("Event", "CoreShowChannel") != "CoreShowChannel":
            continue
        uid, lid, name = item.get("Uniqueid"), item.get("Linkedid"), item.get("Channel")
        if uid and lid and name:
            by_call.setdefault(lid, {})[uid] = item
    lost_at = state.trusted()
    for call in list(state.calls.values()):
        items = by_call.pop(call.linkedid, None)
        if items is None:
            end = received_at if lost_at is None else lost_at
            at = state.local_to_call(call, end)
            state.end(call, at, out, complete=False, system=True, approximate=True)
            continue
        if lost_at is not None:
            call.complete = False
        at = state.local_to_call(call, received_at)
        for channel in list(call.channels.values()):
            if channel.alive and channel.uniqueid not in items:
                channel.alive = False
                call.alive -= 1
                state.close_leg(call, channel.uniqueid, at, None, out)
        for uid, item in sorted(items.items(), key=lambda kv: kv[0] != call.linkedid):
            if uid not in call.channels and uid not in state.channels:
                channel = state.register_channel(
                    call, uid, item["Channel"], item, origin=uid == call.linkedid
                )
                _adopt_leg(state, call, channel, item, now=at, out=out)
    for lid, items in by_call.items():
        if lid not in state.recently_ended and not any(uid in state.channels for uid in items):
            _rebuild(state, lid, items, received_at, out)


def _rebuild(
    state: LiveCalls, lid: str, items: dict[str, Mapping[str, str]], received_at: float, out: Out
) -> None:
    pbx_clock = state.clock_known
    now = received_at + state.clock_offset if pbx_clock else received_at
    oldest = max(_seconds(item.get("Duration")) for item in items.values())
    call = state.new_call(lid, now - oldest, pbx_clock=pbx_clock, complete=False)
    ordered = sorted(items.items(), key=lambda kv: kv[0] != lid)  # the origin first
    registered = [
        (state.register_channel(call, uid, item["Channel"], item, origin=uid == lid), item)
        for uid, item in ordered
    ]
    origin = items.get(lid)
    if origin is not None:
        if origin.get("Application") == "Queue":
            queue = origin.get("ApplicationData", "").split(",", 1)[0] or None
            if queue is not None:
                call.queue = queue
                call.queues.append(queue)
                call.in_queue = True
                call.queue_caller_uid = lid
        if call.direction is Direction.INBOUND and state.topology.is_inbound_context(
            origin.get("Context", "")
        ):
            call.dialled = origin.get("Exten") or None
    state.start(call, out)
    for channel, item in registered:
        _adopt_leg(state, call, channel, item, now=now, out=out)


def _adopt_leg(
    state: LiveCalls,
    call: CallState,
    channel: ChannelState,
    item: Mapping[str, str],
    *,
    now: float,
    out: Out,
) -> None:
    """Estimate what a listed leg is doing: ringing, or talking since it was created."""
    if channel.name.endswith(";2"):
        return  # the phone half of a Local pair; its ;1 half stands for the leg
    if channel.uniqueid == call.linkedid and call.direction is not Direction.OUTBOUND:
        return  # the caller
    status = item.get("ChannelState")
    since = now - _seconds(item.get("Duration"))
    if state.topology.is_trunk(channel.device):
        if status == _UP:
            call.caller_pairs.add(channel.pair)  # a customer who picked up
        return
    if status == _UP and item.get("BridgeId"):
        segment = call.open_segment(channel, since)
        call.operator_pairs.add(channel.pair)
        state.answer(call, since, channel.device, segment, out)
    elif status in _RINGING_STATES and channel.uniqueid not in call.ring_index:
        ring = Ring(channel.device, channel.name, channel.uniqueid, since)
        call.add_ring(ring)
        state.start(call, out)
        out.append(OperatorRinging(call.snapshot(), ring))
