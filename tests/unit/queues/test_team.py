# mypy: disallow-untyped-calls=False
"""What the console's Team view and an operator's own screen read: the pause reasons
(anyone logged in), one agent (``GET /api/agents/{operator}``: the operator themselves or
a supervisor), the agent's ``current_call`` from the call model's events, and the
``agent_update`` on the operator's own topic as well as the supervisors'."""

from __future__ import annotations

import json
from typing import Any

from cti_bridge.bus.topics import operator_topic
from cti_bridge.calls.events import Outcome, RingResult, TransferKind
from cti_bridge.queues.current import CurrentCalls
from cti_bridge.queues.live import iso
from cti_bridge.testing.store import START, CallBuilder
from tests.unit.queues.test_live import LiveRig, connected

ANNA = "Local/1001@agents"
BART = "Local/1002@agents"


def feed(rig: LiveRig, builder: CallBuilder) -> None:
    """The call model's events, as its pipeline hands them to every consumer."""
    rig.node.pipelines["main"]._dispatch(builder.events)
    builder.events.clear()


def own_topic(rig: LiveRig, operator_id: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    rig.node.bus.subscribe(
        operator_topic(operator_id),
        lambda m: got.append(json.loads(m) if isinstance(m, (str, bytes)) else m),
    )
    return got


def quiet(rig: LiveRig) -> None:
    rig.reactor.advance(1)  # the resync's own pushes go out (at its end)...
    rig.reactor.advance(1)  # ...and their interval is over
    rig.pushes.clear()


def test_the_pause_reasons_are_for_anyone_logged_in() -> None:
    rig, _pbx = connected()
    reasons = {"reasons": ["break", "lunch", "training", "back office"]}
    assert rig.ask("GET", "/api/queues/pause-reasons", token="t-anna") == (200, reasons)
    assert rig.ask("GET", "/api/queues/pause-reasons") == (200, reasons)
    assert rig.ask("GET", "/api/queues/pause-reasons", token="t-nobody")[0] == 401


def test_one_agent_is_for_themselves_or_a_supervisor() -> None:
    rig, _pbx = connected()
    code, anna = rig.ask("GET", "/api/agents/anna", token="t-anna")
    assert code == 200 and anna == rig.agent("anna")
    assert (anna["operator"], anna["state"], anna["current_call"]) == ("anna", "available", None)
    assert rig.ask("GET", "/api/agents/anna")[0] == 200  # sofie, a supervisor
    code, body = rig.ask("GET", "/api/agents/bart", token="t-anna")
    assert code == 403 and "themselves or a supervisor" in body["error"]
    assert rig.ask("GET", "/api/agents/nobody")[0] == 404
    assert rig.ask("GET", "/api/agents/gone")[0] == 404  # not an active account
    assert rig.ask("GET", "/api/agents/anna", token="t-nobody")[0] == 401


def test_the_agent_shows_the_call_it_rings_for_then_talks_on() -> None:
    rig, _pbx = connected()
    call = CallBuilder("1795735383.330", number="050123456", name="<b>Jan</b>")
    feed(rig, call.join_queue("support", START + 1).ring(ANNA, START + 2, queue="support"))
    current = rig.agent("anna")["current_call"]
    assert current == {
        "pbx": "main",
        "linkedid": "1795735383.330",
        "direction": "inbound",
        "state": "ringing",
        "since": iso(START + 2),
        "caller_number": "+3250123456",
        "caller_number_raw": "050123456",
        "caller_name": "<b>Jan</b>",
        "caller_withheld": False,
        "queue": "support",
        "agreement_id": None,
    }
    assert rig.agent("bart")["current_call"] is None
    feed(rig, call.answer(ANNA, START + 5))
    current = rig.agent("anna")["current_call"]
    assert (current["state"], current["since"]) == ("talking", iso(START + 5))
    feed(rig, call.end(START + 60, Outcome.ANSWERED))
    assert rig.agent("anna")["current_call"] is None


def test_a_withheld_caller_has_no_number() -> None:
    rig, _pbx = connected()
    call = CallBuilder("9.1", number="anonymous", name=None, withheld=True)
    feed(rig, call.ring(BART, START + 1))
    current = rig.agent("bart")["current_call"]
    assert current["caller_number"] is None and current["caller_withheld"] is True


def test_a_new_current_call_is_pushed_to_the_operator_and_the_supervisors() -> None:
    rig, _pbx = connected()
    quiet(rig)
    anna, bart = own_topic(rig, 1), own_topic(rig, 2)
    feed(rig, CallBuilder("7.1").ring(ANNA, START + 2))
    updates = rig.pushed("agent_update")
    assert [(a["operator"], a["current_call"]["state"]) for a in updates] == [("anna", "ringing")]
    assert [m["agent"]["current_call"]["linkedid"] for m in anna] == ["7.1"]
    assert bart == []  # never another operator's state


def test_the_operator_gets_their_own_agent_update() -> None:
    rig, pbx = connected()
    quiet(rig)
    anna, bart = own_topic(rig, 1), own_topic(rig, 2)
    pbx.send(
        "Event: QueueMemberPause\r\nQueue: support\r\nMemberName: Anna\r\n"
        "Interface: Local/1001@agents/n\r\nStateInterface: Local/1001@agents\r\n"
        "Membership: static\r\nPenalty: 0\r\nCallsTaken: 0\r\nStatus: 1\r\n"
        "Paused: 1\r\nPausedReason: lunch\r\n\r\n"
    )
    pbx.send(
        "Event: QueueMemberPause\r\nQueue: sales\r\nMemberName: Anna\r\n"
        "Interface: Local/1001@agents/n\r\nStateInterface: Local/1001@agents\r\n"
        "Membership: static\r\nPenalty: 0\r\nCallsTaken: 0\r\nStatus: 1\r\n"
        "Paused: 1\r\nPausedReason: lunch\r\n\r\n"
    )
    rig.reactor.advance(0.5)
    assert anna and anna[-1]["type"] == "agent_update"
    assert (anna[-1]["agent"]["state"], anna[-1]["agent"]["paused_reason"]) == ("paused", "lunch")
    assert bart == []


def play(current: CurrentCalls, builder: CallBuilder) -> None:
    for event in builder.events:
        current.feed(event)
    builder.events.clear()


def test_current_calls_follow_a_transfer_and_prefer_the_call_talked_on() -> None:
    told: list[tuple[str, frozenset[str]]] = []
    current = CurrentCalls()
    current.changed.append(lambda pbx, devices: told.append((pbx, devices)))
    first = CallBuilder("1.1").ring(ANNA, START + 1)
    play(current, first.answer(ANNA, START + 2))
    assert told[-1] == ("main", frozenset({ANNA}))
    second = CallBuilder("2.2", number="092345678")
    play(current, second.ring(ANNA, START + 3))  # a second call rings while she talks
    found = current.of_devices([ANNA])
    assert found is not None and (found.call.linkedid, found.state) == ("1.1", "talking")
    play(current, second.ring_end(ANNA, START + 4, RingResult.NO_ANSWER))
    found = current.of_devices([ANNA])
    assert found is not None and found.call.linkedid == "1.1"  # its ring's end is no hang-up
    first.transfer(TransferKind.BLIND, START + 5, ANNA, BART).leave(ANNA, START + 6)
    play(current, first.ring(BART, START + 6).answer(BART, START + 7))
    assert current.of_devices([ANNA]) is None
    moved = current.of_devices([BART, ANNA])
    assert moved is not None and (moved.call.linkedid, moved.state) == ("1.1", "talking")
    play(current, first.end(START + 30, Outcome.TRANSFERRED))
    assert current.of_devices([BART]) is None and len(current) == 0
    assert told[-1] == ("main", frozenset({BART}))
