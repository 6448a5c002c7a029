"""The call each device is on now: the agent view's ``current_call`` (pure).

The members board knows that an operator is ringing or on a call, not with whom: that
is the call model's. ``CurrentCalls`` is fed the model's domain events (a consumer of
each PBX's pipeline) and keeps, per (PBX, device), the call it talks on (an open talk
segment) or rings for (an open ring; a phone outside the helpdesk, a callback's
customer, is nobody's). Every event carries the whole call, so each one simply replaces
what the call's devices were: no event order to get right, and a transfer moves the
call to its target by itself. An ended call leaves every device it had.

It keeps the snapshot of the call, not a copy of its parts: a read costs a dict look-up
(the pushes read an agent at every change of theirs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cti_bridge.calls.callerid import is_withheld
from cti_bridge.calls.events import Call, CallEnded, DomainEvent
from cti_bridge.store.merge import clean_text
from cti_bridge.store.numbers import normalize_number

__all__ = ["CurrentCall", "CurrentCalls", "call_json"]

CallKey = tuple[str, str]  # (pbx, linkedid)


@dataclass(frozen=True, slots=True)
class CurrentCall:
    """One device on one call: ``talking`` (since its answer) or ``ringing`` (since
    its ring began)."""

    call: Call
    state: str  # "talking" | "ringing"
    since: float


def _parts(call: Call) -> dict[str, CurrentCall]:
    """The devices of ``call`` now, each with what it does on it."""
    found: dict[str, CurrentCall] = {}
    if call.ended_at is not None:
        return found
    for ring in call.rings:
        if ring.ended_at is None and not ring.outside:
            found[ring.device] = CurrentCall(call, "ringing", ring.started_at)
    for segment in call.segments:  # talking outweighs a ring of the same device
        if segment.ended_at is None:
            found[segment.device] = CurrentCall(call, "talking", segment.started_at)
    return found


class CurrentCalls:
    """Per (PBX, device) the call it is on now. ``changed(pbx, devices)`` is told which
    devices gained, lost or changed a call (the pushes mark their operators)."""

    def __init__(self) -> None:
        #: device -> {pbx: what it is on there}
        self._by_device: dict[str, dict[str, CurrentCall]] = {}
        self._devices_of: dict[CallKey, frozenset[str]] = {}
        self.changed: list[Callable[[str, frozenset[str]], None]] = []

    def feed(self, event: DomainEvent) -> None:
        call = event.call
        pbx = call.pbx
        key = (pbx, call.linkedid)
        now = {} if isinstance(event, CallEnded) else _parts(call)
        before = self._devices_of.pop(key, frozenset())
        touched: set[str] = set()
        for device in before - now.keys():
            held = self._by_device.get(device, {})
            if pbx in held and held[pbx].call.linkedid == call.linkedid:
                del held[pbx]
                if not held:
                    del self._by_device[device]
                touched.add(device)
        for device, part in now.items():
            held = self._by_device.setdefault(device, {})
            other = held.get(pbx)
            # A device on two calls (a second call ringing while it talks): the one it
            # talks on is the one to show.
            if (
                other is not None
                and other.call.linkedid != call.linkedid
                and other.state == "talking"
                and part.state == "ringing"
            ):
                continue
            if other != part:
                touched.add(device)
            held[pbx] = part
        if now:
            self._devices_of[key] = frozenset(now)
        if touched:
            for tell in self.changed:
                tell(pbx, frozenset(touched))

    def of_devices(self, devices: Iterable[str]) -> CurrentCall | None:
        """The call one of ``devices`` is on, on any PBX: talking before ringing, then
        the latest."""
        found = [part for d in devices for part in self._by_device.get(d, {}).values()]
        if not found:
            return None
        return min(found, key=lambda p: (p.state != "talking", -p.since))

    def __len__(self) -> int:
        return sum(len(held) for held in self._by_device.values())


def call_json(
    part: CurrentCall | None, region: str, iso: Callable[[float], str | None]
) -> dict[str, Any] | None:
    """The agent view's ``current_call``: who is on the line, from which queue, since
    when (``None``: no call). The caller's name is PBX text: the screens show it as text."""
    if part is None:
        return None
    call = part.call
    withheld = call.caller_withheld or is_withheld(call.caller_number_raw)
    raw = clean_text(call.caller_number_raw, 128)  # bounded as the call record stores them
    return {
        "pbx": call.pbx,
        "linkedid": call.linkedid,
        "direction": str(call.direction),
        "state": part.state,
        "since": iso(part.since),
        "caller_number": None if withheld or not raw else normalize_number(raw, region),
        "caller_number_raw": raw,
        "caller_name": clean_text(call.caller_name, 512),
        "caller_withheld": withheld,
        "queue": call.queue,
        "agreement_id": call.agreement_id,
    }
