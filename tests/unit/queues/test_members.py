"""Queue members and devices from recorded traces, at the README's message numbers.

Traces 01, 04, 10 and 12 were recorded without a ``QueueStatus`` of their own; they start
from the one of 11-restart-reconnect (same PBX: Anna and Bart in support and sales).
09-queue-status has its own, mid-call (``qstatus-1``).
"""

from __future__ import annotations

from collections import Counter

import pytest

from cti_bridge.ami.parser import Message
from cti_bridge.queues.members import (
    DEVICE_STATES,
    MEMBER_STATES,
    STATUS_NAMES,
    QueueMembers,
    least_available,
)
from tests.support.members_replay import MembersReplay

A_SUPPORT = ("support", "Local/1001@agents/n")
A_SALES = ("sales", "Local/1001@agents/n")
B_SUPPORT = ("support", "Local/1002@agents/n")
B_SALES = ("sales", "Local/1002@agents/n")


def seeded(name: str) -> MembersReplay:
    return MembersReplay(name).seed()


# -- 01: a queue call, ringall; Anna answers --------------------------------------------


@pytest.mark.parametrize(
    ("n", "anna", "bart"),
    [
        (52, "available", "available"),  # before the first AgentCalled
        (53, "available", "ringing"),  # AgentCalled Bart
        (67, "ringing", "ringing"),  # AgentCalled Anna
        (76, "on_call", "ringing"),  # Anna's device INUSE: she answers
        (89, "on_call", "available"),  # Bart's ring channel hangs up: cancelled
        (113, "on_call", "available"),  # AgentComplete; her device still INUSE
        (130, "available", "available"),  # her device NOT_INUSE: free again
    ],
)
def test_queue_answered_rings_both_and_anna_takes_it(n: int, anna: str, bart: str) -> None:
    replay = seeded("01-queue-answered.ami").to(n)
    assert replay.state(*A_SUPPORT) == anna
    assert replay.state(*B_SUPPORT) == bart
    assert (replay.operator("anna"), replay.operator("bart")) == (anna, bart)


def test_only_the_rung_membership_rings_and_the_other_follows_the_device() -> None:
    replay = seeded("01-queue-answered.ami").to(67)
    assert replay.state(*A_SALES) == "available"  # sales did not ring her
    replay.to(78)
    assert replay.state(*A_SALES) == "on_call"  # her device is in use for all queues


def test_the_state_since_is_the_instant_it_was_entered() -> None:
    replay = seeded("01-queue-answered.ami").to(100)
    views = {(v.queue, v.interface): v for v in replay.members.members(replay.at(100))}
    assert views[B_SUPPORT].since == replay.at(89)
    assert views[A_SUPPORT].since == replay.at(76)
    anna = replay.board.operator("main", "anna")
    assert anna is not None and anna.since == replay.at(76)


def test_one_queues_members_are_those_of_the_whole_view_in_that_queue() -> None:
    replay = seeded("01-queue-answered.ami").to(78)
    at = replay.at(78)
    every = replay.members.members(at)
    assert {v.queue for v in every} == {"support", "sales"}
    for queue in ("support", "sales"):
        assert replay.members.members_of_queue(queue, at) == [v for v in every if v.queue == queue]
    assert replay.members.members_of_queue("nobody-here", at) == []


# -- 04: a direct call to Anna, no queue events ------------------------------------------


@pytest.mark.parametrize(
    ("n", "support", "sales", "anna"),
    [
        (57, "available", "available", "available"),
        (58, "on_call", "on_call", "on_call"),  # DeviceStateChange INUSE
        (64, "on_call", "on_call", "on_call"),  # she answered (Newstate Up)
        # QueueMemberStatus support: Status 1; the device (newer than sales' Status 2)
        # still says INUSE for sales and for her own device.
        (101, "available", "on_call", "on_call"),
        (102, "available", "available", "available"),  # the device: NOT_INUSE
    ],
)
def test_a_direct_call_makes_anna_busy_in_every_queue(
    n: int, support: str, sales: str, anna: str
) -> None:
    replay = seeded("04-direct-call.ami").to(n)
    assert (replay.state(*A_SUPPORT), replay.state(*A_SALES)) == (support, sales)
    assert replay.operator("anna") == anna
    assert replay.operator("bart") == "available"


