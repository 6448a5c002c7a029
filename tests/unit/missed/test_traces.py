"""Recorded traces through the call model into the room, as the daemon wires it:
``install(node)`` on a node over the memory store, the trace fed to the PBX link's
pipeline. The numbers expected are read off the trace README (the shared
``ami-traces/README.md`` lists every burst caller's number, outcome and wait).

The plain traces are replayed one second per message, so their waits say nothing; the
``timestamped/`` copies carry Asterisk's own times, and their thresholds are stated in
real seconds. In the burst every 4th caller (08, 12, ..., 40) hangs up: in the timestamped
recording 08, 16, 24, 32 and 40 after 12.5 s, 12, 20, 28 and 36 after 8.5 s; the queue's
60 s timeout puts out 31, 33-35 and 37-39 (plain recording) or 33-35 and 37-39
(timestamped: 31 was answered at the timeout instant).
"""

from __future__ import annotations

from typing import Any

import pytest

from cti_bridge.missed import install
from cti_bridge.missed.service import MissedCallService
from cti_bridge.store.memory import MemoryStore
from cti_bridge.testing.store import START
from tests.support.calls_facts import messages

from .support import MemoryNode, memory_node

#: The burst's callers who gave up or were timed out, by burst number (README).
HUNG_UP_12_S = {8: "+3250440077", 16: "+32471120105", 24: "+3292300391", 32: "+32472340403",
                40: "+32485500741"}  # fmt: skip
HUNG_UP_8_S = {12: "+32472340143", 20: "+32485500361", 28: "+3250440297", 36: "+32471120245"}
TIMED_OUT = {33: "+3250440352", 34: "+3292300561", 35: "+32485500646", 37: "+32472340468",
             38: "+3250440407", 39: "+3292300646"}  # fmt: skip
TIMED_OUT_PLAIN = {31: "+32471120210", **TIMED_OUT}
#: Four business hours from Friday 00:23 or 00:41 in Brussels (the traces were recorded
#: on Thursday 26 November 2026 after 23:00 UTC): Friday 08:00-12:00 local.
DEADLINE = "2026-11-27T11:00:00.000Z"


def room(store: MemoryStore | None = None, **missed_calls: Any) -> MemoryNode:
    fakes = memory_node({"enabled": True, **missed_calls}, store=store)
    install(fakes.node)
    return fakes


def play(fakes: MemoryNode, trace: str, start: float = START) -> None:
    for i, msg in enumerate(messages(trace)):
        fakes.pipeline.ami_event(msg, start + i)


def callbacks(fakes: MemoryNode) -> dict[str, dict[str, Any]]:
    """The missed-call agreements by number."""
    found = fakes.store.agreements.list_agreements(limit=1000)
    made = {a["callback_number"]: a for a in found if a["origin"] == "missed_call"}
    assert len(made) == len([a for a in found if a["origin"] == "missed_call"])
    return made


def test_the_burst_leaves_a_callback_per_caller_who_gave_up() -> None:
    fakes = room(min_wait_seconds=0)
    play(fakes, "12-burst.ami")
    made = callbacks(fakes)
    expected = {**HUNG_UP_12_S, **HUNG_UP_8_S, **TIMED_OUT_PLAIN}  # all 9 + 7
    assert sorted(made) == sorted(expected.values())
    assert {a["status"] for a in made.values()} == {"open"}
    assert {a["queue"] for a in made.values()} == {"support"}
    assert {a["deadline"] for a in made.values()} == {DEADLINE}
    assert {a["due_at"] == a["next_attempt_at"] for a in made.values()} == {True}
    service = fakes.node.part("missed", MissedCallService)
    # 24 answered callers, none of whom had a promise open: nothing resolved.
    assert service.counts()["created"] == 16 and service.counts()["resolved"] == 0


@pytest.mark.parametrize(
    ("min_wait", "expected"),
    [
        (0, {**HUNG_UP_12_S, **HUNG_UP_8_S, **TIMED_OUT}),
        (10, {**HUNG_UP_12_S, **TIMED_OUT}),
        (30, TIMED_OUT),
        (61, {}),
    ],
)
def test_the_timestamped_burst_by_real_waits(min_wait: float, expected: dict[int, str]) -> None:
    fakes = room(min_wait_seconds=min_wait)
    play(fakes, "timestamped/12-burst.ami", start=0.0)
    assert sorted(callbacks(fakes)) == sorted(expected.values())


def test_a_replayed_burst_changes_nothing() -> None:
    fakes = room(min_wait_seconds=0)
    play(fakes, "12-burst.ami")
    before = callbacks(fakes)
    again = room(min_wait_seconds=0, store=fakes.store)  # another node, or a restart
    play(again, "12-burst.ami", start=START + 10_000)
    assert callbacks(fakes) == before
    assert again.node.part("missed", MissedCallService).counts()["unchanged"] == 16


def test_a_known_caller_gets_their_customer_and_a_queue_can_be_off() -> None:
    fakes = room(min_wait_seconds=0)
    owner = fakes.store.customers.add_customer("Burst 08", numbers=["+32 50 44 00 77"])
    play(fakes, "12-burst.ami")
    made = callbacks(fakes)
    assert made["+3250440077"]["customer_id"] == owner
    assert {a["customer_id"] for n, a in made.items() if n != "+3250440077"} == {None}

    off = room(queues={"support": {"enabled": False}, "sales": {"enabled": True}})
    play(off, "12-burst.ami")
    assert callbacks(off) == {}


@pytest.mark.parametrize(("min_wait", "made"), [(5, True), (10, False)])
def test_marie_waited_six_and_a_half_seconds(min_wait: float, made: bool) -> None:
    """timestamped/02: 050123456 "Marie Dubois" abandons support after 6.508 s."""
    fakes = room(min_wait_seconds=min_wait)
    play(fakes, "timestamped/02-queue-abandoned.ami")
    assert sorted(callbacks(fakes)) == (["+3250123456"] if made else [])


def test_the_same_number_answered_later_keeps_the_promise() -> None:
    """Trace 01's caller, +3250123456 "Jan Peeters", is trace 02's number: played after
    02, that answered call closes the callback 02 left."""
    fakes = room(min_wait_seconds=30)
    play(fakes, "02-queue-abandoned.ami")  # waits 86 messages: past 30
    (made,) = callbacks(fakes).values()
    assert made["status"] == "open" and made["due_at"] is not None
    play(fakes, "01-queue-answered.ami", start=START + 3600)
    kept = fakes.store.agreements.get_agreement(made["id"])
    assert kept is not None
    assert (kept["status"], kept["disposition"]) == ("done", "solved_on_inbound_call")
    assert [e["kind"] for e in kept["history"]] == ["created", "resolved_by_call"]
    assert kept["history"][-1]["details"]["linkedid"] == "1795735383.330"


def test_an_answer_from_before_the_abandon_keeps_nothing() -> None:
    """The timestamped recordings keep their own times: 01 was answered at 23:38:25,
    02 abandoned at 23:38:47 (UTC). Played in the wrong order (a replay), 01 closes nothing."""
    fakes = room(min_wait_seconds=5)
    play(fakes, "timestamped/02-queue-abandoned.ami")
    play(fakes, "timestamped/01-queue-answered.ami", start=START + 3600)
    (made,) = callbacks(fakes).values()
    assert made["status"] == "open"
