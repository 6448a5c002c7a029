# mypy: disallow-untyped-calls=False
"""The members board on a node, fed by a PBX link: the snapshot of every connect, the
device list after it, live events, a lost link; and the device map's reloads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from cti_bridge import queues
from cti_bridge.ami.client import AMIAccount, AMIClient
from cti_bridge.ami.listener import ResyncSnapshot
from cti_bridge.ami.parser import Message
from cti_bridge.ami.protocol import ActionResult
from cti_bridge.app.config import parse_config
from cti_bridge.app.node import Node
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline
from cti_bridge.queues.feed import MembersFeed, OperatorDevices
from cti_bridge.queues.members import QueueMembers
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.store import Store
from tests.support.ami_link import FULLY_BOOTED, SECRET, FakeEndpoint, PBXSide, list_answer
from tests.support.members_replay import OPERATORS, seed_items


def sync(work: Callable[[], Any]) -> Deferred[Any]:
    """The node's pool, run at once (no threads in a unit test)."""
    try:
        return succeed(work())
    except Exception as error:
        return fail(error)


class Rig:
    def __init__(self, owners: dict[str, str] | None = None):
        config = parse_config(
            {
                "web": {"host": "127.0.0.1", "port": 0},
                "database": {"url": "sqlite://"},
                "bus": {"url": "memory://"},
                "pbx": [{"name": "main", "host": "127.0.0.1", "username": "cti", "secret": SECRET}],
            },
            source="test",
        )
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_795_735_000.0)
        self.endpoint = FakeEndpoint()
        pipeline = CallPipeline(CallModel("main"))
        self.client = AMIClient(
            self.reactor,
            AMIAccount("main", "127.0.0.1", 5038, "cti", SECRET, auth="plain"),
            endpoint=self.endpoint,
            listeners=[pipeline],
        )
        self.owners = dict(OPERATORS if owners is None else owners)
        store = SimpleNamespace(
            sessions=sessionmaker(create_engine("sqlite://")),
            accounts=SimpleNamespace(device_operators=lambda: dict(self.owners)),
            url="sqlite://",
            ping=lambda: None,
        )
        self.node = Node(
            config,
            self.reactor,
            cast(Store, store),
            MemoryBus(self.reactor),
            clients={"main": self.client},
            pipelines={"main": pipeline},
        )
        self.node.run = sync  # type: ignore[method-assign]
        queues.install(self.node)
        self.board = self.node.part("members", MembersBoard)
        Node.run_hooks(self.node.starting)

    def connect(self, members: list[Message] | None = None) -> PBXSide:
        """Log in, boot, answer the snapshot with ``members`` (default: 11-restart-
        reconnect's QueueStatus)."""
        if not self.endpoint.attempts:
            self.client.start()
        pbx = self.endpoint.accept()
        (login,) = pbx.actions()
        pbx.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n" + FULLY_BOOTED)
        chans, queue_status = pbx.actions()
        pbx.send(list_answer(chans.action_id or "", [], "CoreShowChannelsComplete"))
        items = [as_text(m) for m in (seed_items() if members is None else members)]
        pbx.send(list_answer(queue_status.action_id or "", items, "QueueStatusComplete"))
        assert self.client.state == "connected"
        return pbx

    def states(self) -> dict[str, str]:
        return {s.operator: s.state for s in self.board.operator_states("main")}


def as_text(msg: Message) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in msg.items() if k != "ActionID")


def device_list_asked(pbx: PBXSide) -> Message:
    """The ``DeviceStateList`` asked after the snapshot (beside the phones' endpoint list,
    ``PJSIPShowEndpoints``, which these tests leave unanswered)."""
    actions = {a["Action"]: a for a in pbx.actions()}
    assert sorted(actions) == ["DeviceStateList", "PJSIPShowEndpoints"]
    return actions["DeviceStateList"]


AGENT_CALLED = (
    "Event: AgentCalled\r\nQueue: support\r\nInterface: Local/1001@agents/n\r\n"
    "MemberName: Anna\r\nDestChannel: Local/1001@agents-000000a7;1\r\n"
    "DestUniqueid: 1795735383.334\r\n\r\n"
)


def test_the_snapshot_and_the_events_of_the_link_reach_the_board() -> None:
    rig = Rig()
    assert rig.states() == {}  # no link yet: nobody is known on this PBX
    pbx = rig.connect()
    assert rig.states() == {"anna": "available", "bart": "available"}
    pbx.send(AGENT_CALLED)
    assert rig.states() == {"anna": "ringing", "bart": "available"}
    health = rig.node.health.report()["members"]
    assert health["pbx"]["main"]["members"] == 4 and health["operators"] == 4


def test_the_device_list_gives_phones_outside_the_queues_a_state() -> None:
    rig = Rig({"PJSIP/2001": "second"})  # a phone in no queue
    pbx = rig.connect()
    action = device_list_asked(pbx)
    assert rig.states() == {}
    item = "Event: DeviceStateChange\r\nDevice: PJSIP/2001\r\nState: NOT_INUSE\r\n"
    pbx.send(list_answer(action.action_id or "", [item], "DeviceStateListComplete"))
    assert rig.states() == {"second": "available"}
    pbx.send("Event: DeviceStateChange\r\nDevice: PJSIP/2001\r\nState: INUSE\r\n\r\n")
    assert rig.states() == {"second": "on_call"}