# -- 09: the trace's own QueueStatus, mid-call; Bart paused --------------------------------


def replay_09() -> MembersReplay:
    # Started at the first call's epoch, so the PBX's LastPause is in the past.
    return MembersReplay(
        "09-queue-status.ami", start=1_795_735_605.0, snapshots=frozenset({"qstatus-1"})
    )


def test_before_any_snapshot_an_agent_event_about_a_stranger_is_ignored() -> None:
    replay = replay_09().to(60)
    assert replay.states() == {}  # AgentCalled #54 named a member never seen
    assert replay.members.counts["unknown_member"] == 1
    replay.to(69)  # QueueMemberStatus carries the whole member: that one counts
    assert replay.states() == {A_SUPPORT: "on_call", A_SALES: "on_call"}


def test_the_snapshot_gives_every_member_and_bart_paused_since_his_last_pause() -> None:
    replay = replay_09().to(122)
    assert replay.states() == {
        A_SUPPORT: "on_call",  # InCall: 1
        A_SALES: "on_call",  # Status: 2
        B_SUPPORT: "paused",
        B_SALES: "paused",
    }
    views = {(v.queue, v.interface): v for v in replay.members.members(replay.at(122))}
    assert views[B_SUPPORT].paused_reason == "Opleiding"
    assert views[B_SUPPORT].since == 1_795_735_605.0  # LastPause, from the PBX
    assert views[A_SUPPORT].since == replay.at(122)  # on a call: from the snapshot on
    bart = replay.board.operator("main", "bart")
    assert bart is not None
    assert (bart.state, bart.paused_reason, bart.queues) == (
        "paused",
        "Opleiding",
        frozenset({"support", "sales"}),
    )


@pytest.mark.parametrize(
    ("n", "support", "anna"),
    [
        (175, "on_call", "on_call"),  # AgentComplete (Wrapuptime 0: no wrap-up)
        (194, "available", "on_call"),  # support's Status 1; sales and device: INUSE
        (195, "available", "available"),  # Local/1001@agents NOT_INUSE
    ],
)
def test_after_the_call_anna_is_free_again_and_bart_stays_paused(
    n: int, support: str, anna: str
) -> None:
    replay = replay_09().to(n)
    assert replay.state(*A_SUPPORT) == support
    assert replay.operator("anna") == anna
    assert replay.operator("bart") == "paused"


# -- 10: pauses, a dynamic member ---------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "states", "anna", "bart", "chris"),
    [
        (6, {A_SUPPORT: "paused"}, "available", "available", None),  # Lunchpauze
        (9, {}, "available", "available", None),
        (12, {B_SUPPORT: "paused"}, "available", "available", None),  # Coaching
        (14, {B_SUPPORT: "paused", B_SALES: "paused"}, "available", "paused", None),
        (17, {B_SALES: "paused"}, "available", "available", None),
        (21, {}, "available", "available", "available"),  # QueueMemberAdded Chris
        (26, {("support", "Local/1003@agents/n"): "paused"}, "available", "available", "paused"),
        (28, {}, "available", "available", None),  # QueueMemberRemoved
    ],
)
def test_pauses_and_a_dynamic_member(
    n: int, states: dict[tuple[str, str], str], anna: str, bart: str, chris: str | None
) -> None:
    replay = seeded("10-agent-pause.ami").to(n)
    seen = {key: state for key, state in replay.states().items() if state != "available"}
    assert seen == {key: s for key, s in states.items() if s != "available"}
    assert (replay.operator("anna"), replay.operator("bart"), replay.operator("chris")) == (
        anna,
        bart,
        chris,
    )


