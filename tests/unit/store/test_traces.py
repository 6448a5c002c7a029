"""Recorded Asterisk traces, through the real call model, into the store.

The model's own facts (``calls_facts``, shared with its tests) say what each call is;
here the records must say the same after the store's merging, durations to the
millisecond, and replaying a trace again (a second node, or a restart that replays)
must not change a single row.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from cti_bridge.calls.events import DomainEvent
from cti_bridge.store import Store
from cti_bridge.testing.store import call_row_counts
from cti_bridge.testing.store_contract import every_backend
from tests.support.calls_facts import (
    BURST_DURATIONS,
    DURATIONS,
    HOSTILE,
    LONG_NAME_START,
    TIMESTAMPED_BURST_COUNTS,
    burst_table,
    replay,
)

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
# Contracts: the memory twin answers as SQLite and PostgreSQL do.
pytestmark = every_backend

A1, A2 = "Local/1001@agents", "Local/1002@agents"


@pytest.fixture
def helpdesk(store: Store) -> Store:
    store.accounts.add_operator("anna", role="operator", password="anna-secret", devices=[A1])
    store.accounts.add_operator("bart", role="operator", password="bart-secret", devices=[A2])
    return store


def rows(store: Store) -> tuple[int, ...]:
    return tuple(call_row_counts(store).values())  # also on the memory twin


def apply_in_batches(store: Store, events: list[DomainEvent], size: int = 50) -> None:
    for start in range(0, len(events), size):
        store.calls.apply(events[start : start + size])


Duration = tuple[str, str, float | None, float | None, list[Any], list[Any]]


@pytest.mark.parametrize("case", DURATIONS, ids=[d[0] for d in DURATIONS])
def test_timestamped_trace_durations_survive_the_store(helpdesk: Store, case: Duration) -> None:
    trace, linkedid, wait, talk, rings, legs = case
    events = replay(f"timestamped/{trace}.ami").events
    helpdesk.calls.apply(events)
    call = helpdesk.queries.find_call("main", linkedid)
    assert call is not None
    if wait is not None:
        assert call["wait_seconds"] == pytest.approx(wait, abs=0.0015)
    if talk is not None:
        assert call["talk_seconds"] == pytest.approx(talk, abs=0.0015)
    assert [(r["device"], r["result"]) for r in call["rings"]] == [(d, r) for d, _, r in rings]
    assert len(call["segments"]) == len(legs)
    assert call["complete"] is True
    before = rows(helpdesk)
    assert helpdesk.calls.apply(events) == 0  # the same trace again: nothing changes
    assert helpdesk.queries.find_call("main", linkedid) == call
    assert rows(helpdesk) == before


def test_timestamped_burst(helpdesk: Store) -> None:
    events = replay("timestamped/12-burst.ami").events
    apply_in_batches(helpdesk, events)
    calls = helpdesk.queries.list_calls(limit=500)
    assert len(calls) == 40
    anna, bart, abandoned, timeouts = TIMESTAMPED_BURST_COUNTS
    assert Counter(c["answered_by"] for c in calls if c["outcome"] == "answered") == {
        "anna": anna,
        "bart": bart,
    }
    assert Counter(c["outcome"] for c in calls) == {
        "answered": anna + bart,
        "abandoned": abandoned + timeouts,
    }
    assert sum(1 for c in calls if c["queue_result"] == "timeout") == timeouts
    by_id = {c["linkedid"]: c for c in calls}
    for linkedid, (wait, talk) in BURST_DURATIONS.items():
        assert by_id[linkedid]["wait_seconds"] == pytest.approx(wait, abs=0.0015), linkedid
        if talk is None:
            assert by_id[linkedid]["talk_seconds"] is None
        else:
            assert by_id[linkedid]["talk_seconds"] == pytest.approx(talk, abs=0.0015)
    # Every caller number normalises: five formats, one E.164 shape.
    assert all(c["caller_number"].startswith("+32") for c in calls)


def test_a_second_replay_by_another_model_changes_nothing(helpdesk: Store) -> None:
    """Two nodes on one PBX, or a restart that replays: independent models, one store."""
    first = replay("12-burst.ami").events
    apply_in_batches(helpdesk, first, size=97)
    before = rows(helpdesk)
    snapshot = helpdesk.queries.list_calls(limit=500)
    second = replay("12-burst.ami").events  # a fresh model, the same arrival times
    apply_in_batches(helpdesk, second, size=13)
    assert rows(helpdesk) == before
    assert helpdesk.queries.list_calls(limit=500) == snapshot
    table = burst_table()
    by_id = {c["linkedid"]: c for c in snapshot}
    for linkedid, (_, what, who) in table.items():
        call = by_id[linkedid]
        assert call["outcome"] == ("answered" if what == "answered" else "abandoned")
        assert call["answered_by"] == {A1: "anna", A2: "bart", None: None}[who]


def test_hostile_caller_ids_from_the_trace(helpdesk: Store) -> None:
    helpdesk.calls.apply(replay("13-hostile-callerid.ami").events)
    for linkedid, raw, name, withheld, answered_by in HOSTILE:
        call = helpdesk.queries.find_call("main", linkedid)
        assert call is not None, linkedid
        assert call["caller_number_raw"] == raw
        assert call["caller_withheld"] is withheld
        if name is not None:
            assert call["caller_name"] == name
        assert call["answered_by"] == {A1: "anna", A2: "bart"}[answered_by]
        if withheld:
            assert call["caller_number"] is None
    shrunk = helpdesk.queries.find_call("main", "1795735734.542")
    assert shrunk is not None and shrunk["caller_number"] == "+3292345678"
    long_name = helpdesk.queries.find_call("main", "1795735733.538")
    assert long_name is not None and long_name["caller_name"].startswith(LONG_NAME_START)
    assert len(long_name["caller_name"]) == 216
    assert helpdesk.queries.list_calls(number="+32 (0)9 234.56.78")[0]["linkedid"] == (
        "1795735734.542"
    )


def test_crlf_injection_trace_leaves_one_intact_record(helpdesk: Store) -> None:
    helpdesk.calls.apply(replay("13-hostile-callerid-crlf-injection.ami").events)
    calls = helpdesk.queries.list_calls()
    assert len(calls) == 1  # no phantom call from the forged Hangup
    (call,) = calls
    assert call["caller_number"] == "+32475998877"
    assert call["answered_by"] == "anna"
    assert call["caller_name"].startswith("Piet Fraude")
