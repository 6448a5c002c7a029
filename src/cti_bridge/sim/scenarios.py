"""One function per helpdesk call flow: each turns a caller into a :class:`CallPlan`.

A plan says what the *people* do (who picks up after how long, who hangs up, who
transfers); the PBX then produces whatever Asterisk would for that. Unspecified
choices are drawn from the world's seeded ``rng``, so the same seed gives the same
calls. The functions never touch time or the network: the caller of a scenario runs
the plan with :meth:`Dialplan.inbound`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .dialplan import CallPlan, Party, TransferPlan
from .phones import Reply
from .queues import QueueEngine

__all__ = ["SCENARIOS", "WITHHELD", "World"]

#: How a withheld caller arrives from the trunk (``CALLERID(pres)=prohib``, trace 13).
WITHHELD = ("anonymous", "Anonymous")


@dataclass
class World:
    """What a scenario may look at: queues, operators, the second line, the dice."""

    queues: QueueEngine
    operators: list[str]  # devices, PJSIP/1001 ...
    second_line: str  # the transfer target's extension, 2001
    rng: random.Random

    def queue(self, name: str | None, *, linear: bool = False) -> str:
        """The queue asked for; by default the first configured one (with ``linear``:
        the first linear one, where a ring-no-answer moves on to the next member)."""
        if name is not None:
            return name
        queues = list(self.queues.queues.values())
        if linear:
            queues = [q for q in queues if q.config.strategy == "linear"] or queues
        return queues[0].name

    def did(self, queue: str) -> str:
        return self.queues.queues[queue].config.did

    def members(self, queue: str) -> list[str]:
        return [m.interface for m in self.queues.queues[queue].members]

    def exten(self, device: str) -> str:
        return device.rsplit("/", 1)[-1]

    def pick(self, devices: list[str]) -> str:
        """Prefer an operator who is free now, as a caller would not know otherwise."""
        free = [d for d in devices if self.queues.pbx.device_states.get(d) == "NOT_INUSE"]
        return self.rng.choice(free or devices)

    def talk(self) -> float:
        return round(self.rng.uniform(15.0, 80.0), 1)

    def ring(self) -> float:
        return round(self.rng.uniform(1.5, 7.0), 1)


def queue_answered(
    world: World,
    caller: tuple[str, str],
    *,
    queue: str | None = None,
    operator: str | None = None,
    ring: float | None = None,
    talk: float | None = None,
    ended_by: Party | None = None,
) -> CallPlan:
    """A queue call answered; by ``operator`` if given, else by whoever is quickest."""
    queue = world.queue(queue)
    members = world.members(queue)
    if operator is not None:
        replies = {d: Reply.noanswer() for d in members}
        replies[operator] = Reply.answer(ring if ring is not None else world.ring())
    else:
        replies = {d: Reply.answer(world.ring()) for d in members}
    return CallPlan(
        caller,
        world.did(queue),
        talk=talk if talk is not None else world.talk(),
        ended_by=ended_by or ("caller" if world.rng.random() < 0.6 else "operator"),
        replies=replies,
    )


def queue_abandoned(
    world: World,
    caller: tuple[str, str],
    *,
    queue: str | None = None,
    patience: float | None = None,
) -> CallPlan:
    """Nobody picks up and the caller hangs up while waiting."""
    queue = world.queue(queue)
    wait = patience if patience is not None else round(world.rng.uniform(6.0, 30.0), 1)
    replies = {d: Reply.noanswer() for d in world.members(queue)}
    return CallPlan(caller, world.did(queue), patience=wait, replies=replies)


def queue_timeout(world: World, caller: tuple[str, str], *, queue: str | None = None) -> CallPlan:
    """Nobody picks up and the queue's own 60 s limit ends the wait (quirk 11)."""
    queue = world.queue(queue)
    replies = {d: Reply.noanswer() for d in world.members(queue)}
    return CallPlan(caller, world.did(queue), replies=replies)


def ring_no_answer(
    world: World,
    caller: tuple[str, str],
    *,
    queue: str | None = None,
    operator: str | None = None,
    answered_by: str | None = None,
    ring: float = 2.0,
    talk: float | None = None,
) -> CallPlan:
    """The first operator rung lets it ring out; another one answers the next attempt."""
    queue = world.queue(queue, linear=True)
    members = world.members(queue)
    missed = operator or members[0]
    taker = answered_by or next(d for d in members if d != missed)
    replies: dict[str, Reply | tuple[Reply, ...]] = {d: Reply.noanswer() for d in members}
    replies[missed] = Reply.noanswer()
    linear = world.queues.queues[queue].config.strategy == "linear"
    # ringall rings everyone in the first round: the taker answers only the second.
    replies[taker] = Reply.answer(ring) if linear else (Reply.noanswer(), Reply.answer(ring))
    return CallPlan(
        caller,
        world.did(queue),
        talk=talk if talk is not None else world.talk(),
        ended_by="operator",
        replies=replies,
    )