def test_a_pause_in_one_queue_leaves_the_other_queue_to_ring() -> None:
    replay = seeded("10-agent-pause.ami").to(6)
    anna = replay.board.operator("main", "anna")
    assert anna is not None and anna.queues == frozenset({"sales"})
    member = {(v.queue, v.interface): v for v in replay.members.members(replay.at(6))}
    assert (member[A_SUPPORT].paused_reason, member[A_SUPPORT].since) == (
        "Lunchpauze",
        replay.at(6),
    )
    replay.to(9)
    anna = replay.board.operator("main", "anna")
    assert anna is not None and anna.queues == frozenset({"support", "sales"})


def test_paused_everywhere_is_paused_with_its_reason_and_since() -> None:
    replay = seeded("10-agent-pause.ami").to(14)
    bart = replay.board.operator("main", "bart")
    assert bart is not None
    assert (bart.state, bart.paused_reason, bart.since) == ("paused", "Coaching", replay.at(14))
    replay.to(17)
    bart = replay.board.operator("main", "bart")
    assert bart is not None
    assert (bart.state, bart.since, bart.queues) == (
        "available",
        replay.at(17),
        frozenset({"support"}),
    )


def test_a_dynamic_member_keeps_its_penalty_and_membership() -> None:
    replay = seeded("10-agent-pause.ami").to(23)
    chris = [v for v in replay.members.members(replay.at(23)) if v.name == "Chris"]
    assert [(v.membership, v.penalty, v.device) for v in chris] == [
        ("dynamic", 2, "Local/1003@agents")
    ]


# -- 12: the burst ---------------------------------------------------------------------------


def test_the_burst_rings_connects_and_frees_everyone() -> None:
    replay = seeded("12-burst.ami")
    after: Counter[tuple[str, str, str]] = Counter()
    for n, msg in enumerate(replay.msgs, 1):
        replay.to(n)
        event = msg.get("Event")
        if event in ("AgentCalled", "AgentConnect"):
            state = replay.state(msg["Queue"], msg["Interface"])
            after[(event, msg["MemberName"], state or "")] += 1
    assert after[("AgentConnect", "Anna", "on_call")] == 12
    assert after[("AgentConnect", "Bart", "on_call")] == 12
    # A ring shows as ringing, never as free.
    rung = {state for (event, _, state) in after if event == "AgentCalled"}
    assert rung == {"ringing"}
    assert set(replay.states().values()) == {"available"}
    assert (replay.operator("anna"), replay.operator("bart")) == ("available", "available")
    assert replay.members.counts["unknown_member"] == 0


def test_a_ring_under_a_local_device_in_use_is_still_told_apart() -> None:
    """12-burst #3162: Anna's Local device says INUSE while the queue rings her."""
    replay = seeded("12-burst.ami").to(3163)
    view = {(v.queue, v.interface): v for v in replay.members.members(replay.at(3163))}
    assert (view[A_SUPPORT].state, view[A_SUPPORT].ringing) == ("on_call", True)
    replay.to(3197)  # AgentRingNoAnswer
    view = {(v.queue, v.interface): v for v in replay.members.members(replay.at(3197))}
    assert view[A_SUPPORT].ringing is False


# -- wrap-up -----------------------------------------------------------------------------------


def test_wrap_up_runs_from_agent_complete_and_ends_by_itself() -> None:
    # Asterisk 22 sends the queue's wrapuptime nowhere (every Wrapuptime in the traces
    # is the member's own, 0): cti-bridge is told it.
    members = QueueMembers("main", wrapup_seconds={"support": 30.0})
    replay = MembersReplay("01-queue-answered.ami", members=members).seed().to(129)
    done = replay.at(113)  # AgentComplete
    support = {(v.queue, v.interface): v for v in replay.members.members(replay.at(129))}
    assert support[A_SUPPORT].state == "on_call"  # the device is still in use
    replay.to(131)
    view = {(v.queue, v.interface): v for v in replay.members.members(replay.at(131))}
    assert (view[A_SUPPORT].state, view[A_SUPPORT].wrap_up_until) == ("wrap_up", done + 30)
    assert view[A_SALES].state == "available"  # her sales membership had no call
    assert replay.operator("anna") == "wrap_up"
    # No timer, no event: read later, the wrap-up is over at its own instant.
    later = done + 31
    view = {(v.queue, v.interface): v for v in replay.members.members(later)}
    assert (view[A_SUPPORT].state, view[A_SUPPORT].since) == ("available", done + 30)
    anna = replay.board.operator("main", "anna", at=later)
    assert anna is not None and (anna.state, anna.since) == ("available", done + 30)


