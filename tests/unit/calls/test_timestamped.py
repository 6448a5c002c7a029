"""Durations from the PBX clock (``Timestamp:``) to the millisecond, and the burst tables."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from cti_bridge.calls import CallModel
from tests.support.calls_facts import (
    BURST_DURATIONS,
    DURATIONS,
    TIMESTAMPED_BURST_COUNTS,
    burst_table,
    replay,
)


def ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@pytest.mark.parametrize(("trace", "linkedid", "wait", "talk", "rings", "legs"), DURATIONS)
def test_durations_match_the_readme(  # noqa: PLR0917 (one row of the table)
    trace: str,
    linkedid: str,
    wait: float | None,
    talk: float | None,
    rings: list[Any],
    legs: list[Any],
) -> None:
    # The arrival clock is deliberately far from the PBX clock: only Timestamp may count.
    call = replay(f"timestamped/{trace}.ami", start=5.0e6).ended()[linkedid]
    if wait is not None:
        assert ms(call.wait_seconds) == wait
    assert ms(call.talk_seconds) == talk
    got_rings = [(r.device, ms((r.ended_at or 0) - r.started_at), r.result) for r in call.rings]
    assert got_rings == [tuple(r) for r in rings]
    got_legs = [(s.device, ms((s.ended_at or 0) - s.started_at)) for s in call.segments]
    assert got_legs == [tuple(leg) for leg in legs]
    assert call.started_at > 1.7e9  # PBX epoch, not the fake arrival clock


def test_one_clock_per_call_even_when_the_first_event_lacks_a_timestamp() -> None:
    """A call created from an untimestamped event keeps the arrival clock throughout."""
    model = CallModel("main")
    base = {"Channel": "PJSIP/pstn-00000001", "Uniqueid": "9.1", "Linkedid": "9.1"}
    model.feed({"Event": "Newchannel", **base, "ChannelState": "4", "Context": "from-pstn"}, 100.0)
    out = model.feed(
        {"Event": "Hangup", **base, "Cause": "16", "Timestamp": "1795736303.000000"}, 105.0
    )
    call = out[-1].call
    assert (call.started_at, call.ended_at) == (100.0, 105.0)


def test_timestamped_burst_counts_and_burst_31() -> None:
    ended = replay("timestamped/12-burst.ami", start=0.0).ended()
    assert len(ended) == 40
    counts = Counter(
        (c.outcome, c.answered_by if c.outcome == "answered" else c.queue_result)
        for c in ended.values()
    )
    anna, bart, abandoned, timeouts = TIMESTAMPED_BURST_COUNTS
    assert counts == {
        ("answered", "Local/1001@agents"): anna,
        ("answered", "Local/1002@agents"): bart,
        ("abandoned", "abandoned"): abandoned,
        ("abandoned", "timeout"): timeouts,
    }
    burst31 = ended["1795736463.158"]
    assert burst31.outcome == "answered" and burst31.queue_result == "answered"
    for linkedid, (wait, talk) in BURST_DURATIONS.items():
        call = ended[linkedid]
        assert (ms(call.wait_seconds), ms(call.talk_seconds)) == (wait, talk), linkedid


def test_untimestamped_burst_per_call_table() -> None:
    ended = replay("12-burst.ami").ended()
    table = burst_table()
    assert sorted(ended) == sorted(table)
    for linkedid, (number, what, who) in table.items():
        call = ended[linkedid]
        if what == "answered":
            assert (call.outcome, call.answered_by) == ("answered", who), number
            assert call.hung_up_by == ("caller" if number == 4 else "operator"), number
        else:
            assert (call.outcome, call.queue_result) == ("abandoned", what), number
            assert call.answered_by is None
            assert call.hung_up_by == ("system" if what == "timeout" else "caller"), number
        assert call.caller_name == f"Burst {number:02d}"
    outcomes = Counter(
        c.queue_result if c.outcome == "abandoned" else c.outcome for c in ended.values()
    )
    assert outcomes == {"answered": 24, "abandoned": 9, "timeout": 7}
