"""The far ends of outgoing legs: how a phone answers when the PBX rings it.

Asterisk only ever sees what a phone sends back: ``180 Ringing`` (``Newstate
Ringing``), ``200 OK`` (``Newstate Up``), ``486 Busy Here`` (``HangupRequest Cause:
17``), ``503`` (congestion, cause 34), ``404 Not Found`` from the network for a number
that does not exist (cause 1), or nothing at all from a phone that died before qualify
noticed (trace 07b: the leg stays ``Down`` until it is cancelled). A :class:`Reply`
says which of these a phone does for one call; :class:`Ringer` plays it on the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from twisted.internet.interfaces import IDelayedCall

from .channels import Channel
from .pbx import PBX

__all__ = ["Reply", "Ringer", "Ringing"]

ReplyKind = Literal["answer", "noanswer", "busy", "congestion", "unallocated", "silent"]

#: The Q.850 cause and SIP status of each way to turn a call down.
REJECTIONS = {"busy": (17, "486"), "congestion": (34, "503"), "unallocated": (1, "404")}

#: A phone's 180 follows the INVITE within a few tens of milliseconds.
PROVISIONAL_DELAY = 0.02


@dataclass(frozen=True, slots=True)
class Reply:
    """What one phone does with one incoming call.

    ``after`` is the ringing time before answering, or the delay before a busy,
    congestion or unallocated reply. ``noanswer`` rings until the PBX gives up; ``silent`` never
    even rings (a dead phone that qualify still believes in).
    """

    kind: ReplyKind = "answer"
    after: float = 2.0

    @classmethod
    def answer(cls, after: float = 2.0) -> Reply:
        return cls("answer", after)

    @classmethod
    def noanswer(cls) -> Reply:
        return cls("noanswer", 0.0)

    @classmethod
    def busy(cls, after: float = 0.0) -> Reply:
        return cls("busy", after)

    @classmethod
    def congestion(cls, after: float = 0.0) -> Reply:
        return cls("congestion", after)

    @classmethod
    def unallocated(cls, after: float = 0.3) -> Reply:
        """The network knows no such number: ``404 Not Found`` (cause 1)."""
        return cls("unallocated", after)

    @classmethod
    def silent(cls) -> Reply:
        return cls("silent", 0.0)


@dataclass(eq=False)
class Ringing:
    """A phone's pending reactions to one leg; cancelled when the PBX gives up on it."""

    leg: Channel
    reply: Reply
    rang_at: float | None = None
    timers: list[IDelayedCall] = field(default_factory=list)
    done: bool = False
    #: Picks the call up now (the person at the phone presses "answer").
    pick_up: Callable[[], None] | None = None


class Ringer:
    """Schedules a phone's 180/200/486/503/404 for an outgoing leg on the PBX clock."""

    def __init__(self, pbx: PBX) -> None:
        self.pbx = pbx
        #: Phones ringing now, by leg name.
        self.ringing: dict[str, Ringing] = {}

    def ring(
        self,
        leg: Channel,
        reply: Reply,
        *,
        on_ringing: Callable[[Ringing], None],
        on_answer: Callable[[Ringing], None],
        on_reject: Callable[[Ringing, int, str], None],
    ) -> Ringing:
        ringing = Ringing(leg, reply)
        sched = self.pbx.sched
        endpoint = self.pbx.endpoints.get(leg.device)
        if reply.kind == "silent" or (endpoint is not None and not endpoint.alive):
            return ringing

        def rang() -> None:
            if not ringing.done:
                ringing.rang_at = self.pbx.now()
                on_ringing(ringing)

        def answered() -> None:
            if not ringing.done:
                self.cancel(ringing)
                on_answer(ringing)

        def rejected(cause: int, tech: str) -> None:
            if not ringing.done:
                self.cancel(ringing)
                on_reject(ringing, cause, tech)

        self.ringing[leg.name] = ringing
        ringing.pick_up = answered

        if reply.kind in REJECTIONS:
            cause, status = REJECTIONS[reply.kind]
            ringing.timers.append(sched.later(reply.after, rejected, cause, status))
        else:
            ringing.timers.append(sched.later(PROVISIONAL_DELAY, rang))
            if reply.kind == "answer":
                delay = max(reply.after, PROVISIONAL_DELAY * 2)
                ringing.timers.append(sched.later(delay, answered))
        return ringing

    def answer_now(self, device: str) -> bool:
        """The phone on ``device`` picks up the call that rings it (after its 180)."""
        for ringing in list(self.ringing.values()):
            rang = ringing.rang_at is not None
            if ringing.leg.device == device and rang and ringing.pick_up is not None:
                ringing.pick_up()
                return True
        return False

    def cancel(self, ringing: Ringing) -> None:
        self.ringing.pop(ringing.leg.name, None)
        ringing.done = True
        for timer in ringing.timers:
            self.pbx.sched.cancel(timer)
        ringing.timers.clear()