def snapshot(*members: Message) -> list[Message]:
    """A QueueStatus list: each queue's QueueParams, then its members."""
    items: list[Message] = []
    for member in members:
        if not any(i["Queue"] == member["Queue"] for i in items):
            items.append(Message({"Event": "QueueParams", "Queue": member["Queue"]}))
        items.append(member)
    return items


def member_item(queue: str = "support", **fields: str) -> Message:
    base = {
        "Event": "QueueMember",
        "Queue": queue,
        "Name": "Anna",
        "Location": "Local/1001@agents/n",
        "StateInterface": "Local/1001@agents",
        "Membership": "static",
        "Status": "1",
        "Paused": "0",
        "InCall": "0",
        "Wrapuptime": "0",
    }
    return Message({**base, **fields})


def agent_event(event: str, uid: str = "9.1", queue: str = "support") -> Message:
    return Message(
        {
            "Event": event,
            "Queue": queue,
            "Interface": "Local/1001@agents/n",
            "MemberName": "Anna",
            "DestUniqueid": uid,
        }
    )


@pytest.mark.parametrize(
    ("member_wrapup", "queue_wrapup", "configured", "expected"),
    [
        ("20", None, None, 20.0),  # the member's own Wrapuptime
        ("0", "15", None, 15.0),  # else the queue's (if QueueParams says it)
        ("0", None, 45.0, 45.0),  # else what cti-bridge was told about the queue
        ("20", "15", 45.0, 20.0),  # the member's wins
        ("0", None, None, None),  # else none
    ],
)
def test_the_wrap_up_time_comes_from_the_member_the_queue_or_the_config(
    member_wrapup: str, queue_wrapup: str | None, configured: float | None, expected: float | None
) -> None:
    params = {"Event": "QueueParams", "Queue": "support"}
    if queue_wrapup is not None:
        params["Wrapuptime"] = queue_wrapup
    members = QueueMembers("main", wrapup_seconds={"support": configured} if configured else {})
    members.resync([Message(params), member_item(Wrapuptime=member_wrapup)], 100.0)
    assert members.sizes()["members"] == 1
    members.feed(agent_event("AgentCalled"), 101.0)
    members.feed(agent_event("AgentConnect"), 102.0)
    members.feed(agent_event("AgentComplete"), 110.0)
    (view,) = members.members(110.0)
    if expected is None:
        assert (view.state, view.wrap_up_until) == ("available", None)
    else:
        assert (view.state, view.wrap_up_until) == ("wrap_up", 110.0 + expected)
        (after,) = members.members(110.0 + expected)
        assert (after.state, after.since) == ("available", 110.0 + expected)


def test_an_event_after_the_wrap_up_ran_out_keeps_the_instant_it_ended() -> None:
    members = QueueMembers("main")
    members.resync(snapshot(member_item(Wrapuptime="10")), 100.0)
    for at, event in ((101.0, "AgentCalled"), (102.0, "AgentConnect"), (110.0, "AgentComplete")):
        members.feed(agent_event(event), at)
    # Nothing read in between: at 130 a status that changes nothing. The wrap-up ended
    # at 120, and she has been free since then, not since 130.
    members.feed(Message({**member_item(), **_status()}), 130.0)
    (view,) = members.members(130.0)
    assert (view.state, view.since) == ("available", 120.0)
    members.feed(Message({**member_item(Paused="1", PausedReason="Koffie"), **_status()}), 140.0)
    (view,) = members.members(141.0)
    assert (view.state, view.since, view.paused_reason) == ("paused", 140.0, "Koffie")


