"""The simulator's calls, fed to the real call model, come out as the calls we planned.

This is the end-to-end check of both sides: each scenario's AMI stream, stamped with
its arrival time on the simulated clock, goes through ``CallModel.feed``; the ended
``Call`` must say who answered, the outcome, the transfers and the wait/talk seconds
the plan asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.calls import CallModel
from cti_bridge.calls.events import Call, CallEnded, CallStarted, OperatorRinging
from cti_bridge.sim import Callee, Reply, SimulatedPBX
from cti_bridge.sim.harness import Link, run

SECRET = "model"
P1, P2, P3, L2 = "PJSIP/1001", "PJSIP/1002", "PJSIP/1003", "PJSIP/2001"
TOLERANCE = 0.3  # arrival times are those of the clock steps below


def simulate(
    act: Callable[[SimulatedPBX, Link], object], seconds: float = 200.0, seed: int = 3
) -> tuple[dict[str, Call], list[Any]]:
    clock = MemoryReactorClock()
    clock.advance(1_795_737_000)
    sim = SimulatedPBX(clock, seed=seed, secret=SECRET)
    link = Link.open(sim)
    link.login("cti", SECRET)
    act(sim, link)
    run(clock, seconds, step=0.05)
    model = CallModel("sim")
    events: list[Any] = []
    for msg, at in link.timed():
        if "Event" in msg:
            events.extend(model.feed(msg, at))
    assert model.live_calls == []
    assert model.rejected_events == 0
    ended = {e.call.linkedid: e.call for e in events if isinstance(e, CallEnded)}
    return ended, events


def only(ended: dict[str, Call]) -> Call:
    assert len(ended) == 1
    return next(iter(ended.values()))


def rings(call: Call) -> list[tuple[str, str | None]]:
    return [(r.device, r.result.value if r.result else None) for r in call.rings]


def test_queue_call_answered_by_the_chosen_operator() -> None:
    ended, events = simulate(
        lambda sim, _: sim.place_call(
            "queue_answered",
            caller=("050123456", "Jan Peeters"),
            operator=P1,
            ring=2,
            talk=11,
            ended_by="caller",
        )
    )
    call = only(ended)
    assert (call.outcome, call.answered_by, call.queue) == ("answered", P1, "support")
    assert (call.caller_number_raw, call.caller_name) == ("050123456", "Jan Peeters")
    assert call.hung_up_by == "caller"
    assert call.wait_seconds == pytest.approx(2.0, abs=TOLERANCE)
    assert call.talk_seconds == pytest.approx(11.0, abs=TOLERANCE)
    assert (P1, "answered") in rings(call)
    assert {r for d, r in rings(call) if d != P1} == {"cancelled"}
    pops = [e for e in events if isinstance(e, OperatorRinging)]
    assert len(pops) == 6  # every operator's phone rang: six pops
    assert isinstance(events[0], CallStarted)


def test_operator_ends_the_call() -> None:
    ended, _ = simulate(
        lambda sim, _: sim.place_call(
            "queue_answered", operator=P2, ring=3, talk=6, ended_by="operator"
        )
    )
    call = only(ended)
    assert (call.answered_by, call.hung_up_by) == (P2, "operator")
    assert call.wait_seconds == pytest.approx(3.0, abs=TOLERANCE)
    assert call.talk_seconds == pytest.approx(6.0, abs=TOLERANCE)


def test_abandoned_call() -> None:
    ended, _ = simulate(lambda sim, _: sim.place_call("queue_abandoned", patience=12))
    call = only(ended)
    assert (call.outcome, call.answered_by, call.queue_result) == ("abandoned", None, "abandoned")
    assert call.hung_up_by == "caller"
    assert call.wait_seconds == pytest.approx(12.0, abs=TOLERANCE)
    assert call.talk_seconds is None
    results = [r for _, r in rings(call)]
    assert results.count("no_answer") == 6  # round 1 rang out after 8 s
    assert results.count("cancelled") == 6  # round 2 ended by the caller


def test_queue_timeout_is_abandoned_with_its_own_queue_result() -> None:
    ended, _ = simulate(lambda sim, _: sim.place_call("queue_timeout"))
    call = only(ended)
    assert (call.outcome, call.queue_result) == ("abandoned", "timeout")
    assert call.wait_seconds == pytest.approx(60.0, abs=TOLERANCE)


def test_ring_no_answer_then_answered_by_the_next_operator() -> None:
    ended, _ = simulate(lambda sim, _: sim.place_call("ring_no_answer", queue="sales", talk=8))
    call = only(ended)
    assert (call.queue, call.answered_by, call.outcome) == ("sales", P2, "answered")
    assert rings(call) == [(P1, "no_answer"), (P2, "answered")]
    assert call.wait_seconds == pytest.approx(9.0, abs=TOLERANCE)
    assert call.talk_seconds == pytest.approx(8.0, abs=TOLERANCE)
    assert call.hung_up_by == "operator"


def test_busy_operator_then_answered() -> None:
    ended, _ = simulate(
        lambda sim, _: sim.place_call("busy_then_answered", busy=P1, answered_by=P2, talk=6)
    )
    call = only(ended)
    assert call.answered_by == P2
    assert (P1, "busy") in rings(call)


def test_direct_call_answered() -> None:
    ended, _ = simulate(
        lambda sim, _: sim.place_call(
            "direct_answered", caller=("003293456789", "Zoë Declercq"), operator=P2, ring=3, talk=12
        )
    )
    call = only(ended)
    assert (call.outcome, call.queue, call.answered_by) == ("answered", None, P2)
    assert (call.dialled, call.caller_name) == ("1002", "Zoë Declercq")
    assert call.wait_seconds == pytest.approx(3.0, abs=TOLERANCE)
    assert call.talk_seconds == pytest.approx(12.0, abs=TOLERANCE)
    assert rings(call) == [(P2, "answered")]


def test_direct_call_missed() -> None:
    ended, _ = simulate(lambda sim, _: sim.place_call("direct_missed", operator=P2))
    call = only(ended)
    assert (call.outcome, call.answered_by) == ("missed", None)
    assert rings(call) == [(P2, "no_answer")]
    assert call.wait_seconds == pytest.approx(20.0, abs=TOLERANCE)


def test_blind_transfer() -> None:
    def act(sim: SimulatedPBX, _: Link) -> None:
        sim.place_call("blind_transfer", operator=P1, after=5, talk=14, target_ring=3)

    call = only(simulate(act)[0])
    assert (call.outcome, call.answered_by) == ("transferred", P1)
    assert [(t.kind, t.from_device, t.to) for t in call.transfers] == [("blind", P1, L2)]
    assert call.ended_with == L2
    assert (L2, "answered") in rings(call)
    # talk runs from the first answer to the end of the call, both parts included
    assert call.talk_seconds == pytest.approx(5 + 3 + 14, abs=TOLERANCE)


def test_attended_transfer() -> None:
    def act(sim: SimulatedPBX, _: Link) -> None:
        sim.place_call("attended_transfer", operator=P1, after=4, talk=20, target_ring=2, consult=6)

    call = only(simulate(act)[0])
    assert (call.outcome, call.answered_by) == ("transferred", P1)
    assert [(t.kind, t.from_device, t.to) for t in call.transfers] == [("attended", P1, L2)]
    assert (L2, "answered") in rings(call)
    assert call.ended_with == L2
    assert call.hung_up_by == "caller"
    # operator 4 s, 2001 rings 2 s, consultation 6 s, then customer and 2001 talk 20 s
    assert call.talk_seconds == pytest.approx(4 + 2 + 6 + 20, abs=TOLERANCE)
    operator, target = call.segments
    assert (operator.device, target.device) == (P1, L2)
    assert call.answered_at is not None
    assert operator.ended_at == pytest.approx(call.answered_at + 12, abs=TOLERANCE)


def test_withheld_caller() -> None:
    ended, _ = simulate(lambda sim, _: sim.place_call("withheld", operator=P3, talk=4))
    call = only(ended)
    assert (call.caller_number_raw, call.caller_withheld) == ("anonymous", True)
    assert call.answered_by == P3


def originate(link: Link, number: str, action_id: str) -> None:
    link.send(
        "Originate",
        [
            ("ActionID", action_id),
            ("Channel", P1),
            ("Context", "callback"),
            ("Exten", number),
            ("Timeout", "15000"),
            ("CallerID", f'"Terugbelverzoek 42" <{number}>'),
            ("Variable", "CTI_AGREEMENT_ID=42"),
            ("Async", "true"),
        ],
    )


def test_callback_connected() -> None:
    def act(sim: SimulatedPBX, link: Link) -> None:
        sim.set_reply(P1, Reply.answer(2))
        sim.set_callee("050123456", Callee(Reply.answer(3), talk=10))
        originate(link, "050123456", "callback-42")

    call = only(simulate(act)[0])
    assert (call.direction, call.agreement_id, call.originate_action_id) == (
        "outbound",
        "42",
        "callback-42",
    )
    assert (call.outcome, call.answered_by, call.dialled) == ("answered", P1, "050123456")
    assert rings(call) == [(P1, "answered"), ("PJSIP/pstn", "answered")]
    assert call.hung_up_by == "caller"


def test_callback_customer_busy_is_failed() -> None:
    def act(sim: SimulatedPBX, link: Link) -> None:
        sim.set_reply(P1, Reply.answer(1))
        sim.set_callee("0478554433", Callee(Reply.busy(1)))
        originate(link, "0478554433", "callback-busy")

    call = only(simulate(act)[0])
    assert (call.outcome, call.answered_by) == ("failed", None)
    assert rings(call) == [(P1, "answered"), ("PJSIP/pstn", "busy")]


def test_callback_operator_does_not_answer() -> None:
    def act(sim: SimulatedPBX, link: Link) -> None:
        sim.set_reply(P1, Reply.noanswer())
        originate(link, "0470123456", "callback-noanswer")

    call = only(simulate(act)[0])
    assert (call.outcome, call.hangup_cause) == ("failed", 19)
    assert rings(call) == [(P1, "no_answer")]


def test_an_hour_of_traffic_through_the_model() -> None:
    """Every generated call ends in the model with an outcome and no rejected event."""

    def act(sim: SimulatedPBX, _: Link) -> None:
        sim.start_traffic(calls_per_minute=5)
        sim.reactor.callLater(3600, sim.stop_traffic)

    ended, _ = simulate(act, seconds=3600 + 900, seed=17)
    assert len(ended) > 200
    outcomes = {call.outcome for call in ended.values()}
    assert {"answered", "abandoned", "missed", "transferred"} <= outcomes
    for call in ended.values():
        assert call.outcome is not None
        if call.outcome in ("answered", "transferred"):
            assert call.answered_by is not None
            assert call.talk_seconds is not None
