"""Who is waiting in which queue, on one PBX: the queues' callers, fed by AMI (pure).

``QueueCallers`` starts from the ``QueueEntry`` items of the ``QueueStatus`` snapshot that
every (re)connect fetches (``ResyncSnapshot.queue_status``), follows ``QueueCallerJoin``,
``QueueCallerLeave`` and ``QueueCallerAbandon`` from there, and forgets everything when
the link is lost or the PBX shuts down, like the members (``members.py``): a caller it
cannot vouch for is not shown.

Positions are app_queue's: a caller joins at the ``Position`` the event says (a caller
with a higher priority joins ahead), and when one leaves, everyone behind moves up one,
as app_queue renumbers them (it announces no new positions).

A caller is known by its channel's ``Uniqueid``; its call by the ``Linkedid`` (the call
model's and the record's key: ``(pbx, linkedid)``). The wait runs from the join, on the
clock the caller hands in (``at``); in the snapshot, from ``at - Wait``.

Trust: Asterisk sends a ``QueueEntry``'s caller name raw, so a caller waiting during a
resync can forge list items after it (13-hostile-callerid-crlf-injection). Each queue's
``QueueParams`` comes before its callers and says how many there are (``Calls``): only
that many entries of its own section are taken, each with the next position; an entry
outside its queue's section, beyond that count, out of order or of a queue listed twice
is dropped and counted (``dropped_items``). The caller's name is never kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["CALLER_EVENTS", "QueueCallers", "WaitingCaller"]

Msg = Mapping[str, str]

#: The live events ``QueueCallers.feed`` acts on.
CALLER_EVENTS = frozenset(
    {"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "Hangup", "Shutdown"}
)


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    """One caller waiting in one queue."""

    queue: str
    position: int  # 1: next to be answered
    uniqueid: str  # the caller's channel
    linkedid: str  # the call's
    channel: str
    caller_number: str  # raw, as the PBX said it (``anonymous``, ``<unknown>``, ...)
    joined_at: float  # on the node's clock


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


class QueueCallers:
    """The callers waiting in every queue of one PBX. ``feed``, ``resync`` and ``reset``
    return the queues whose list changed."""

    def __init__(self, pbx: str):
        self.pbx = pbx
        self._queues: dict[str, list[WaitingCaller]] = {}
        self.counts = {"events": 0, "unknown_caller": 0, "dropped_items": 0, "resets": 0}

    # -- the link -------------------------------------------------------------------------

    def resync(self, items: Sequence[Msg], at: float) -> frozenset[str]:
        """A ``QueueStatus`` list (in PBX order) replaces every caller."""
        touched = set(self._queues)
        self._queues.clear()
        listed: dict[str, list[WaitingCaller]] = {}
        expected: dict[str, int] = {}
        listed_twice: set[str] = set()
        section: str | None = None
        for item in items:
            event, queue = item.get("Event"), item.get("Queue", "")
            if event == "QueueParams":
                if queue in listed:
                    listed_twice.add(queue)
                section = queue
                listed.setdefault(queue, [])
                expected[queue] = _int(item.get("Calls"))
            elif event == "QueueEntry":
                callers = listed.get(queue)
                uniqueid = item.get("Uniqueid", "")
                if (
                    queue != section
                    or callers is None
                    or len(callers) >= expected[queue]
                    or _int(item.get("Position")) != len(callers) + 1
                    or not uniqueid
                    or any(c.uniqueid == uniqueid for c in callers)
                ):
                    self.counts["dropped_items"] += 1
                    continue
                wait = min(float(_int(item.get("Wait"))), max(at, 0.0))
                callers.append(
                    WaitingCaller(
                        queue=queue,
                        position=len(callers) + 1,
                        uniqueid=uniqueid,
                        linkedid=item.get("Linkedid") or uniqueid,
                        channel=item.get("Channel", ""),
                        caller_number=item.get("CallerIDNum", ""),
                        joined_at=at - wait,
                    )
                )
        for queue, found in listed.items():
            if queue in listed_twice:
                self.counts["dropped_items"] += len(found)
            self._queues[queue] = [] if queue in listed_twice else found
            touched.add(queue)
        return frozenset(touched)

    def reset(self, at: float) -> frozenset[str]:
        """The link is lost (or the PBX shut down): nobody is known to wait."""
        touched = frozenset(q for q, callers in self._queues.items() if callers)
        self._queues.clear()
        self.counts["resets"] += 1
        return touched

    # -- live events ----------------------------------------------------------------------

    def feed(self, msg: Msg, at: float) -> frozenset[str]:
        event = msg.get("Event")
        if event not in CALLER_EVENTS:
            return frozenset()
        self.counts["events"] += 1
        if event == "Shutdown":
            return self.reset(at)
        uniqueid = msg.get("Uniqueid", "")
        if event == "Hangup":
            # app_queue always says Leave or Abandon first; a caller gone without either
            # (a lost event) must not wait for ever.
            return self._remove_everywhere(uniqueid)
        queue = msg.get("Queue")
        if not queue or not uniqueid:
            return frozenset()
        callers = self._queues.setdefault(queue, [])
        if event == "QueueCallerJoin":
            callers[:] = [c for c in callers if c.uniqueid != uniqueid]
            position = _int(msg.get("Position")) or len(callers) + 1
            index = min(max(position, 1), len(callers) + 1) - 1
            caller = WaitingCaller(
                queue=queue,
                position=index + 1,
                uniqueid=uniqueid,
                linkedid=msg.get("Linkedid") or uniqueid,
                channel=msg.get("Channel", ""),
                caller_number=msg.get("CallerIDNum", ""),
                joined_at=at,
            )
            callers.insert(index, caller)
            self._renumber(queue)
            return frozenset({queue})
        if not any(c.uniqueid == uniqueid for c in callers):
            self.counts["unknown_caller"] += 1
            return frozenset()
        callers[:] = [c for c in callers if c.uniqueid != uniqueid]
        self._renumber(queue)
        return frozenset({queue})

    # -- reads ----------------------------------------------------------------------------

    def waiting(self, queue: str) -> list[WaitingCaller]:
        """The queue's callers, by position."""
        return list(self._queues.get(queue, ()))

    def queues(self) -> list[str]:
        """Every queue the PBX listed or a caller joined, by name."""
        return sorted(self._queues)

    def sizes(self) -> dict[str, int]:
        return {"waiting": sum(len(c) for c in self._queues.values())}

    # -- inside ---------------------------------------------------------------------------

    def _remove_everywhere(self, uniqueid: str) -> frozenset[str]:
        touched: set[str] = set()
        for queue, callers in self._queues.items():
            if any(c.uniqueid == uniqueid for c in callers):
                callers[:] = [c for c in callers if c.uniqueid != uniqueid]
                self._renumber(queue)
                touched.add(queue)
        return frozenset(touched)

    def _renumber(self, queue: str) -> None:
        callers = self._queues[queue]
        for index, caller in enumerate(callers):
            if caller.position != index + 1:
                callers[index] = _moved(caller, index + 1)


def _moved(caller: WaitingCaller, position: int) -> WaitingCaller:
    return WaitingCaller(
        queue=caller.queue,
        position=position,
        uniqueid=caller.uniqueid,
        linkedid=caller.linkedid,
        channel=caller.channel,
        caller_number=caller.caller_number,
        joined_at=caller.joined_at,
    )
