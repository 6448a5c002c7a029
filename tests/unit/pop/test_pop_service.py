"""The pop engine on a fake reactor: slow databases, replay at connect, the device
directory, a failing database, and isolation down to the WebSocket hub's sockets."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from cti_bridge.calls.events import (
    Direction,
    OperatorRinging,
    Outcome,
    Ring,
    RingResult,
    TransferKind,
)
from cti_bridge.pop import ContextRequest, OperatorRef, PopService
from cti_bridge.queues.screens import add_supervisor_screens
from cti_bridge.testing.store import START, CallBuilder, queue_call_answered
from cti_bridge.web.auth import Principal
from cti_bridge.web.ws import Hub, ScreenSocket
from tests.support.pop_helpers import (
    OPERATORS,
    HeldRunner,
    RecordingBus,
    directory,
    fake_context,
    now_runner,
    pop_rig,
)

ANNA, BART, CHRIS = "Local/1001@agents", "Local/1002@agents", "Local/1003@agents"


def ringing_both(linkedid: str = "1.1") -> CallBuilder:
    return (
        CallBuilder(linkedid)
        .join_queue("support", START + 0.5)
        .ring(BART, START + 0.6, queue="support")
        .ring(ANNA, START + 0.7, queue="support")
    )


# -- a slow database ------------------------------------------------------------------


def test_nothing_is_published_before_the_context_and_it_is_built_once() -> None:
    runner = HeldRunner()
    rig = pop_rig(runner=runner)
    runner.release_all()  # the directory
    rig.feed(ringing_both().events)
    assert rig.bus.log == []
    assert len(runner.held) == 1  # one build for both rings
    runner.release_all()
    rig.deliver()
    assert rig.bus.kinds("anna") == ["screen_pop"]
    assert rig.bus.kinds("bart") == ["screen_pop"]
    assert len(rig.builds) == 1


def test_builds_and_late_call_ids_run_in_their_own_pool() -> None:
    shared, builds = HeldRunner(), HeldRunner()

    def busy_lock(request: ContextRequest) -> dict[str, Any]:
        return {**fake_context(request), "call_id": None, "call_id_pending": True}

    clock = Clock()
    bus = RecordingBus(clock)
    service = PopService(
        clock, bus, shared, busy_lock, directory, call_id=lambda r: 7, build_in=builds
    )
    service.start()
    assert (len(shared.held), len(builds.held)) == (1, 0)  # the directory: shared pool
    shared.release_all()
    for event in ringing_both("2.1").events:
        service.handle(event)
    # The shared pool is stuck (API requests, token checks): the ring does not wait on it.
    assert (len(shared.held), len(builds.held)) == (0, 1)
    assert builds.release_all() == 2  # the context, then the late call id, both there
    clock.advance(0)
    assert bus.kinds("anna") == ["screen_pop"] and shared.held == []


def test_a_slow_context_shows_the_state_at_publish_time() -> None:
    runner = HeldRunner()
    rig = pop_rig(runner=runner)
    runner.release_all()
    call = queue_call_answered("2.1")
    answered_at = call.events.index(
        next(e for e in call.events if type(e).__name__ == "CallAnswered")
    )
    rig.feed(call.events[: answered_at + 3])  # rings, Anna answers, Bart's ring is cancelled
    assert rig.bus.log == []
    runner.release_all()
    rig.deliver()
    anna = rig.bus.to("anna")
    assert [(m["type"], m["state"]) for m in anna] == [("screen_pop", "answered")]
    assert anna[0]["answered_by"] == "anna"
    assert rig.bus.to("bart") == []  # his ring ended before anything was on screen
    rig.feed(call.events[answered_at + 3 :])
    assert rig.bus.kinds("anna") == ["screen_pop", "call_update"]
    assert rig.bus.to("anna")[-1]["state"] == "ended"
    assert rig.bus.to("bart") == []


def test_a_call_that_ends_before_its_context_pops_nobody() -> None:
    runner = HeldRunner()
    rig = pop_rig(runner=runner)
    runner.release_all()
    rig.feed(ringing_both().end(START + 2, Outcome.ABANDONED).events)
    runner.release_all()
    rig.deliver()
    assert rig.bus.log == []
    assert rig.service.core.calls() == 0


# -- replay at connect --------------------------------------------------------------------


def test_replay_sends_only_that_operators_live_pops() -> None:
    rig = pop_rig()
    call = ringing_both("3.1")
    rig.feed(call.events)
    other = CallBuilder("3.2", number="+3293456789", name="Bakkerij").ring(CHRIS, START + 1)
    rig.feed(other.events)
    rig.bus.log.clear()
    rig.bus.publish("pop.replay", {"operator_id": OPERATORS["anna"][0]})
    rig.deliver()
    replayed = [(t, m) for t, m in rig.bus.log if t != "pop.replay"]
    assert [(t, m["type"], m["linkedid"], m["replay"]) for t, m in replayed] == [
        ("operator.1", "screen_pop", "3.1", True)
    ]
    # After Anna answers, Bart's pop is withdrawn: his replay is empty, Anna's still shows it.
    rig.feed(
        call.answer(ANNA, START + 3).ring_end(BART, START + 3, RingResult.CANCELLED).events[-3:]
    )
    rig.bus.log.clear()
    for name in ("anna", "bart", "eve"):
        rig.bus.publish("pop.replay", {"operator_id": OPERATORS[name][0]})
    rig.deliver()
    replayed = [(t, m) for t, m in rig.bus.log if t != "pop.replay"]
    assert [(t, m["state"]) for t, m in replayed] == [("operator.1", "answered")]


def test_replay_ignores_malformed_requests() -> None:
    rig = pop_rig()
    rig.feed(ringing_both("4.1").events)
    rig.bus.log.clear()
    for bogus in ({}, {"operator_id": "1"}, {"operator_id": True}, {"operator_id": None}):
        rig.bus.publish("pop.replay", bogus)
    rig.deliver()
    assert [t for t, _ in rig.bus.log] == ["pop.replay"] * 4


# -- the device directory -------------------------------------------------------------------


def test_a_device_bound_while_it_rings_gets_the_pop_after_the_refresh() -> None:
    bound: dict[str, OperatorRef] = {}
    loads: list[int] = []

    def load() -> dict[str, OperatorRef]:
        loads.append(1)
        return dict(bound)

    rig = pop_rig(devices=load)
    assert len(loads) == 1  # at start
    rig.clock.advance(10)
    bound[ANNA] = OperatorRef(1, "anna")
    rig.feed(CallBuilder("5.1").ring(ANNA, START + 1).events)
    assert len(loads) == 2  # the miss refreshed the directory
    assert rig.bus.kinds("anna") == ["screen_pop"]
    # A device nobody has (the customer's leg of a callback) does not reload every time.
    for i in range(5):
        rig.feed(CallBuilder(f"5.{i + 2}").ring("Local/0470123456@pstn-out", START + 2).events)
    assert len(loads) == 2
    rig.clock.advance(6)
    rig.feed(CallBuilder("5.9").ring("Local/0470123456@pstn-out", START + 9).events)
    assert len(loads) == 3
    assert {t for t, _ in rig.bus.log} == {"operator.1"}


def test_the_directory_is_refreshed_periodically() -> None:
    bound = directory()
    rig = pop_rig(devices=lambda: dict(bound))
    del bound[ANNA]
    bound[ANNA] = OperatorRef(3, "chris")  # Anna's phone moved to Chris
    rig.clock.advance(31)
    rig.feed(CallBuilder("6.1").ring(ANNA, START + 1).events)
    assert rig.bus.kinds("chris") == ["screen_pop"]
    assert rig.bus.to("anna") == []


def test_a_ring_that_ends_before_its_device_is_known_is_forgotten() -> None:
    runner = HeldRunner()
    bound: dict[str, OperatorRef] = {}
    rig = pop_rig(runner=runner, devices=lambda: dict(bound))
    runner.release_all()
    rig.clock.advance(10)
    call = CallBuilder("7.1").ring(ANNA, START + 1)
    rig.feed(call.events)  # miss: a refresh is on its way
    rig.feed(call.ring_end(ANNA, START + 2, RingResult.NO_ANSWER).events[-1:])
    bound[ANNA] = OperatorRef(1, "anna")
    runner.release_all()
    rig.deliver()
    assert rig.bus.log == []


# -- a failing database ---------------------------------------------------------------------


def test_without_the_database_the_pop_still_says_who_is_calling() -> None:
    def broken(request: ContextRequest) -> dict[str, Any]:
        raise RuntimeError("database is down")

    rig = pop_rig(build=broken)
    rig.feed(CallBuilder("8.1", number="050123456", name="Jan").ring(ANNA, START + 1).events)
    pop = rig.bus.to("anna")[0]
    assert pop["type"] == "screen_pop"
    assert pop["degraded"] is True
    assert pop["call_id"] is None
    assert pop["caller"] == {
        "number": "+3250123456",
        "number_raw": "050123456",
        "name": "Jan",
        "withheld": False,
    }
    assert pop["customer"] is None and pop["history"] == []
    assert rig.service.status()["build_failures"] == 1


def test_directory_load_failure_is_survived() -> None:
    calls = {"n": 0}

    def flaky() -> dict[str, OperatorRef]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("db down")
        return directory()

    rig = pop_rig(devices=flaky)
    assert rig.service.directory.failures == 1
    rig.clock.advance(6)
    rig.feed(CallBuilder("9.1").ring(ANNA, START + 1).events)
    assert rig.bus.kinds("anna") == ["screen_pop"]


# -- updates -----------------------------------------------------------------------------------


def test_transfer_and_end_updates_reach_who_handled_the_call() -> None:
    rig = pop_rig()
    call = (
        ringing_both("10.1")
        .answer(ANNA, START + 2)
        .ring_end(BART, START + 2, RingResult.CANCELLED)
        .transfer(TransferKind.BLIND, START + 5, ANNA, "2001")
        .leave(ANNA, START + 5)
        .ring("Local/2001@agents", START + 6)
        .answer("Local/2001@agents", START + 8)
        .end(START + 30, Outcome.TRANSFERRED)
    )
    rig.feed(call.events)
    anna = [(m["type"], m.get("state")) for m in rig.bus.to("anna")]
    assert anna == [
        ("screen_pop", "ringing"),
        ("call_update", "answered"),
        ("call_update", "transferred"),
        ("call_update", "answered"),
        ("call_update", "ended"),
    ]
    transferred = rig.bus.to("anna")[2]
    assert transferred["transfer"] == {"kind": "blind", "from": "anna", "to": "2001"}
    second = rig.bus.to("second")
    assert [(m["type"], m.get("state")) for m in second] == [
        ("screen_pop", "ringing"),
        ("call_update", "answered"),
        ("call_update", "ended"),
    ]
    assert second[1]["talking"] == ["second"]
    assert second[-1]["outcome"] == "transferred"
    assert rig.bus.kinds("bart") == ["screen_pop", "pop_withdrawn"]


def test_two_devices_of_one_operator_make_one_pop() -> None:
    rig = pop_rig()
    call = CallBuilder("11.1").ring(ANNA, START + 1).ring("PJSIP/1001", START + 1.1)
    call.ring_end(ANNA, START + 3, RingResult.CANCELLED).answer("PJSIP/1001", START + 3)
    rig.feed(call.events)
    assert rig.bus.kinds("anna") == ["screen_pop", "call_update"]


def test_the_same_operator_rung_again_gets_a_new_pop() -> None:
    rig = pop_rig()
    call = CallBuilder("12.1").ring(ANNA, START + 1)
    call.ring_end(ANNA, START + 7, RingResult.NO_ANSWER).ring(ANNA, START + 9)
    rig.feed(call.events)
    assert rig.bus.kinds("anna") == ["screen_pop", "pop_withdrawn", "screen_pop"]
    assert len(rig.builds) == 1


def test_latency_figures_are_kept() -> None:
    rig = pop_rig()
    rig.feed(ringing_both("13.1").events)
    status = rig.service.status()
    assert status["ring_to_pop_ms"]["count"] == 2
    assert status["pops"] == 2
    assert status["active_pops"] == 2


def test_old_calls_without_an_end_are_swept() -> None:
    rig = pop_rig()
    rig.clock.advance(START - rig.clock.seconds())
    rig.feed(ringing_both("14.1").events)
    assert rig.service.core.calls() == 1
    rig.clock.advance(7 * 3600)
    assert rig.service.core.calls() == 0
    assert rig.service.status()["swept"] == 1


# -- down to the WebSocket hub ------------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def sendTextMessage(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def ping(self, payload: bytes) -> None:
        pass


def connect(hub: Hub, username: str, role: str = "operator") -> FakeTransport:
    op_id, devices = OPERATORS[username]
    socket = ScreenSocket(hub, Principal(op_id, username, role, devices), f"token-{username}")
    transport = FakeTransport()
    socket.negotiationStarted(transport)  # type: ignore[arg-type]
    socket.negotiationFinished()
    return transport


def test_sockets_see_their_own_pops_only_and_get_them_at_connect() -> None:
    rig = pop_rig()

    def no_principal(token: str) -> Deferred[Principal | None]:
        return succeed(None)

    hub = Hub(rig.clock, rig.bus, no_principal)
    add_supervisor_screens(  # watching is the queues room's
        hub, lambda username: succeed(OPERATORS[username][0] if username in OPERATORS else None)
    )
    anna = connect(hub, "anna")
    chris = connect(hub, "chris")
    rig.deliver()  # their (empty) replays
    rig.feed(ringing_both("15.1").events)
    rig.deliver()
    assert [m["type"] for m in anna.sent] == ["hello", "screen_pop"]
    assert [m["type"] for m in chris.sent] == ["hello"]
    # Bart connects while his phone rings: his pop arrives at connect.
    bart = connect(hub, "bart")
    rig.deliver()
    assert [m["type"] for m in bart.sent] == ["hello", "screen_pop"]
    assert bart.sent[1]["linkedid"] == "15.1" and bart.sent[1]["operator"] == "bart"
    assert [m["type"] for m in chris.sent] == ["hello"]
    # A supervisor who watches Anna gets Anna's pop (and only hers).
    sofie = connect(hub, "eve", role="supervisor")
    rig.deliver()
    socket = next(s for s in hub.sockets if s.principal.username == "eve")
    socket.textMessageReceived(json.dumps({"type": "watch", "username": "anna"}))
    rig.deliver()
    pops = [m for m in sofie.sent if m["type"] == "screen_pop"]
    assert [(p["operator"], p["linkedid"]) for p in pops] == [("anna", "15.1")]
    assert [m["type"] for m in chris.sent] == ["hello"]


def test_rings_that_found_nobody_are_swept_with_their_calls() -> None:
    bound: dict[str, OperatorRef] = {}
    rig = pop_rig(devices=lambda: dict(bound))
    rig.clock.advance(START - rig.clock.seconds())
    rig.feed(CallBuilder("17.1").ring(ANNA, START + 1).events)  # nobody has the device
    rig.clock.advance(7 * 3600)  # no end ever came; the periodic refresh sweeps
    bound[ANNA] = OperatorRef(1, "anna")
    rig.clock.advance(31)  # the next refresh finds Anna's device: nothing old pops
    rig.deliver()
    assert rig.bus.log == []
    fresh = CallBuilder("17.2", at=rig.clock.seconds()).ring(ANNA, rig.clock.seconds())
    rig.feed(fresh.events)
    assert rig.bus.kinds("anna") == ["screen_pop"]


def test_an_outside_ring_is_nobodys_pop_and_costs_no_lookup() -> None:
    loads: list[int] = []

    def load() -> dict[str, OperatorRef]:
        loads.append(1)
        return {**directory(), "Local/0470123456@pstn-out": OperatorRef(1, "anna")}

    rig = pop_rig(devices=load)
    rig.clock.advance(10)  # past the miss interval, before the periodic refresh
    call = CallBuilder("18.1", direction=Direction.OUTBOUND).call
    far_end = Ring("Local/0470123456@pstn-out", "x;1", "18.1-9", START + 1, outside=True)
    rig.feed([OperatorRinging(call, far_end)])
    assert rig.bus.log == [] and len(loads) == 1


# -- a pop whose call id comes late -------------------------------------------------------------


def test_a_pop_without_its_call_id_gets_it_into_the_calls_next_messages() -> None:
    runner = HeldRunner()
    asked: list[ContextRequest] = []

    def busy_lock(request: ContextRequest) -> dict[str, Any]:
        return {**fake_context(request), "call_id": None, "call_id_pending": True}

    def call_id(request: ContextRequest) -> int | None:
        asked.append(request)
        return 4242

    clock = Clock()
    bus = RecordingBus(clock)
    service = PopService(clock, bus, runner, busy_lock, directory, call_id=call_id)
    service.start()
    runner.release_all()  # the directory
    call = ringing_both("19.1")
    for event in call.events:
        service.handle(event)
    # The context (the pops go out at once, without the id), then the id's own job.
    assert runner.release_all() == 2
    clock.advance(0)
    assert [(m["type"], m["call_id"]) for m in bus.to("anna")] == [("screen_pop", None)]
    assert [r.linkedid for r in asked] == ["19.1"]
    seen = len(call.events)
    for event in call.answer(ANNA, START + 3).events[seen:]:
        service.handle(event)
    clock.advance(0)
    assert [(m["type"], m["call_id"]) for m in bus.to("anna")] == [
        ("screen_pop", None),
        ("call_update", 4242),
    ]
    bus.publish("pop.replay", {"operator_id": OPERATORS["anna"][0]})
    clock.advance(0)
    assert bus.to("anna")[-1]["replay"] is True and bus.to("anna")[-1]["call_id"] == 4242
    assert service.status()["call_ids_late"] == 1


def test_a_call_id_that_cannot_be_had_leaves_the_pop_alone() -> None:
    def busy_lock(request: ContextRequest) -> dict[str, Any]:
        return {**fake_context(request), "call_id": None, "call_id_pending": True}

    def broken(request: ContextRequest) -> int | None:
        raise RuntimeError("database is locked")

    clock = Clock()
    bus = RecordingBus(clock)
    service = PopService(clock, bus, now_runner, busy_lock, directory, call_id=broken)
    service.start()
    call = ringing_both("20.1")
    for event in call.answer(ANNA, START + 3).events:
        service.handle(event)
    clock.advance(0)
    assert [(m["type"], m["call_id"]) for m in bus.to("anna")] == [
        ("screen_pop", None),
        ("call_update", None),
    ]
    assert bus.to("anna")[0]["customer"] is None and bus.to("anna")[0]["degraded"] is False
    assert service.status()["call_id_failures"] == 1


def test_with_own_history_each_operator_sees_only_the_earlier_calls_they_were_in() -> None:
    """``[web] call_history = "own"``: the context marks who may see each earlier call
    (``seen_by``); Anna and Bart, rung for one call, get different histories, and the
    mark itself never reaches a screen."""

    def build(request: ContextRequest) -> dict[str, Any]:
        context = fake_context(request)
        context["history"] = [
            {"type": "call", "id": 1, "seen_by": ["anna"]},
            {"type": "contact", "id": 7},
            {"type": "call", "id": 2, "seen_by": ["anna", "bart"]},
            {"type": "call", "id": 3, "seen_by": []},
        ]
        return context

    rig = pop_rig(build=build)
    rig.feed(ringing_both().events)
    rig.deliver()
    (anna,) = [m for m in rig.bus.to("anna") if m["type"] == "screen_pop"]
    (bart,) = [m for m in rig.bus.to("bart") if m["type"] == "screen_pop"]
    assert anna["history"] == [
        {"type": "call", "id": 1},
        {"type": "contact", "id": 7},
        {"type": "call", "id": 2},
    ]
    assert bart["history"] == [{"type": "contact", "id": 7}, {"type": "call", "id": 2}]


def test_with_shared_history_the_pop_shows_every_earlier_call() -> None:
    def build(request: ContextRequest) -> dict[str, Any]:
        context = fake_context(request)
        context["history"] = [{"type": "call", "id": 1}, {"type": "call", "id": 2}]
        return context

    rig = pop_rig(build=build)
    rig.feed(ringing_both().events)
    rig.deliver()
    for who in ("anna", "bart"):
        (pop,) = [m for m in rig.bus.to(who) if m["type"] == "screen_pop"]
        assert [h["id"] for h in pop["history"]] == [1, 2]
