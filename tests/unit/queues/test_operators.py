"""An operator's state from their devices and memberships; the board behind the dialer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cti_bridge.ami.parser import Message
from cti_bridge.dialer.policy import Agreement, OperatorState, Policy, who_may_ring
from cti_bridge.dialer.ports import OperatorBoard
from cti_bridge.queues.members import DeviceView, MemberView, QueueMembers
from cti_bridge.queues.operators import MembersBoard, operator_state
from tests.support.members_replay import MembersReplay


def device(state: str, name: str = "PJSIP/1001", since: float = 0.0) -> DeviceView:
    return DeviceView(name, state, since, state.upper())


def member(
    state: str,
    queue: str = "support",
    *,
    paused: bool = False,
    reason: str | None = None,
    since: float = 0.0,
) -> MemberView:
    return MemberView(
        queue=queue,
        interface="Local/1001@agents/n",
        device="Local/1001@agents",
        state_interface="Local/1001@agents",
        name="Anna",
        state=state,
        since=since,
        paused=paused,
        paused_reason=reason,
        device_state="NOT_INUSE",
        ringing=state == "ringing",
        wrap_up_until=None,
        membership="static",
        penalty=0,
        calls_taken=0,
    )


def paused(queue: str, reason: str | None = "Lunch", state: str = "paused") -> MemberView:
    return member(state, queue, paused=True, reason=reason)


BOTH = frozenset({"support", "sales"})


@pytest.mark.parametrize(
    ("devices", "memberships", "expected"),
    [
        # on a call on any device outweighs everything
        ([device("on_call")], [member("available"), member("available", "sales")],
         ("on_call", BOTH, None)),
        ([device("available")], [member("on_call"), paused("sales")], ("on_call", BOTH, None)),
        ([device("ringing")], [member("wrap_up")], ("ringing", {"support"}, None)),
        ([], [member("wrap_up"), member("available", "sales")], ("wrap_up", BOTH, None)),
        # paused in every queue: paused, with the first reason given
        ([], [paused("support", None), paused("sales", "Coaching")],
         ("paused", BOTH, "Coaching")),
        ([device("available")], [paused("support"), paused("sales")],
         ("paused", BOTH, "Lunch")),
        # paused in one queue: available for the other only
        ([], [paused("support"), member("available", "sales")],
         ("available", {"sales"}, None)),
        # a free phone outside the queues makes an operator available
        ([device("available"), device("unavailable", "PJSIP/2")], [],
         ("available", frozenset(), None)),
        ([device("available")], [member("unavailable")], ("available", {"support"}, None)),
        # nothing free
        ([device("unavailable")], [member("unavailable")], ("unavailable", {"support"}, None)),
        ([], [paused("support"), member("unavailable", "sales")],
         ("unavailable", BOTH, None)),
        ([device("unavailable")], [], ("unavailable", frozenset(), None)),
    ],
)  # fmt: skip
def test_the_least_available_part_decides(
    devices: list[DeviceView],
    memberships: list[MemberView],
    expected: tuple[str, frozenset[str], str | None],
) -> None:
    state, queues, reason = operator_state(devices, memberships)
    assert (state, queues, reason) == (expected[0], frozenset(expected[1]), expected[2])


# -- the board ------------------------------------------------------------------------------


def status(queue: str, interface: str, state_interface: str, **fields: str) -> Message:
    return Message(
        {
            "Event": "QueueMemberStatus",
            "Queue": queue,
            "Interface": interface,
            "StateInterface": state_interface,
            "MemberName": "Anna",
            "Status": "1",
            "Paused": "0",
            **fields,
        }
    )


def dsc(name: str, state: str) -> Message:
    return Message({"Event": "DeviceStateChange", "Device": name, "State": state})


class Board:
    """One PBX's members and the board over them, fed by hand; the clock is ``now``."""

    def __init__(self, owners: dict[str, str]):
        self.now = 1000.0
        self.members = QueueMembers("main")
        self.board = MembersBoard(lambda: self.now)
        self.board.add(self.members)
        self.board.set_operators(owners, self.now)

    def feed(self, msg: Message, at: float) -> None:
        self.now = at
        self.board.changed("main", self.members.feed(msg, at), at)

    def state(self, username: str) -> tuple[str, float] | None:
        view = self.board.operator("main", username)
        return None if view is None else (view.state, view.since)


def test_a_freepbx_style_member_belongs_to_the_operator_of_its_state_interface() -> None:
    board = Board({"PJSIP/1001": "anna"})
    board.feed(status("support", "Local/1001@from-queue/n", "PJSIP/1001"), 1001.0)
    view = board.board.operator("main", "anna")
    assert view is not None and view.queues == frozenset({"support"})
    board.feed(dsc("PJSIP/1001", "RINGING"), 1002.0)
    assert board.state("anna") == ("ringing", 1002.0)
    # Another queue's member with the same device: one operator, two queues.
    board.feed(status("sales", "PJSIP/1001", "PJSIP/1001", Status="6"), 1003.0)
    view = board.board.operator("main", "anna")
    assert view is not None and view.queues == frozenset({"support", "sales"})


