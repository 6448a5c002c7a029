"""The supervisors' live view: each queue and each agent as JSON (``GET /api/queues``,
``GET /api/agents``, the ``queue_update``/``agent_update`` pushes).

Built at each read from the members board (``operators.py``) and the waiting callers
(``callers.py``) of every PBX; nothing here is kept but what it is handed. Today's
figures (``today``, ``calls_today``, ``talk_seconds_today``) come from the KPI room
through the ports (``ports.py``) and are handed in by whoever asks.

A member's ``state`` is its board state, except that a member whose queue ring is open
while its (Local) state interface says in use shows ``ringing``: app_queue's Local
members say ``INUSE`` while they ring (``members.py``), and a supervisor must see a ring.
A caller's number is E.164 where it can be normalised (``[phone] default_region``),
null when withheld; caller names are never shown here (PBX text, raw in ``QueueEntry``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cti_bridge.calls.callerid import is_withheld
from cti_bridge.store.numbers import normalize_number

from .callers import QueueCallers
from .current import CurrentCalls, call_json
from .members import least_available
from .operators import MembersBoard, OperatorView

__all__ = ["Account", "LiveView", "iso", "signature"]


def iso(at: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2026-11-27T10:03:20.500000+00:00``)."""
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Account:
    """An agent as the accounts know them: every active operator account."""

    operator: str  # username
    name: str | None
    devices: tuple[str, ...]
    #: The account's id: the operator's own topic (``operator_topic``) for their
    #: ``agent_update``; ``None`` where unknown (then only the supervisors get it).
    operator_id: int | None = None


class LiveView:
    """Reads the board and the callers; ``now`` is the node's clock (epoch seconds)."""

    def __init__(
        self,
        board: MembersBoard,
        callers: Mapping[str, QueueCallers],
        now: Callable[[], float],
        *,
        region: str = "BE",
    ):
        self.board = board
        self.callers = dict(callers)
        self._now = now
        self._region = region
        #: The operator's phones, ``[{"device", "state"}]`` (``phones.PhoneStates``, set by
        #: the workload's wiring); ``None``: nobody watches phones, the list is empty.
        self.phones: Callable[[str], list[dict[str, Any]]] | None = None
        #: The call each device is on (``current.py``, fed by the pipelines); ``None``:
        #: nobody follows the calls, ``current_call`` is null.
        self.current_calls: CurrentCalls | None = None

    # -- queues ---------------------------------------------------------------------------

    def queue_names(self, pbx: str) -> list[str]:
        """The queues of ``pbx``: every one the snapshot listed, a caller joined or a
        member is in."""
        names = set(self.callers[pbx].queues()) if pbx in self.callers else set()
        if pbx in self.board.pbxs():
            names.update(self.board.members_of(pbx).queue_names())
        return sorted(names)

    def queues(self, call_ids: Mapping[tuple[str, str], int] | None = None) -> list[dict[str, Any]]:
        at = self._now()
        pbxs = sorted(set(self.callers) | set(self.board.pbxs()))
        return [
            self.queue(pbx, name, call_ids, at) for pbx in pbxs for name in self.queue_names(pbx)
        ]

    def queue(
        self,
        pbx: str,
        name: str,
        call_ids: Mapping[tuple[str, str], int] | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """One queue, without ``today`` (the caller adds it when it has it)."""
        at = self._now() if at is None else at
        ids = call_ids or {}
        callers = self.callers.get(pbx)
        waiting: list[dict[str, Any]] = []
        waits: list[int] = []
        for caller in callers.waiting(name) if callers is not None else []:
            withheld = is_withheld(caller.caller_number)
            waiting.append(
                {
                    "call_id": ids.get((pbx, caller.linkedid)),
                    "linkedid": caller.linkedid,
                    "caller_number": None
                    if withheld
                    else normalize_number(caller.caller_number, self._region),
                    "caller_withheld": withheld,
                    "position": caller.position,
                    "wait_seconds": max(0, int(at - caller.joined_at)),
                }
            )
            waits.append(waiting[-1]["wait_seconds"])
        members = []
        if pbx in self.board.pbxs():
            for member in self.board.members_of(pbx).members_of_queue(name, at):
                state = member.state
                if member.ringing and state == "on_call":
                    state = "ringing"
                operator = self.board.owner_of(member.device) or self.board.owner_of(
                    member.state_interface
                )
                members.append(
                    {
                        "operator": operator,
                        "device": member.device,
                        "interface": member.interface,
                        "name": member.name,
                        "state": state,
                        "paused": member.paused,
                        "paused_reason": member.paused_reason,
                        "state_since": iso(member.since),
                        "wrap_up_until": iso(member.wrap_up_until),
                        "calls_taken": member.calls_taken,
                    }
                )
        return {
            "pbx": pbx,
            "name": name,
            "waiting": waiting,
            "longest_wait_seconds": max(waits, default=0),
            "members": members,
        }

    def linkedids(self) -> dict[str, list[str]]:
        """Per PBX, the calls waiting now (for their record ids)."""
        found: dict[str, list[str]] = {}
        for pbx, callers in self.callers.items():
            for name in callers.queues():
                found.setdefault(pbx, []).extend(c.linkedid for c in callers.waiting(name))
        return found

    # -- agents ---------------------------------------------------------------------------

    def agent(self, account: Account, at: float | None = None) -> dict[str, Any]:
        """One agent over every PBX, without today's totals. On several PBXs the least
        available state counts (and the latest ``since`` of that state); on none:
        ``unavailable`` since nobody knows when."""
        at = self._now() if at is None else at
        views: list[OperatorView] = []
        for pbx in self.board.pbxs():
            view = self.board.operator(pbx, account.operator, at)
            if view is not None:
                views.append(view)
        devices = set(account.devices)
        for view in views:
            devices.update(m.device for m in view.memberships)
            devices.update(d.device for d in view.devices)
        current = None if self.current_calls is None else self.current_calls.of_devices(devices)
        if not views:
            state, since, reason, queues, pbxs = "unavailable", None, None, [], []
        else:
            state = least_available(v.state for v in views)
            chosen = [v for v in views if v.state == state]
            since = max(v.since for v in chosen)
            reasons = [v.paused_reason for v in chosen if v.paused_reason]
            reason = reasons[0] if reasons else None
            queues = sorted({q for v in views for q in v.queues})
            pbxs = sorted(
                pbx for pbx in self.board.pbxs() if self.board.operator(pbx, account.operator, at)
            )
        return {
            "operator": account.operator,
            "name": account.name,
            "devices": list(account.devices),
            "state": state,
            "paused_reason": reason,
            "state_since": iso(since),
            "queues": queues,
            "pbx": pbxs,
            "phones": [] if self.phones is None else self.phones(account.operator),
            "current_call": call_json(current, self._region, iso),
        }

    def memberships(self, username: str) -> dict[str, list[tuple[str, str]]]:
        """Per PBX, the operator's (queue, interface) memberships."""
        at = self._now()
        found: dict[str, list[tuple[str, str]]] = {}
        for pbx in self.board.pbxs():
            view = self.board.operator(pbx, username, at)
            if view is not None and view.memberships:
                found[pbx] = [(m.queue, m.interface) for m in view.memberships]
        return found


def signature(view: Mapping[str, Any], moving: Iterable[str] = ()) -> object:
    """What a push compares: the view without what moves by itself (waits)."""
    skip = set(moving)
    return repr(
        {
            key: (
                [{k: v for k, v in w.items() if k != "wait_seconds"} for w in value]
                if key == "waiting"
                else value
            )
            for key, value in sorted(view.items())
            if key not in skip
        }
    )
