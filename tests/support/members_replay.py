"""Replay a recorded trace into ``QueueMembers`` (and a board), stopping at message numbers.

Message ``#n`` is the README's numbering (``messages(name)[n - 1]``). Live events go to
``feed``; a ``QueueStatus`` answer in the trace (items with an ``ActionID``) is gathered
and handed to ``resync`` at its ``QueueStatusComplete``, as the link does with the
snapshot of a (re)connect. The fake clock gives message ``#n`` the instant
``start + n``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cti_bridge.ami.parser import Message
from cti_bridge.queues.members import QueueMembers
from cti_bridge.queues.operators import MembersBoard
from tests.support.calls_facts import messages

#: Epoch seconds near the recordings, so the PBX's own times (LastPause, ...) are past.
START = 1_795_735_000.0

#: The operators of the recorded PBX: Anna, Bart, second line, and Chris (10-agent-pause).
OPERATORS = {
    "Local/1001@agents": "anna",
    "Local/1002@agents": "bart",
    "Local/2001@agents": "second",
    "Local/1003@agents": "chris",
    "PJSIP/1001": "anna",
}

_QUEUE_ITEMS = frozenset({"QueueParams", "QueueMember", "QueueEntry"})


def seed_items() -> list[Message]:
    """The ``QueueStatus`` answer of 11-restart-reconnect (#23-#28): Anna and Bart in
    support and sales, free and unpaused. The other traces start without one."""
    return [m for m in messages("11-restart-reconnect.ami") if m.get("Event") in _QUEUE_ITEMS]


@dataclass
class MembersReplay:
    name: str
    members: QueueMembers = field(default_factory=lambda: QueueMembers("main"))
    start: float = START
    position: int = 0  # the last message number fed
    #: The ActionIDs of the trace's ``QueueStatus`` answers that stand for a snapshot
    #: (``None``: all); a filtered ``QueueStatus`` (one queue) is not one.
    snapshots: frozenset[str] | None = None
    board: MembersBoard = field(init=False)
    _items: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.msgs = messages(self.name)
        self.board = MembersBoard(lambda: self.at(self.position))
        self.board.add(self.members)
        self.board.set_operators(OPERATORS, self.start)

    def at(self, n: int) -> float:
        return self.start + n

    def seed(self, items: Sequence[Mapping[str, str]] | None = None) -> MembersReplay:
        """A snapshot before message #1 (at ``start``)."""
        changed = self.members.resync(seed_items() if items is None else items, self.start)
        self.board.changed("main", changed, self.start)
        return self

    def to(self, n: int) -> MembersReplay:
        """Feed messages up to and including #n."""
        for number in range(self.position + 1, n + 1):
            msg, at = self.msgs[number - 1], self.at(number)
            event = msg.get("Event")
            if event is None:
                continue
            if msg.get("ActionID") is not None:
                if event in _QUEUE_ITEMS and self._is_snapshot(msg):
                    self._items.append(msg)
                elif event == "QueueStatusComplete" and self._is_snapshot(msg):
                    changed = self.members.resync(self._items, at)
                    self.board.changed("main", changed, at)
                    self._items = []
                continue
            changed = self.members.feed(msg, at)
            if changed:
                self.board.changed("main", changed, at)
        self.position = max(self.position, n)
        return self

    def _is_snapshot(self, msg: Message) -> bool:
        return self.snapshots is None or msg.get("ActionID") in self.snapshots

    def to_end(self) -> MembersReplay:
        return self.to(len(self.msgs))

    def state(self, queue: str, interface: str) -> str | None:
        for view in self.members.members(self.at(self.position)):
            if (view.queue, view.interface) == (queue, interface):
                return view.state
        return None

    def states(self) -> dict[tuple[str, str], str]:
        return {
            (v.queue, v.interface): v.state for v in self.members.members(self.at(self.position))
        }

    def operator(self, username: str) -> str | None:
        view = self.board.operator("main", username)
        return None if view is None else view.state
