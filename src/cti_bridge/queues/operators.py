"""Operators as the dialer and the supervisors see them: their devices and memberships,
summed up into one state (pure).

An operator is bound to devices (``store.accounts.device_operators()``: device ->
username; the wiring reloads it every minute, and the board works with what it has). A
device belongs to an operator when it is one of theirs exactly; a membership when its
interface's device or its state interface's device is (``Local/1001@agents/n`` is device
``Local/1001@agents``; a FreePBX-style ``Local/1001@from-queue/n`` judged by
``PJSIP/1001`` belongs to the operator of ``PJSIP/1001``).

The operator's state is the least available of all that (``operator_state``): on a call,
ringing or in wrap-up anywhere outweighs everything; paused in every queue they are in
is ``paused``; ``available`` needs a device or membership that is free and not paused;
anything else is ``unavailable``. ``since`` is when the operator entered that state: kept
while the state stays, and on a change the latest ``since`` of the parts in the new state
(the change that made it). The board computes an operator's state whenever one of their
devices changes (``changed``), so a state that came and went between two reads is seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cti_bridge.dialer.policy import OperatorState

from .members import DeviceView, MembershipPart, MemberView, Part, QueueMembers, least_available

__all__ = ["MembersBoard", "OperatorView", "operator_state"]

_NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class OperatorView:
    """One operator on one PBX, as computed at their last change."""

    operator: str  # username
    state: str
    since: float
    #: While available: the queues they take calls from (member, not paused there).
    #: Otherwise every queue they are a member of.
    queues: frozenset[str]
    paused_reason: str | None
    devices: tuple[DeviceView, ...]  # their devices with a state of their own
    memberships: tuple[MemberView, ...]
    #: While available: a device of theirs that is free (the one to ring). Else ``None``.
    free_device: str | None


def operator_state(
    devices: Sequence[Part], memberships: Sequence[MembershipPart]
) -> tuple[str, frozenset[str], str | None]:
    """(state, queues, paused reason) of one operator from their parts. Table-tested."""
    parts = [d.state for d in devices] + [m.state for m in memberships]
    every_queue = frozenset(m.queue for m in memberships)
    busiest = least_available(parts)
    if busiest in ("on_call", "ringing", "wrap_up"):
        return busiest, every_queue, None
    if memberships and all(m.paused for m in memberships):
        reasons = [m.paused_reason for m in memberships if m.paused_reason]
        return "paused", every_queue, reasons[0] if reasons else None
    if "available" in parts:
        taking = frozenset(m.queue for m in memberships if not m.paused)
        return "available", taking, None
    return "unavailable", every_queue, None


def _free_device(devices: Sequence[DeviceView], memberships: Sequence[MemberView]) -> str | None:
    for device in devices:
        if device.state == "available":
            return device.device
    for member in memberships:
        if member.state == "available":
            return member.device
    return None


@dataclass(slots=True)
class _Kept:
    """An operator on one PBX as last computed: the state at once (it decides ``since``
    at every change), the views only when somebody reads them."""

    state: str
    since: float
    queues: frozenset[str]
    paused_reason: str | None
    until: float  # a wrap-up runs out then: compute again
    view: OperatorView | None = None
    policy: OperatorState | None = None


class MembersBoard:
    """The operators of every PBX; implements the dialer's ``OperatorBoard`` port.

    Fed by the wiring: ``add`` one ``QueueMembers`` per PBX, ``set_operators`` with the
    device map, ``changed`` after each change of a PBX's members or devices. Reads take
    the time from ``now`` (the injected clock, epoch seconds).

    At a change only the state of the operators concerned is computed (it decides
    ``since``); their views are built at the next read and kept until the next change,
    or until a wrap-up runs out (the one change no event announces). So the AMI path pays
    a few look-ups per event and a dialer pass over hundreds of operators a list.
    """

    def __init__(self, now: Callable[[], float]):
        self._now = now
        self._pbx: dict[str, QueueMembers] = {}
        self._owner: dict[str, str] = {}  # device -> username
        self._devices_of: dict[str, tuple[str, ...]] = {}  # username -> devices
        #: (pbx, username) -> the operator as last computed (``None``: not on that PBX).
        self._kept: dict[tuple[str, str], _Kept | None] = {}
        self.operators_loaded_at: float | None = None
        #: Told ``(pbx, usernames, at)`` after each change (the supervisors' pushes):
        #: the operators computed again, whose members may have changed with them.
        #: ``watcher(pbx, usernames, devices, at)`` after each change: the operators
        #: recomputed, and the devices that may have changed (``None``: all of them).
        self.watchers: list[Callable[[str, frozenset[str], frozenset[str] | None, float], None]]
        self.watchers = []

    # -- feeding --------------------------------------------------------------------------

    def add(self, members: QueueMembers) -> None:
        self._pbx[members.pbx] = members

    def members_of(self, pbx: str) -> QueueMembers:
        return self._pbx[pbx]

    def set_operators(self, owners: Mapping[str, str], at: float) -> None:
        """The device -> username map (all of it, as the store has it now)."""
        self._owner = dict(owners)
        devices_of: dict[str, list[str]] = {}
        for device, username in sorted(self._owner.items()):
            devices_of.setdefault(username, []).append(device)
        self._devices_of = {user: tuple(devices) for user, devices in devices_of.items()}
        self.operators_loaded_at = at
        for key in [key for key in self._kept if key[1] not in devices_of]:
            del self._kept[key]
        for pbx in self._pbx:
            self.changed(pbx, None, at)

    def changed(self, pbx: str, devices: Iterable[str] | None, at: float) -> None:
        """These devices of ``pbx`` (``None``: all) may have changed at ``at``."""
        touched = None if devices is None else frozenset(devices)
        if touched is None:
            users: Iterable[str] = list(self._devices_of)
        else:
            users = {self._owner[d] for d in touched if d in self._owner}
        computed = frozenset(users)
        for username in computed:
            self._compute(pbx, username, at)
        for watcher in self.watchers:
            watcher(pbx, computed, touched, at)

    # -- the OperatorBoard port -----------------------------------------------------------

    def operator_states(self, pbx: str) -> list[OperatorState]:
        """Every operator with a device or membership on ``pbx``, by username."""
        at = self._now()
        found: list[OperatorState] = []
        for username in sorted(self._devices_of):
            kept = self._read(pbx, username, at)
            if kept is not None:
                if kept.policy is None:
                    since = datetime.fromtimestamp(kept.since, UTC)
                    kept.policy = OperatorState(username, kept.state, kept.queues, since)
                found.append(kept.policy)
        return found

    # -- reads ----------------------------------------------------------------------------

    def operators(self, pbx: str, at: float | None = None) -> list[OperatorView]:
        at = self._now() if at is None else at
        views = (self.operator(pbx, username, at) for username in sorted(self._devices_of))
        return [view for view in views if view is not None]

    def operator(self, pbx: str, username: str, at: float | None = None) -> OperatorView | None:
        at = self._now() if at is None else at
        kept = self._read(pbx, username, at)
        if kept is None:
            return None
        if kept.view is None:
            kept.view = self._view(self._pbx[pbx], username, kept, at)
        return kept.view

    def device_owners(self) -> dict[str, str]:
        """The device -> username map as last loaded (a copy)."""
        return dict(self._owner)

    def owner_of(self, device: str) -> str | None:
        """The username ``device`` is bound to, if any."""
        return self._owner.get(device)

    def pbxs(self) -> list[str]:
        return sorted(self._pbx)

    def free_device(self, pbx: str, username: str) -> str | None:
        """The operator's device to ring now (``Local/…`` devices without ``/n``), if
        they are available; ``None`` otherwise."""
        view = self.operator(pbx, username)
        return None if view is None else view.free_device

    def status(self) -> dict[str, Any]:
        return {
            "pbx": {name: members.sizes() for name, members in self._pbx.items()},
            "operators": len(self._devices_of),
            "operators_loaded_at": self.operators_loaded_at,
        }

    # -- inside ---------------------------------------------------------------------------

    def _read(self, pbx: str, username: str, at: float) -> _Kept | None:
        key = (pbx, username)
        if key in self._kept:
            kept = self._kept[key]
            if kept is None or kept.until > at:
                return kept
        return self._compute(pbx, username, at)

    def _compute(self, pbx: str, username: str, at: float) -> _Kept | None:
        key = (pbx, username)
        members = self._pbx.get(pbx)
        if members is None:
            return None
        devices, memberships = members.parts(self._devices_of.get(username, ()), at)
        before = self._kept.get(key)
        if not devices and not memberships:
            self._kept[key] = None
            return None
        state, queues, reason = operator_state(devices, memberships)
        if before is not None and before.state == state:
            since = before.since
        else:
            parts = [p.since for p in devices if p.state == state]
            parts += [m.since for m in memberships if m.state == state]
            since = min(max(parts), at) if parts else at
        ends = [m.wrap_up_until for m in memberships if m.wrap_up_until is not None]
        kept = _Kept(state, since, queues, reason, min(ends) if ends else _NEVER)
        self._kept[key] = kept
        return kept

    def _view(self, members: QueueMembers, username: str, kept: _Kept, at: float) -> OperatorView:
        devices: list[DeviceView] = []
        memberships: dict[tuple[str, str], MemberView] = {}
        for device in self._devices_of.get(username, ()):
            own = members.device(device, at)
            if own is not None:
                devices.append(own)
            for member in members.memberships(device, at):
                memberships[(member.queue, member.interface)] = member
        ordered = [memberships[k] for k in sorted(memberships)]
        return OperatorView(
            operator=username,
            state=kept.state,
            since=kept.since,
            queues=kept.queues,
            paused_reason=kept.paused_reason,
            devices=tuple(devices),
            memberships=tuple(ordered),
            free_device=_free_device(devices, ordered) if kept.state == "available" else None,
        )
