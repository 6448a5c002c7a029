"""Attaching mid-stream, replaying twice, and memory: the model must stay sane and bounded.

As in cacofonisk's ``test_partial``: cut the first N messages off a recorded trace and
replay the rest; the model never crashes, never starts or ends a call twice, and a
resync with an empty channel list (the PBX has no calls) closes whatever is left.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cti_bridge.calls import CallModel
from cti_bridge.calls.events import CallEnded
from tests.support.calls_facts import ALL_TRACES, Replay, check_event_order, messages


def truncated_replays(trace: str, step: int = 1) -> None:
    msgs = messages(trace)
    for cut in range(1, len(msgs) + 1, step):
        run = Replay(CallModel("main")).feed(msgs[cut:])
        closing = run.model.resync([], 5000.0)
        run.events.extend(closing)
        check_event_order(run)
        assert sorted(run.started()) == sorted(run.ended()), f"cut {cut}"
        for event in closing:
            if isinstance(event, CallEnded):
                assert event.call.complete is False
                assert event.call.hung_up_by == "system"
        assert run.model.state_sizes()["calls"] == 0
        assert run.model.state_sizes()["channels"] == 0


@pytest.mark.parametrize("trace", [t for t in ALL_TRACES if "12-burst" not in t])
def test_truncated_start_never_crashes_nor_duplicates(trace: str) -> None:
    truncated_replays(trace)


@pytest.mark.parametrize("trace", ["12-burst.ami", "timestamped/12-burst.ami"])
def test_truncated_burst_dense_sample(trace: str) -> None:
    truncated_replays(trace, step=23)


def test_a_call_joined_half_way_is_incomplete_and_closed_at_resync() -> None:
    msgs = messages("01-queue-answered.ami")
    run = Replay(CallModel("main")).feed(msgs[30:])  # after the customer's Newchannel
    assert run.ended() == {}  # the caller's channel was never seen: it cannot end yet
    (live,) = run.model.live_calls
    assert live.complete is False
    assert [r.device for r in live.rings] == ["Local/1002@agents", "Local/1001@agents"]
    closing = run.model.resync([], 9000.0)
    assert [type(e).__name__ for e in closing] == ["CallEnded"]
    assert closing[0].call.complete is False


@pytest.mark.parametrize("trace", [t for t in ALL_TRACES if "14-login" not in t])
def test_double_replay_makes_no_second_start_or_end(trace: str) -> None:
    msgs = messages(trace)
    run = Replay(CallModel("main")).feed(msgs).feed(msgs, start=100_000.0)
    assert len(run.started()) == len(set(run.started()))
    ended = [e.call.linkedid for e in run.events if isinstance(e, CallEnded)]
    assert len(ended) == len(set(ended))
    assert run.model.live_calls == []


def rewrite_ids(msg: Mapping[str, str], suffix: str) -> dict[str, str]:
    return {
        key: (value + suffix if key.endswith(("Uniqueid", "Linkedid")) else value)
        for key, value in msg.items()
    }


def test_memory_is_bounded_after_many_bursts() -> None:
    msgs = messages("12-burst.ami")
    model = CallModel("main", ended_memory=100)
    run = Replay(model)
    for round_ in range(6):
        run.feed([rewrite_ids(m, f"-r{round_}") for m in msgs], start=round_ * 10_000.0)
        sizes = model.state_sizes()
        assert sizes["calls"] == 0 and sizes["channels"] == 0
        assert sizes["recently_ended"] == min(40 * (round_ + 1), 100)
    assert len(run.ended()) == 240  # every rewritten call was a new call
    for call in model.state.calls.values():  # nothing left behind per call
        raise AssertionError(call)


def test_late_events_of_an_ended_call_do_not_restart_it() -> None:
    msgs = messages("11-restart-shutdown.ami")
    run = Replay(CallModel("main")).feed(msgs)
    late = [m for m in msgs if m.get("Event") in ("Newchannel", "AgentComplete", "Hangup")]
    before = len(run.events)
    run.feed(late, start=50_000.0)
    assert len(run.events) == before