def busy_then_answered(
    world: World,
    caller: tuple[str, str],
    *,
    queue: str | None = None,
    busy: str | None = None,
    answered_by: str | None = None,
    talk: float | None = None,
) -> CallPlan:
    """One operator's phone answers 486 Busy; another picks up (pjsip trace 02)."""
    queue = world.queue(queue)
    members = world.members(queue)
    refuser = busy or members[0]
    taker = answered_by or next(d for d in members if d != refuser)
    replies = {d: Reply.noanswer() for d in members}
    replies[refuser] = Reply.busy()
    replies[taker] = Reply.answer(3.0)
    return CallPlan(
        caller,
        world.did(queue),
        talk=talk if talk is not None else world.talk(),
        ended_by="operator",
        replies=replies,
    )


def direct_answered(
    world: World,
    caller: tuple[str, str],
    *,
    operator: str | None = None,
    ring: float = 3.0,
    talk: float | None = None,
    ended_by: Party = "caller",
) -> CallPlan:
    """The customer dials an operator's own number (no queue, pjsip trace 04)."""
    device = operator or world.pick(world.operators)
    return CallPlan(
        caller,
        world.exten(device),
        talk=talk if talk is not None else world.talk(),
        ended_by=ended_by,
        replies={device: Reply.answer(ring)},
    )


def direct_missed(
    world: World,
    caller: tuple[str, str],
    *,
    operator: str | None = None,
    patience: float | None = None,
) -> CallPlan:
    """A direct call rings out (``Dial()`` gives up after 20 s, trace 04b), or the
    caller gives up first when ``patience`` is shorter."""
    device = operator or world.pick(world.operators)
    return CallPlan(
        caller, world.exten(device), patience=patience, replies={device: Reply.noanswer()}
    )


def _transferred(
    kind: str,
    world: World,
    caller: tuple[str, str],
    *,
    queue: str | None,
    operator: str | None,
    after: float | None,
    talk: float | None,
    target_ring: float | None,
    consult: float | None = None,
) -> CallPlan:
    base = queue_answered(world, caller, queue=queue, operator=operator, ended_by="caller")
    target = f"PJSIP/{world.second_line}"
    ring = target_ring if target_ring is not None else round(world.rng.uniform(2.0, 5.0), 1)
    replies = {**base.replies, target: Reply.answer(ring)}
    xfer = TransferPlan(
        "blind" if kind == "blind" else "attended",
        world.second_line,
        after=after if after is not None else round(world.rng.uniform(10.0, 60.0), 1),
        consult=consult if consult is not None else round(world.rng.uniform(4.0, 15.0), 1),
        talk=talk if talk is not None else world.talk(),
    )
    return CallPlan(caller, base.dialled, replies=replies, transfer=xfer)


def blind_transfer(
    world: World,
    caller: tuple[str, str],
    *,
    queue: str | None = None,
    operator: str | None = None,
    after: float | None = None,
    talk: float | None = None,
    target_ring: float | None = None,
) -> CallPlan:
    """Answered from the queue, then sent on to the second line without consulting."""
    return _transferred(
        "blind",
        world,
        caller,
        queue=queue,
        operator=operator,
        after=after,
        talk=talk,
        target_ring=target_ring,
    )


def attended_transfer(
    world: World,
    caller: tuple[str, str],
    *,
    queue: str | None = None,
    operator: str | None = None,
    after: float | None = None,
    talk: float | None = None,
    target_ring: float | None = None,
    consult: float | None = None,
) -> CallPlan:
    """Answered, the operator consults the second line, then hangs up to join them."""
    return _transferred(
        "attended",
        world,
        caller,
        queue=queue,
        operator=operator,
        after=after,
        talk=talk,
        target_ring=target_ring,
        consult=consult,
    )


def withheld(world: World, caller: tuple[str, str] | None = None, **options: Any) -> CallPlan:
    """A caller with a withheld number, answered from the queue."""
    return queue_answered(world, WITHHELD, **options)


SCENARIOS: dict[str, Callable[..., CallPlan]] = {
    "queue_answered": queue_answered,
    "queue_abandoned": queue_abandoned,
    "queue_timeout": queue_timeout,
    "ring_no_answer": ring_no_answer,
    "busy_then_answered": busy_then_answered,
    "direct_answered": direct_answered,
    "direct_missed": direct_missed,
    "blind_transfer": blind_transfer,
    "attended_transfer": attended_transfer,
    "withheld": withheld,
}
