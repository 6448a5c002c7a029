"""The queues' waiting callers from the recorded traces: joins, leaves, abandons, the
snapshot (also a forged one) and a resync in the middle of the burst."""

from __future__ import annotations

from collections.abc import Mapping

from cti_bridge.ami.parser import Message
from cti_bridge.queues.callers import QueueCallers
from tests.support.calls_facts import messages

START = 1_795_735_000.0
_ITEMS = frozenset({"QueueParams", "QueueMember", "QueueEntry"})


def replay(
    name: str, callers: QueueCallers | None = None, upto: int | None = None, first: int = 1
) -> QueueCallers:
    """Feed trace messages #first..#upto (message #n at START + n); a QueueStatus answer
    is a snapshot at its QueueStatusComplete. After every Join/Leave the list must count
    what Asterisk's ``Count`` says."""
    callers = callers or QueueCallers("main")
    msgs = messages(name)
    items: list[Message] = []
    for number in range(first, (upto or len(msgs)) + 1):
        msg, at = msgs[number - 1], START + number
        event = msg.get("Event")
        if msg.get("ActionID") is not None:
            if event in _ITEMS:
                items.append(msg)
            elif event == "QueueStatusComplete":
                callers.resync(items, at)
                items = []
            continue
        if event is None:
            continue
        callers.feed(msg, at)
        if event in ("QueueCallerJoin", "QueueCallerLeave"):
            waiting = callers.waiting(msg["Queue"])
            assert len(waiting) == int(msg["Count"]), (name, number)
            assert [c.position for c in waiting] == list(range(1, len(waiting) + 1))
    return callers


def numbered(name: str, event: str) -> list[int]:
    return [n for n, m in enumerate(messages(name), 1) if m.get("Event") == event]


def test_a_queue_call_waits_from_its_join_until_it_is_answered() -> None:
    (join,) = numbered("01-queue-answered.ami", "QueueCallerJoin")
    (leave,) = numbered("01-queue-answered.ami", "QueueCallerLeave")
    callers = replay("01-queue-answered.ami", upto=join)
    (caller,) = callers.waiting("support")
    assert (caller.position, caller.linkedid, caller.caller_number) == (
        1,
        "1795735383.330",
        "+3250123456",
    )
    assert caller.joined_at == START + join
    replay("01-queue-answered.ami", callers, upto=leave, first=join + 1)
    assert callers.waiting("support") == []


def test_an_abandoned_caller_is_gone_at_the_abandon() -> None:
    (abandon,) = numbered("02-queue-abandoned.ami", "QueueCallerAbandon")
    callers = replay("02-queue-abandoned.ami", upto=abandon - 1)
    assert len(callers.waiting("support")) == 1
    replay("02-queue-abandoned.ami", callers, upto=abandon, first=abandon)
    assert callers.waiting("support") == []
    replay("02-queue-abandoned.ami", callers, first=abandon + 1)  # the Leave after it
    assert callers.counts["unknown_caller"] == 1


def test_the_snapshot_lists_a_waiting_caller_with_its_wait() -> None:
    complete = numbered("09-queue-status.ami", "QueueStatusComplete")[0]
    callers = replay("09-queue-status.ami", upto=complete)
    (caller,) = callers.waiting("support")
    assert (caller.uniqueid, caller.caller_number) == ("1795735608.400", "011223344")
    assert caller.joined_at == START + complete - 3  # Wait: 3
    assert callers.queues() == ["sales", "support"]
    replay("09-queue-status.ami", callers, first=complete + 1)
    assert callers.waiting("support") == []


def test_forged_entries_after_a_hostile_caller_name_are_dropped() -> None:
    callers = replay("13-hostile-callerid-crlf-injection.ami")
    assert callers.waiting("support") == []
    forged = QueueCallers("main")
    items: list[Mapping[str, str]] = [
        {"Event": "QueueParams", "Queue": "support", "Calls": "1"},
        {
            "Event": "QueueEntry",
            "Queue": "support",
            "Position": "1",
            "Uniqueid": "1.1",
            "CallerIDNum": "+3250123456",
            "Wait": "4",
        },
        # what a caller name with CRLFs could make follow it:
        {
            "Event": "QueueEntry",
            "Queue": "support",
            "Position": "2",
            "Uniqueid": "6.6",
            "CallerIDNum": "+3299999999",
            "Wait": "900",
        },
        {"Event": "QueueEntry", "Queue": "sales", "Position": "1", "Uniqueid": "7.7"},
        {"Event": "QueueParams", "Queue": "sales", "Calls": "0"},
    ]
    forged.resync(items, START)
    assert [c.uniqueid for c in forged.waiting("support")] == ["1.1"]
    assert forged.waiting("sales") == []
    assert forged.counts["dropped_items"] == 2


def test_positions_move_up_when_a_caller_ahead_leaves() -> None:
    callers = QueueCallers("main")
    for n in (1, 2, 3):
        callers.feed(
            {
                "Event": "QueueCallerJoin",
                "Queue": "q",
                "Uniqueid": f"{n}.0",
                "Position": str(n),
                "Count": str(n),
                "CallerIDNum": "100",
            },
            START + n,
        )
    callers.feed({"Event": "QueueCallerLeave", "Queue": "q", "Uniqueid": "1.0"}, START + 9)
    assert [(c.uniqueid, c.position) for c in callers.waiting("q")] == [("2.0", 1), ("3.0", 2)]
    # a caller with a higher priority joins ahead
    callers.feed(
        {"Event": "QueueCallerJoin", "Queue": "q", "Uniqueid": "4.0", "Position": "1"}, START + 10
    )
    assert [c.uniqueid for c in callers.waiting("q")] == ["4.0", "2.0", "3.0"]
    assert callers.reset(START + 11) == frozenset({"q"})
    assert callers.waiting("q") == []


def test_the_burst_ends_with_nobody_waiting_and_a_resync_mid_burst_changes_nothing() -> None:
    name = "12-burst.ami"
    total = len(messages(name))
    whole = replay(name)
    assert all(whole.waiting(q) == [] for q in whole.queues())
    assert whole.counts["events"] > 0
    # Cut the burst where the most callers wait; the other side resyncs from a QueueStatus
    # that lists what was waiting then (what Asterisk would answer), and both go on equal.
    joins = numbered(name, "QueueCallerJoin")
    cut = joins[len(joins) // 2]
    before = replay(name, upto=cut)
    waiting = {q: before.waiting(q) for q in before.queues()}
    assert sum(len(w) for w in waiting.values()) >= 2
    at = START + cut
    items: list[Mapping[str, str]] = []
    for queue, callers in waiting.items():
        items.append({"Event": "QueueParams", "Queue": queue, "Calls": str(len(callers))})
        items += [
            {
                "Event": "QueueEntry",
                "Queue": queue,
                "Position": str(c.position),
                "Uniqueid": c.uniqueid,
                "Channel": c.channel,
                "CallerIDNum": c.caller_number,
                "Wait": str(int(at - c.joined_at)),
            }
            for c in callers
        ]
    resynced = QueueCallers("main")
    resynced.feed(messages(name)[0], at)  # nothing: not a caller event
    resynced.reset(at)  # the link was lost...
    resynced.resync(items, at)  # ...and came back with the snapshot
    for step in range(cut + 1, total + 1, 997):
        replay(name, before, upto=min(step + 996, total), first=step)
        replay(name, resynced, upto=min(step + 996, total), first=step)
        for queue in before.queues():
            assert [(c.uniqueid, c.position, c.joined_at) for c in before.waiting(queue)] == [
                (c.uniqueid, c.position, c.joined_at) for c in resynced.waiting(queue)
            ]