def test_a_lost_link_forgets_everyone_and_the_next_snapshot_brings_them_back() -> None:
    rig = Rig()
    pbx = rig.connect()
    device_list_asked(pbx)  # not answered before the link goes
    pbx.send(AGENT_CALLED)
    pbx.close("PBX gone")
    assert rig.states() == {}
    assert rig.board.operator_states("main") == []
    feed_status = rig.node.health.report()["members"]["pbx"]["main"]
    assert feed_status["device_lists"]["failed"] == 1  # the link took it along
    rig.reactor.advance(60)  # the client's back-off
    pbx = rig.connect()
    assert rig.states() == {"anna": "available", "bart": "available"}  # no ring left over


def test_a_shutdown_forgets_everyone_at_once() -> None:
    rig = Rig()
    pbx = rig.connect()
    pbx.send("Event: Shutdown\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n")
    assert rig.states() == {}


def test_a_pbx_that_refuses_the_device_list_only_leaves_those_phones_unknown() -> None:
    rig = Rig({"PJSIP/2001": "second", "Local/1001@agents": "anna"})
    pbx = rig.connect()
    action = device_list_asked(pbx)
    pbx.send(
        f"Response: Error\r\nActionID: {action.action_id}\r\n"
        "Message: Invalid/unknown command: DeviceStateList.\r\n\r\n"
    )
    assert rig.states() == {"anna": "available"}
    status = rig.node.health.report()["members"]["pbx"]["main"]["device_lists"]
    assert status == {"asked": 1, "answered": 0, "failed": 1}
    assert rig.client.state == "connected"


def test_the_device_map_is_reloaded_every_minute_and_kept_when_a_reload_fails() -> None:
    clock = Clock()
    clock.advance(1000)
    board = MembersBoard(clock.seconds)
    owners = {"PJSIP/1001": "anna"}
    broken = False

    def load() -> dict[str, str]:
        if broken:
            raise ConnectionError("database down")
        return dict(owners)

    devices = OperatorDevices(board, load, sync, clock, interval=60.0)
    devices.start()
    assert (devices.reloads, board.operators_loaded_at) == (1, 1000.0)
    owners["PJSIP/1002"] = "bart"
    clock.advance(60)
    assert board.status()["operators"] == 2
    broken = True
    clock.advance(60)
    assert (devices.reloads, devices.failures, board.status()["operators"]) == (2, 1, 2)
    devices.stop()
    clock.advance(600)
    assert devices.reloads + devices.failures == 3  # no more after stop


def test_a_device_list_that_answers_after_its_link_was_lost_is_thrown_away() -> None:
    clock = Clock()
    members = QueueMembers("main")
    board = MembersBoard(clock.seconds)
    board.add(members)
    board.set_operators({"PJSIP/2001": "second"}, 0.0)
    answers: list[Deferred[ActionResult]] = []

    def send_action(action: str, **_: Any) -> Deferred[ActionResult]:
        answers.append(Deferred())
        return answers[-1]

    feed = MembersFeed(members, board, clock, send_action=send_action)
    snapshot = ResyncSnapshot("main", [], [], Message({"Event": "FullyBooted"}))
    feed.ami_resync(snapshot, 1.0)
    feed.ami_link_lost("gone", 2.0)
    item = Message({"Event": "DeviceStateChange", "Device": "PJSIP/2001", "State": "NOT_INUSE"})
    answers[0].callback(ActionResult("DeviceStateList", Message(), (item,)))
    assert board.operator_states("main") == []
    feed.ami_resync(snapshot, 3.0)
    answers[1].callback(ActionResult("DeviceStateList", Message(), (item,)))
    assert [s.state for s in board.operator_states("main")] == ["available"]


class Fragile(QueueMembers):
    """Members with a bug on one kind of event."""

    def feed(self, msg: Mapping[str, str], at: float) -> frozenset[str]:
        if msg.get("Event") == "QueueMemberStatus":
            raise RuntimeError("a bug")
        return super().feed(msg, at)


def test_an_event_that_breaks_the_members_is_counted_and_the_next_one_goes_on() -> None:
    clock = Clock()
    members = Fragile("main")
    board = MembersBoard(clock.seconds)
    board.add(members)
    board.set_operators({"PJSIP/2001": "second"}, 0.0)
    feed = MembersFeed(members, board, clock)
    feed.ami_event(Message({"Event": "QueueMemberStatus"}), 1.0)
    assert feed.status()["errors"] == 1
    change = {"Event": "DeviceStateChange", "Device": "PJSIP/2001", "State": "INUSE"}
    feed.ami_event(Message(change), 2.0)
    assert [s.state for s in board.operator_states("main")] == ["on_call"]