def _status() -> dict[str, str]:
    """The headers that make a snapshot item a live QueueMemberStatus."""
    return {"Event": "QueueMemberStatus", "Interface": "Local/1001@agents/n", "MemberName": "Anna"}


def test_a_late_agent_complete_does_not_end_the_next_call() -> None:
    """05-blind-transfer-redirect: AgentComplete comes long after the member's leg ended."""
    members = QueueMembers("main")
    members.resync(snapshot(member_item()), 100.0)
    members.feed(agent_event("AgentCalled", "1.1"), 101.0)
    members.feed(agent_event("AgentConnect", "1.1"), 102.0)
    members.feed(Message({"Event": "Hangup", "Uniqueid": "1.1"}), 110.0)
    members.feed(agent_event("AgentCalled", "2.1"), 111.0)
    members.feed(agent_event("AgentConnect", "2.1"), 112.0)
    members.feed(agent_event("AgentComplete", "1.1"), 120.0)  # the first call's
    (view,) = members.members(121.0)
    assert (view.state, view.since) == ("on_call", 112.0)


# -- the snapshot's trust, devices, link loss ------------------------------------------------


def test_member_items_after_a_queue_entry_are_forgeries_and_dropped() -> None:
    """13-hostile-callerid-crlf-injection: QueueEntry carries the caller's name raw, so a
    caller can make "list items" follow it. Asterisk lists a queue's members before its
    callers, and each queue once."""
    members = QueueMembers("main")
    items = [
        Message({"Event": "QueueParams", "Queue": "support"}),
        member_item(Status="2", InCall="1"),
        Message({"Event": "QueueEntry", "Queue": "support", "Position": "1"}),
        member_item(Status="1", InCall="0"),  # forged after the entry: "free"
        member_item(queue="sales"),  # forged outside any section of sales
        Message({"Event": "QueueParams", "Queue": "support"}),  # support listed again
        member_item(Status="1"),
    ]
    members.resync(items, 100.0)
    assert [(v.queue, v.state) for v in members.members(100.0)] == []  # support: twice
    assert members.counts["dropped_items"] == 4
    members.resync(items[:4], 200.0)
    assert [(v.queue, v.state) for v in members.members(200.0)] == [("support", "on_call")]