def test_since_survives_a_change_that_keeps_the_state_and_follows_one_that_does_not() -> None:
    board = Board({"PJSIP/1001": "anna", "PJSIP/1101": "anna"})
    board.feed(dsc("PJSIP/1001", "NOT_INUSE"), 1001.0)
    assert board.state("anna") == ("available", 1001.0)
    board.feed(dsc("PJSIP/1101", "NOT_INUSE"), 1005.0)  # her second phone: still free
    assert board.state("anna") == ("available", 1001.0)
    board.feed(dsc("PJSIP/1101", "INUSE"), 1010.0)
    board.feed(dsc("PJSIP/1001", "INUSE"), 1012.0)  # both in use: on a call since 1010
    board.feed(dsc("PJSIP/1101", "NOT_INUSE"), 1020.0)
    assert board.state("anna") == ("on_call", 1010.0)
    board.feed(dsc("PJSIP/1001", "NOT_INUSE"), 1030.0)
    assert board.state("anna") == ("available", 1030.0)


def test_a_call_between_two_reads_is_not_missed() -> None:
    board = Board({"PJSIP/1001": "anna"})
    board.feed(dsc("PJSIP/1001", "NOT_INUSE"), 1001.0)
    assert board.state("anna") == ("available", 1001.0)
    board.feed(dsc("PJSIP/1001", "INUSE"), 1002.0)  # nobody reads now
    board.feed(dsc("PJSIP/1001", "NOT_INUSE"), 1009.0)
    assert board.state("anna") == ("available", 1009.0)  # not "since 1001"


def test_operators_come_and_go_with_the_device_map() -> None:
    board = Board({})
    board.feed(dsc("PJSIP/1001", "NOT_INUSE"), 1001.0)
    assert board.board.operator_states("main") == []  # a phone nobody has
    board.now = 1050.0
    board.board.set_operators({"PJSIP/1001": "anna", "PJSIP/1009": "zoe"}, 1050.0)
    # Zoe's phone was never heard of on this PBX: she is not on it.
    assert board.board.operator_states("main") == [
        OperatorState("anna", "available", frozenset(), datetime.fromtimestamp(1001.0, UTC))
    ]
    board.board.set_operators({"PJSIP/1001": "bart"}, 1060.0)
    assert [s.operator for s in board.board.operator_states("main")] == ["bart"]
    assert board.board.operator_states("other-pbx") == []


def test_the_free_device_is_the_one_to_ring() -> None:
    board = Board({"PJSIP/1001": "anna", "Local/1001@agents": "anna"})
    board.feed(dsc("PJSIP/1001", "UNAVAILABLE"), 1001.0)
    board.feed(status("support", "Local/1001@agents/n", "Local/1001@agents"), 1002.0)
    assert board.board.free_device("main", "anna") == "Local/1001@agents"
    board.feed(status("support", "Local/1001@agents/n", "Local/1001@agents", Paused="1"), 1003.0)
    assert board.board.free_device("main", "anna") is None  # paused everywhere
    assert board.board.free_device("main", "nobody") is None


def test_the_dialer_asks_the_free_operators_of_the_queue_longest_free_first() -> None:
    """Through the port, with the policy's own ``who_may_ring``: 10-agent-pause at #12
    (Bart paused in support), Anna free in both queues."""
    replay = MembersReplay("10-agent-pause.ami").seed().to(12)
    board: OperatorBoard = replay.board
    states = board.operator_states("main")
    assert {s.operator: s.state for s in states} == {"anna": "available", "bart": "available"}
    now = datetime.fromtimestamp(replay.at(12), UTC)
    policy = Policy(hours=((),) * 7, owner_grace_seconds=0)
    due = now - timedelta(minutes=1)
    support = Agreement(due=due, deadline=now + timedelta(hours=1), queue="support")
    sales = Agreement(due=due, deadline=now + timedelta(hours=1), queue="sales")
    assert who_may_ring(support, states, policy, now) == ("anna",)  # Bart: paused there
    replay.to(14)
    assert who_may_ring(sales, board.operator_states("main"), policy, now) == ("anna",)
    replay.to(19)  # both free again; Anna has been free the longest
    states = board.operator_states("main")
    assert who_may_ring(sales, states, policy, now) == ("anna", "bart")
    assert [s.since for s in states] == [
        datetime.fromtimestamp(replay.start, UTC),
        datetime.fromtimestamp(replay.at(17), UTC),  # free (in support) since #17
    ]


def test_the_board_reports_its_figures() -> None:
    board = Board({"PJSIP/1001": "anna"})
    board.feed(dsc("PJSIP/1001", "NOT_INUSE"), 1001.0)
    assert board.board.status() == {
        "pbx": {"main": {"members": 0, "devices": 1}},
        "operators": 1,
        "operators_loaded_at": 1000.0,
    }


def agent(event: str) -> Message:
    return Message(
        {
            "Event": event,
            "Queue": "support",
            "Interface": "PJSIP/1001",
            "MemberName": "Anna",
            "DestUniqueid": "7.1",
        }
    )


def test_a_kept_operator_is_computed_again_when_their_wrap_up_runs_out() -> None:
    board = Board({"PJSIP/1001": "anna"})
    board.feed(status("support", "PJSIP/1001", "PJSIP/1001", Wrapuptime="10"), 1001.0)
    for at, event in ((1002.0, "AgentCalled"), (1003.0, "AgentConnect"), (1005.0, "AgentComplete")):
        board.feed(agent(event), at)
    (before,) = board.board.operator_states("main")
    assert (before.state, before.since) == ("wrap_up", datetime.fromtimestamp(1005.0, UTC))
    board.now = 1014.9
    assert board.board.operator_states("main")[0].state == "wrap_up"
    board.now = 1015.0  # no event: only the clock moved
    (after,) = board.board.operator_states("main")
    assert (after.state, after.since) == ("available", datetime.fromtimestamp(1015.0, UTC))
    assert board.board.free_device("main", "anna") == "PJSIP/1001"
