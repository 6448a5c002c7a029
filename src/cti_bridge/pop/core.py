"""Who gets which pop, and what follows it: the pure core of the screen-pop engine.

The core is fed the call model's domain events and answers with *actions*: publish this
message on that bus topic, build the context of that call, look that device up again. It
does no I/O and knows neither Twisted nor the database, so every routing rule is tested by
feeding events and reading actions (``tests/unit/test_pop_*.py``); ``service.py`` is the
thin adapter that runs the actions.

One call, one context: the first ring of a call on an operator's device asks for the
call's context (customer, contracts, history, ...); every later ring of that call (the
other operators of a ringall queue, a transfer target) reuses it. Rings that arrive while
the context is being built wait for it, and a pop is only ever published once its context
is there, with the call's state as it is *then* (a slow build never shows "ringing" for a
call that was answered meanwhile).

A pop is per operator and call. Its life: pending (context not there yet) -> shown ->
withdrawn (the ring ended without this operator answering: somebody else answered, the
caller left, it rang out) or kept (this operator answered) until the call ends. Only
operators whose pop is shown and not withdrawn get ``call_update`` messages; a withdrawn
operator has nothing more to do with the call. Routing is by topic only: a message for an
operator goes to ``operator.<id>``, which only that operator's screens (and supervisors who
watch them) listen to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cti_bridge.bus.topics import operator_topic
from cti_bridge.calls.events import (
    Call,
    CallAnswered,
    CallEnded,
    CallTransferred,
    DomainEvent,
    HungUpBy,
    OperatorRinging,
    Ring,
    RingEnded,
    RingResult,
)

__all__ = [
    "Action",
    "BuildContext",
    "CallKey",
    "LookUpDevices",
    "OperatorRef",
    "PopCore",
    "Publish",
    "operator_topic",
    "withdrawal_reason",
]

CallKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class OperatorRef:
    id: int
    username: str


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    message: dict[str, Any]
    #: The ring that caused a first ``screen_pop`` (for latency figures), else None.
    ring_uniqueid: str | None = None


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Build the pop context of ``call`` (once per call) and hand it to ``context_ready``."""

    key: CallKey
    call: Call


@dataclass(frozen=True, slots=True)
class LookUpDevices:
    """A device rang that no known operator has: the directory may be out of date."""

    device: str


Action = Publish | BuildContext | LookUpDevices
Directory = Callable[[str], OperatorRef | None]


def iso(seconds: float | None) -> str | None:
    """POSIX seconds as the API writes times: ISO 8601 UTC with ``Z``, milliseconds."""
    if seconds is None:
        return None
    text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def withdrawal_reason(call: Call, ring: Ring) -> str:
    """Why a ring that this operator did not answer ended, in the console's words."""
    if ring.result is RingResult.NO_ANSWER:
        return "no_answer"  # rang out: the queue tries someone else, the dial timed out
    if ring.result in (RingResult.BUSY, RingResult.UNAVAILABLE, RingResult.FAILED):
        return "ring_failed"
    if call.answered_by is not None or any(
        r.result is RingResult.ANSWERED and r.uniqueid != ring.uniqueid for r in call.rings
    ):
        return "answered_elsewhere"
    if call.ended_at is not None and call.hung_up_by not in (None, HungUpBy.CALLER):
        return "ended"
    return "caller_left"


@dataclass
class _Pop:
    operator: OperatorRef
    device: str
    rang_at: float
    queue: str | None
    first_ring: str
    rings: set[str] = field(default_factory=set)  # ring uniqueids still ringing
    answered: bool = False
    shown: bool = False
    withdrawn: str | None = None

    @property
    def live(self) -> bool:
        return self.withdrawn is None


@dataclass
class _CallPops:
    call: Call
    context: dict[str, Any] | None = None
    pops: dict[int, _Pop] = field(default_factory=dict)
    ring_owner: dict[str, int] = field(default_factory=dict)  # ring uniqueid -> operator id