@pytest.mark.parametrize(("raw", "state"), sorted(DEVICE_STATES.items()))
def test_a_device_outside_any_queue_has_a_state_of_its_own(raw: str, state: str) -> None:
    members = QueueMembers("main")
    event = {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": raw}
    assert members.feed(Message(event), 5.0) == frozenset({"PJSIP/1001"})
    view = members.device("PJSIP/1001", 6.0)
    assert view is not None and (view.state, view.device_state, view.since) == (state, raw, 5.0)


@pytest.mark.parametrize(("status", "name"), sorted(STATUS_NAMES.items()))
def test_a_member_status_number_is_a_device_state(status: str, name: str) -> None:
    members = QueueMembers("main")
    members.resync(snapshot(member_item(Status=status)), 1.0)
    (view,) = members.members(1.0)
    assert (view.device_state, view.state) == (name, DEVICE_STATES[name])


def test_queue_lamps_and_trunks_are_not_devices_of_anyone() -> None:
    members = QueueMembers("main")
    for device in ("Queue:support", "Queue:support_pause_Local/1001@agents/n", "PJSIP/pstn"):
        change = {"Event": "DeviceStateChange", "Device": device, "State": "INUSE"}
        assert members.feed(Message(change), 1.0) == frozenset()
    assert members.sizes()["devices"] == 0


def test_the_device_memory_is_bounded_and_forgets_the_longest_silent() -> None:
    members = QueueMembers("main", max_devices=3)
    for n, device in enumerate(("PJSIP/1", "PJSIP/2", "PJSIP/3", "PJSIP/1", "PJSIP/4")):
        change = {"Event": "DeviceStateChange", "Device": device, "State": "NOT_INUSE"}
        members.feed(Message(change), float(n))
    assert [members.device(d, 9.0) is not None for d in ("PJSIP/1", "PJSIP/2", "PJSIP/4")] == [
        True,
        False,
        True,
    ]


def test_a_device_list_does_not_overwrite_a_newer_live_change() -> None:
    members = QueueMembers("main")
    live = {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "INUSE"}
    members.feed(Message(live), 10.0)  # after the list was asked at 9
    listed = [
        Message({"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "NOT_INUSE"}),
        Message({"Event": "DeviceStateChange", "Device": "PJSIP/1002", "State": "NOT_INUSE"}),
    ]
    assert members.listed_devices(listed, 9.0, 11.0) == frozenset({"PJSIP/1002"})
    views = [members.device(d, 11.0) for d in ("PJSIP/1001", "PJSIP/1002")]
    assert [v.state if v else None for v in views] == ["on_call", "available"]


@pytest.mark.parametrize("how", ["reset", "Shutdown"])
def test_link_loss_or_shutdown_forgets_everything(how: str) -> None:
    replay = seeded("01-queue-answered.ami").to(80)
    assert replay.board.operators("main") != []
    if how == "reset":
        touched = replay.members.reset(replay.at(81))
    else:
        touched = replay.members.feed(Message({"Event": "Shutdown", "Restart": "True"}), 81.0)
    replay.board.changed("main", touched, replay.at(81))
    assert "Local/1001@agents" in touched
    assert replay.members.members(replay.at(81)) == []
    assert replay.members.device("Local/1001@agents", replay.at(81)) is None
    assert replay.board.operator_states("main") == []
    # Later rings of the old link are of nobody now.
    assert replay.members.feed(agent_event("AgentConnect", "1795735383.334"), 82.0) == frozenset()


def test_the_states_and_their_order() -> None:
    assert set(MEMBER_STATES) == set(DEVICE_STATES.values()) | {"wrap_up", "paused"}
    assert least_available(["available", "paused", "wrap_up"]) == "wrap_up"
    assert least_available(["ringing", "on_call"]) == "on_call"
    assert least_available([]) == "unavailable"


def test_the_newer_word_counts_also_when_a_device_repeats_itself() -> None:
    members = QueueMembers("main")
    members.resync(snapshot(member_item()), 1.0)
    in_use = Message(
        {"Event": "DeviceStateChange", "Device": "Local/1001@agents", "State": "INUSE"}
    )
    assert members.feed(in_use, 2.0) == frozenset({"Local/1001@agents"})
    assert members.feed(in_use, 3.0) == frozenset()  # said again: nothing changes
    free = Message(
        {**member_item(), "Event": "QueueMemberStatus", "Interface": "Local/1001@agents/n"}
    )
    members.feed(free, 4.0)  # the member's Status 1 is newer than the device's INUSE
    assert [v.state for v in members.members(4.0)] == ["available"]
    members.feed(in_use, 5.0)  # the same word again, but newer than the member's now
    assert [(v.state, v.since) for v in members.members(5.0)] == [("on_call", 5.0)]


def test_a_member_whose_state_interface_changes_keeps_its_ring() -> None:
    members = QueueMembers("main")
    members.resync(snapshot(member_item()), 1.0)
    members.feed(agent_event("AgentCalled", "8.1"), 2.0)
    moved = {**member_item(), "Event": "QueueMemberStatus", "Interface": "Local/1001@agents/n"}
    moved["StateInterface"] = "PJSIP/1001"
    touched = members.feed(Message(moved), 3.0)
    assert touched == frozenset({"Local/1001@agents", "PJSIP/1001"})
    assert [(v.state_interface, v.state) for v in members.members(3.0)] == [
        ("PJSIP/1001", "ringing")
    ]
    members.feed(Message({"Event": "Hangup", "Uniqueid": "8.1"}), 4.0)  # the ring ends
    assert [v.state for v in members.members(4.0)] == ["available"]
    assert [v.queue for v in members.memberships("PJSIP/1001", 4.0)] == ["support"]
