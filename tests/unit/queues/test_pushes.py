"""What a change marks for a push: only the queues the changed devices are (or were)
members of, never every queue of the PBX (that ran on every member event, the hot path);
and a burst of callers joining is one look-up of their record ids per interval."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from cti_bridge.ami.parser import Message
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.bus.topics import SUPERVISORS_TOPIC
from cti_bridge.queues.members import QueueMembers
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.queues.pushes import PUSH_INTERVAL, SupervisorPushes
from cti_bridge.queues.service import Supervision

ANNA, BART = "Local/1001@agents", "Local/1002@agents"


def member(queue: str, device: str, name: str, **fields: str) -> Message:
    return Message(
        {
            "Event": "QueueMember",
            "Queue": queue,
            "Name": name,
            "Location": f"{device}/n",
            "StateInterface": device,
            "Membership": "static",
            "Status": "1",
            "Paused": "0",
            "InCall": "0",
            "Wrapuptime": "0",
            **fields,
        }
    )


def event(kind: str, queue: str, device: str, name: str, **fields: str) -> Message:
    item = dict(member(queue, device, name, **fields))
    item["Event"] = kind
    item["Interface"] = item.pop("Location")
    item["MemberName"] = item.pop("Name")
    return Message(item)


class Rig:
    def __init__(self) -> None:
        self.clock = Clock()
        self.members = QueueMembers("main")
        self.board = MembersBoard(self.clock.seconds)
        self.board.add(self.members)
        self.board.set_operators({ANNA: "anna", BART: "bart"}, 0.0)
        self.built: list[tuple[str, str]] = []
        self.lookups = 0
        self.waiting: dict[str, list[Any]] = {}
        callers = SimpleNamespace(
            queues=lambda: list(self.waiting), waiting=lambda q: self.waiting.get(q, [])
        )
        view = SimpleNamespace(
            board=self.board,
            callers={"main": callers},
            linkedids=lambda: {"main": [c for cs in self.waiting.values() for c in cs]},
        )
        supervision = SimpleNamespace(
            view=view,
            roster={},
            queue_json=self.queue_json,
            resolve_ids=self.resolve_ids,
        )
        self.bus = MemoryBus(self.clock)
        self.heard: list[dict[str, Any]] = []
        self.screen = self.bus.subscribe(SUPERVISORS_TOPIC, self.heard.append)  # a supervisor
        self.pushes = SupervisorPushes(cast(Supervision, supervision), self.bus, self.clock)
        self.board.watchers.append(self.pushes.members_changed)

    def queue_json(self, pbx: str, name: str) -> dict[str, Any]:
        self.built.append((pbx, name))
        return {"pbx": pbx, "name": name, "n": len(self.built)}

    def resolve_ids(self) -> Any:
        self.lookups += 1
        return succeed(False)

    def snapshot(self, *items: Message) -> None:
        listed: list[Message] = []
        for item in items:
            if not any(i["Queue"] == item["Queue"] for i in listed):
                listed.append(Message({"Event": "QueueParams", "Queue": item["Queue"]}))
            listed.append(item)
        self.board.changed("main", self.members.resync(listed, self.clock.seconds()), 0.0)

    def feed(self, msg: Message) -> None:
        self.board.changed("main", self.members.feed(msg, self.clock.seconds()), 0.0)

    def settle(self) -> list[tuple[str, str]]:
        """The queues built for a push since the last settle."""
        self.clock.advance(PUSH_INTERVAL)
        built, self.built = self.built, []
        return sorted(set(built))


def test_a_member_change_marks_only_its_own_queues() -> None:
    rig = Rig()
    rig.snapshot(
        member("support", ANNA, "Anna"),
        member("support", BART, "Bart"),
        member("sales", BART, "Bart"),
        member("billing", BART, "Bart"),
    )
    assert rig.settle() == [("main", "billing"), ("main", "sales"), ("main", "support")]
    rig.feed(event("QueueMemberPause", "support", ANNA, "Anna", Paused="1", PausedReason="lunch"))
    assert rig.settle() == [("main", "support")]  # Anna is in support only
    rig.feed(event("QueueMemberStatus", "sales", BART, "Bart", Status="2"))
    # Bart's device is in use: every queue he is a member of, not Anna's alone.
    assert rig.settle() == [("main", "billing"), ("main", "sales"), ("main", "support")]


def test_a_member_removed_still_marks_the_queue_it_left() -> None:
    rig = Rig()
    rig.snapshot(member("support", ANNA, "Anna"), member("sales", BART, "Bart"))
    rig.settle()
    rig.feed(event("QueueMemberRemoved", "sales", BART, "Bart"))
    assert rig.settle() == [("main", "sales")]  # shown without Bart now
    rig.feed(event("QueueMemberAdded", "billing", BART, "Bart"))
    assert rig.settle() == [("main", "billing")]


def test_a_burst_of_joins_is_one_record_id_look_up_per_interval() -> None:
    rig = Rig()
    rig.waiting["support"] = []
    for n in range(5):
        rig.waiting["support"].append(f"1700000000.{n}")
        rig.pushes.callers_changed("main", frozenset({"support"}), 0.0)
    assert rig.lookups == 1  # the first at once
    rig.clock.advance(PUSH_INTERVAL)
    assert rig.lookups == 2  # then one for the rest of the burst
    rig.clock.advance(10 * PUSH_INTERVAL)
    assert rig.lookups == 2
    rig.waiting["support"] = []
    rig.pushes.callers_changed("main", frozenset({"support"}), 0.0)
    assert rig.lookups == 2  # nobody waits: nothing to look up


def test_nothing_is_built_while_no_screen_could_receive_it() -> None:
    """The in-process bus knows no supervisor is connected: the queues' views are not
    built on each change then; once a screen is open again the next change is pushed."""
    rig = Rig()
    rig.snapshot(member("support", ANNA, "Anna"), member("sales", BART, "Bart"))
    assert rig.settle() == [("main", "sales"), ("main", "support")]
    rig.clock.advance(0)
    assert len(rig.heard) == 2
    rig.screen()  # the supervisor's screen closes
    rig.feed(event("QueueMemberPause", "support", ANNA, "Anna", Paused="1", PausedReason="lunch"))
    assert rig.settle() == []
    rig.bus.subscribe(SUPERVISORS_TOPIC, rig.heard.append)
    rig.feed(event("QueueMemberPause", "support", ANNA, "Anna", Paused="0", PausedReason=""))
    assert rig.settle() == [("main", "support")]
    rig.clock.advance(0)
    assert [m["queue"]["name"] for m in rig.heard[2:]] == ["support"]
