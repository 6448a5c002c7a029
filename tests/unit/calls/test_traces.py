"""Replay every recorded trace and check the calls the model derives (the README facts)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cti_bridge.calls import CallModel
from cti_bridge.calls.events import (
    Call,
    CallStarted,
    CallTransferred,
)
from tests.support.calls_facts import ALL_TRACES, FACTS, check_event_order, replay


def test_every_untimestamped_trace_has_facts() -> None:
    untimestamped = [
        t for t in ALL_TRACES if not t.startswith("timestamped/") and "12-burst" not in t
    ]
    missing = [t for t in untimestamped if "13-hostile" not in t and t not in FACTS]
    assert missing == []


def check_call(call: Call, expected: dict[str, Any]) -> None:
    for key, want in expected.items():
        if key == "rings":
            got: Any = [(r.device, r.result) for r in call.rings]
        elif key == "members":
            got = [r.member_name for r in call.rings]
        elif key == "channels":
            got = [r.channel for r in call.rings]
        elif key == "transfers":
            got = [(t.kind, t.from_device, t.to) for t in call.transfers]
        elif key == "ended_with":
            got = call.ended_with
        else:
            got = getattr(call, key)
        assert got == want, f"{call.linkedid}: {key} is {got!r}, expected {want!r}"


@pytest.mark.parametrize("trace", sorted(FACTS))
def test_trace_facts(trace: str) -> None:
    run = replay(trace)
    ended = run.ended()
    assert sorted(ended) == sorted(FACTS[trace])
    for linkedid, expected in FACTS[trace].items():
        check_call(ended[linkedid], expected)
    assert run.model.live_calls == []


@pytest.mark.parametrize("trace", ALL_TRACES)
def test_event_order_and_one_start_one_end(trace: str) -> None:
    run = replay(trace)
    check_event_order(run)
    assert sorted(run.started()) == sorted(run.ended())  # every call of a whole trace ends


@pytest.mark.parametrize("trace", [t for t in ALL_TRACES if not t.startswith("timestamped/")])
def test_times_are_consistent_on_a_fake_clock(trace: str) -> None:
    """Untimestamped traces: the model uses arrival times; check their order."""
    for call in replay(trace).ended().values():
        assert call.ended_at is not None
        assert call.started_at <= call.ended_at
        if call.queue_joined_at is not None:
            assert call.started_at <= call.queue_joined_at <= call.ended_at
        if call.answered_at is not None:
            assert call.started_at <= call.answered_at <= call.ended_at
            assert call.wait_seconds is not None and call.talk_seconds is not None
            assert call.talk_seconds > 0
        else:
            assert call.talk_seconds is None
        for ring in call.rings:
            assert ring.ended_at is not None and ring.started_at <= ring.ended_at
            assert ring.result is not None
        for seg in call.segments:
            assert seg.ended_at is not None and seg.started_at <= seg.ended_at
        assert call.current_devices == ()  # nobody talks on an ended call


def test_snapshots_are_immutable_and_independent() -> None:
    run = replay("05-blind-transfer.ami")
    started = next(e for e in run.events if isinstance(e, CallStarted)).call
    ended = run.ended()["1795735449.352"]
    assert started.outcome is None and started.rings == ()
    assert ended.outcome == "transferred"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ended.outcome = None  # type: ignore[misc]


def test_direct_call_wait_runs_from_the_call_start() -> None:
    call = replay("04-direct-call.ami").ended()["1795735433.348"]
    assert call.queue_joined_at is None
    assert call.answered_at is not None
    assert call.wait_seconds == call.answered_at - call.started_at


def test_queue_timeout_is_abandoned_but_told_apart() -> None:
    ended = replay("12-burst.ami").ended()
    timeout = ended["1795735668.472"]  # Burst 33
    assert timeout.outcome == "abandoned"
    assert timeout.queue_result == "timeout"
    assert timeout.hung_up_by == "system"
    assert timeout.wait_ended_at is not None and timeout.ended_at is not None
    assert timeout.wait_ended_at < timeout.ended_at  # left the queue, then the dialplan ended
    real = ended["1795735665.420"]  # Burst 08 hung up while waiting
    assert (real.outcome, real.queue_result) == ("abandoned", "abandoned")
    assert real.hung_up_by == "caller"


def test_redirect_ends_the_first_operators_part_on_its_hangup() -> None:
    """Not on the AgentComplete that only comes when the customer hangs up (#192)."""
    run = replay("05-blind-transfer-redirect.ami")
    call = run.ended()["1795735475.360"]
    anna = next(s for s in call.segments if s.device == "Local/1001@agents")
    assert anna.ended_at == 1000.0 + 158  # message #159 (Hangup of her ;1 leg)
    redirect = next(e for e in run.events if isinstance(e, CallTransferred))
    assert redirect.transfer.kind == "redirect"
    assert redirect.call.current_devices == ("Local/1001@agents",)


def test_callback_answer_is_the_customer_picking_up() -> None:
    run = replay("07-callback-originate-answered.ami")
    call = run.ended()["1795735540.378"]
    customer = next(r for r in call.rings if r.device.endswith("@pstn-out"))
    assert call.answered_at == customer.ended_at  # DialEnd ANSWER of the customer leg
    operator = call.segments[0]
    assert call.answered_at is not None
    assert operator.started_at < call.answered_at  # the operator picked up first
    kinds = [type(e).__name__ for e in run.events]
    assert kinds.index("CallAnswered") > kinds.index("RingEnded")


def test_originate_response_before_or_after_the_customer_dial() -> None:
    """07 gets OriginateResponse before the customer DialBegin, 07-channelid after."""
    for trace, linkedid in (
        ("07-callback-originate-answered.ami", "1795735540.378"),
        ("07-callback-originate-answered-channelid.ami", "cti-callback-48"),
    ):
        call = replay(trace).ended()[linkedid]
        assert call.originate_action_id is not None
        assert call.outcome == "answered"


def test_models_are_independent_per_pbx() -> None:
    a, b = CallModel("a"), CallModel("b")
    ra = replay("01-queue-answered.ami", a)
    rb = replay("01-queue-answered.ami", b)
    assert ra.ended()["1795735383.330"].pbx == "a"
    assert rb.ended()["1795735383.330"].pbx == "b"