class PopCore:
    """The routing state of every call that rang an operator's device."""

    def __init__(self, directory: Directory):
        self._directory = directory
        self._calls: dict[CallKey, _CallPops] = {}
        #: Rings on devices nobody had when they started, retried after a directory refresh.
        self._unrouted: dict[CallKey, dict[str, OperatorRinging]] = {}

    # -- inputs ----------------------------------------------------------------------------

    def feed(self, event: DomainEvent) -> list[Action]:
        key = (event.call.pbx, event.call.linkedid)
        if isinstance(event, OperatorRinging):
            return self._ringing(key, event)
        if isinstance(event, RingEnded):
            self._forget_unrouted(key, event.ring.uniqueid)
            return self._ring_ended(key, event)
        if isinstance(event, CallEnded):
            self._unrouted.pop(key, None)
            return self._ended(key, event.call)
        state = self._calls.get(key)
        if state is None:
            return []
        state.call = event.call
        if isinstance(event, CallAnswered):
            return self._answered(state, event)
        if isinstance(event, CallTransferred):
            transfer = event.transfer
            extra = {
                "transfer": {
                    "kind": transfer.kind.value,
                    "from": self._who(transfer.from_device),
                    "to": self._who(transfer.to),
                }
            }
            return self._updates(state, "transferred", transfer.at, extra)
        return []

    def context_ready(self, key: CallKey, context: dict[str, Any]) -> list[Action]:
        """The context of ``key`` is built: show every pop that waited for it."""
        state = self._calls.get(key)
        if state is None or state.context is not None:
            return []  # the call ended while the context was built
        state.context = context
        actions: list[Action] = []
        for pop in state.pops.values():
            if pop.live and not pop.shown:
                actions.append(self._show(state, pop))
        return actions

    def call_id_ready(self, key: CallKey, call_id: int) -> list[Action]:
        """The record id of a call whose pop went out without one (the database's write
        lock was busy): the call's next messages and replays carry it. Nothing is sent
        now - the console takes the id from whichever message brings it first."""
        state = self._calls.get(key)
        if state is not None and state.context is not None and state.context.get("call_id") is None:
            state.context = {**state.context, "call_id": call_id}
        return []

    def directory_changed(self) -> list[Action]:
        """Devices may have new operators now: route the rings that found nobody."""
        actions: list[Action] = []
        for key in list(self._unrouted):
            waiting = self._unrouted.get(key, {})
            for uniqueid, event in list(waiting.items()):
                if self._directory(event.ring.device) is not None:
                    del waiting[uniqueid]
                    actions.extend(self._ringing(key, event, retry=True))
            if not waiting:
                self._unrouted.pop(key, None)
        return actions

    def replay(self, operator_id: int) -> list[Action]:
        """An operator's screen (re)connected: send the pops it should be showing now."""
        actions: list[Action] = []
        for state in self._calls.values():
            pop = state.pops.get(operator_id)
            if pop is not None and pop.live and pop.shown:
                message = self._pop_message(state, pop)
                message["replay"] = True
                actions.append(Publish(operator_topic(operator_id), message))
        return actions

    def forget_older_than(self, cutoff: float) -> int:
        """Drop calls that started before ``cutoff`` and never ended (a lost end event);
        returns how many. The call model closes calls on resync, this is the backstop."""
        old = [k for k, s in self._calls.items() if s.call.started_at < cutoff]
        for key in old:
            del self._calls[key]
        for key, waiting in list(self._unrouted.items()):
            if not waiting or all(e.call.started_at < cutoff for e in waiting.values()):
                del self._unrouted[key]
        return len(old)

    # -- what is there -----------------------------------------------------------------------

    def active_pops(self) -> int:
        return sum(1 for s in self._calls.values() for p in s.pops.values() if p.live)

    def calls(self) -> int:
        return len(self._calls)

    def pops_of(self, operator_id: int) -> list[CallKey]:
        return [k for k, s in self._calls.items() if (p := s.pops.get(operator_id)) and p.live]

    # -- events ------------------------------------------------------------------------------

    def _ringing(
        self, key: CallKey, event: OperatorRinging, *, retry: bool = False
    ) -> list[Action]:
        ring = event.ring
        if ring.outside:
            return []  # the customer's own phone (a callback's far end): nobody's pop
        operator = self._directory(ring.device)
        if operator is None:
            self._unrouted.setdefault(key, {})[ring.uniqueid] = event
            return [] if retry else [LookUpDevices(ring.device)]
        actions: list[Action] = []
        state = self._calls.get(key)
        if state is None:
            state = self._calls[key] = _CallPops(call=event.call)
            actions.append(BuildContext(key, event.call))
        elif not retry:
            state.call = event.call
        state.ring_owner[ring.uniqueid] = operator.id
        pop = state.pops.get(operator.id)
        if pop is not None and pop.live:
            pop.rings.add(ring.uniqueid)  # another of the operator's devices, same call
            return actions
        pop = _Pop(
            operator=operator,
            device=ring.device,
            rang_at=ring.started_at,
            queue=ring.queue or event.call.queue,
            first_ring=ring.uniqueid,
            rings={ring.uniqueid},
        )
        state.pops[operator.id] = pop  # replaces a withdrawn pop: the call rings again
        if state.context is not None:
            actions.append(self._show(state, pop))
        return actions

    def _ring_ended(self, key: CallKey, event: RingEnded) -> list[Action]:
        state = self._calls.get(key)
        if state is None:
            return []
        state.call = event.call
        ring = event.ring
        owner = state.ring_owner.pop(ring.uniqueid, None)
        pop = None if owner is None else state.pops.get(owner)
        if pop is None or not pop.live or ring.uniqueid not in pop.rings:
            return []
        pop.rings.discard(ring.uniqueid)
        if ring.result is RingResult.ANSWERED:
            pop.answered = True
            return []
        if pop.rings or pop.answered:
            return []
        return self._withdraw(state, pop, withdrawal_reason(event.call, ring), ring.ended_at)

    def _answered(self, state: _CallPops, event: CallAnswered) -> list[Action]:
        """Somebody picked up: the other operators whose phones still ring for this call
        lose it now (their ring's own end may come later or, on a lost link, never)."""
        at = event.segment.started_at
        answerer = self._directory(event.segment.device)
        actions: list[Action] = []
        for pop in state.pops.values():
            if not pop.live or pop.answered:
                continue
            if answerer is not None and pop.operator.id == answerer.id:
                pop.answered = True
            elif pop.rings:
                actions.extend(self._withdraw(state, pop, "answered_elsewhere", at))
        actions.extend(self._updates(state, "answered", at))
        return actions

    def _ended(self, key: CallKey, call: Call) -> list[Action]:
        state = self._calls.pop(key, None)
        if state is None:
            return []
        state.call = call
        actions: list[Action] = []
        for pop in state.pops.values():
            if pop.live and not pop.answered:
                reason = "caller_left" if call.hung_up_by is HungUpBy.CALLER else "ended"
                if call.answered_by is not None:
                    reason = "answered_elsewhere"
                actions.extend(self._withdraw(state, pop, reason, call.ended_at))
        actions.extend(self._updates(state, "ended", call.ended_at))
        return actions

    # -- messages ----------------------------------------------------------------------------

    def _show(self, state: _CallPops, pop: _Pop) -> Publish:
        pop.shown = True
        return Publish(
            operator_topic(pop.operator.id), self._pop_message(state, pop), pop.first_ring
        )

    def _withdraw(self, state: _CallPops, pop: _Pop, reason: str, at: float | None) -> list[Action]:
        pop.withdrawn = reason
        pop.rings.clear()
        if not pop.shown:
            return []  # never on screen: nothing to take back
        message: dict[str, Any] = {
            "type": "pop_withdrawn",
            **self._call_ids(state),
            "reason": reason,
            "at": iso(at),
        }
        if reason == "answered_elsewhere":
            message["answered_by"] = self._answerer(state.call)
        return [Publish(operator_topic(pop.operator.id), message)]

    def _updates(
        self, state: _CallPops, kind: str, at: float | None, extra: dict[str, Any] | None = None
    ) -> list[Action]:
        message = {"type": "call_update", **self._call_ids(state), **self._status(state.call)}
        message["state"] = kind
        message["at"] = iso(at)
        message.update(extra or {})
        return [
            Publish(operator_topic(pop.operator.id), dict(message))
            for pop in state.pops.values()
            if pop.live and pop.shown
        ]

    def _pop_message(self, state: _CallPops, pop: _Pop) -> dict[str, Any]:
        context = state.context or {}
        call = state.call
        return {
            "type": "screen_pop",
            **self._call_ids(state),
            **self._status(call),
            "state": self._state_of(call, pop),
            "direction": call.direction.value,
            "caller": context.get("caller"),
            "dialled": call.dialled,
            "queue": pop.queue,
            "device": pop.device,
            "operator": pop.operator.username,
            "rang_at": iso(pop.rang_at),
            "customer": context.get("customer"),
            "in_contract": context.get("in_contract", False),
            "contracts": context.get("contracts", []),
            "history": _history_for(context.get("history", []), pop.operator.username),
            "agreements": context.get("agreements", []),
            "agreement": context.get("agreement"),
            "scripts": context.get("scripts", []),
            "upsell": context.get("upsell"),
            "degraded": context.get("degraded", False),
        }

    @staticmethod
    def _call_ids(state: _CallPops) -> dict[str, Any]:
        context = state.context or {}
        return {
            "call_id": context.get("call_id"),
            "pbx": state.call.pbx,
            "linkedid": state.call.linkedid,
        }

    def _status(self, call: Call) -> dict[str, Any]:
        return {
            "answered_by": self._answerer(call),
            "answered_at": iso(call.answered_at),
            "ended_at": iso(call.ended_at),
            "outcome": None if call.outcome is None else call.outcome.value,
            "talking": [self._who(d) for d in call.current_devices],
        }

    @staticmethod
    def _state_of(call: Call, pop: _Pop) -> str:
        if call.ended_at is not None:
            return "ended"
        if pop.rings and not pop.answered:
            return "ringing"  # for this operator it rings, whatever the call did before
        if call.transfers:
            return "transferred"
        if pop.answered or call.answered_at is not None:
            return "answered"
        return "ringing"

    def _answerer(self, call: Call) -> str | None:
        device = call.answered_by
        if device is None:
            device = next((r.device for r in call.rings if r.result is RingResult.ANSWERED), None)
        return self._who(device)

    def _who(self, device: str | None) -> str | None:
        """An operator's username where the device has one, else the device (or extension)."""
        if device is None:
            return None
        operator = self._directory(device)
        return device if operator is None else operator.username

    def _forget_unrouted(self, key: CallKey, uniqueid: str) -> None:
        waiting = self._unrouted.get(key)
        if waiting is not None:
            waiting.pop(uniqueid, None)
            if not waiting:
                del self._unrouted[key]


def _history_for(history: list[dict[str, Any]], username: str) -> list[dict[str, Any]]:
    """What of a pop's history this operator sees: with ``[web] call_history = "own"``
    its calls say who may see them (``seen_by``, docs/security.md), and an operator sees
    only theirs; the mark itself never goes out."""
    if not any("seen_by" in item for item in history):
        return history
    return [
        {k: v for k, v in item.items() if k != "seen_by"}
        for item in history
        if "seen_by" not in item or username in item["seen_by"]
    ]
