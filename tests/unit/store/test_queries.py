"""Reading records in PRODUCT.md's JSON shape, filtering, paging, and annotations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cti_bridge.calls.events import Outcome
from cti_bridge.store import CallNotFound, InvalidAnnotation, Store
from cti_bridge.store.ports import CallViewer
from cti_bridge.testing.store import START, CallBuilder, FakeTime, queue_call_answered
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]
# Contracts: the memory twin answers as SQLite and PostgreSQL do.
pytestmark = every_backend

ANNA, BART = "Local/1001@agents", "Local/1002@agents"

#: PRODUCT.md's "a call has at least" list, plus what the brief adds.
PUBLIC_FIELDS = {
    "id",
    "pbx",
    "linkedid",
    "direction",
    "caller_number",
    "caller_number_raw",
    "caller_name",
    "caller_withheld",
    "queue",
    "started_at",
    "answered_at",
    "ended_at",
    "wait_seconds",
    "talk_seconds",
    "rang",
    "answered_by",
    "outcome",
    "transfers",
    "notes",
    "category",
    "disposition",
    "rings",
    "segments",
}


@pytest.fixture
def helpdesk(store: Store) -> Store:
    store.accounts.add_operator("anna", role="operator", password="anna-secret", devices=[ANNA])
    store.accounts.add_operator("bart", role="operator", password="bart-secret", devices=[BART])
    return store


def direct_call(linkedid: str, number: str, at: float, device: str = BART) -> CallBuilder:
    built = CallBuilder(linkedid, number=number, at=at, dialled="1002")
    return built.ring(device, at + 0.2).answer(device, at + 3).end(at + 60, Outcome.ANSWERED)


def test_the_json_shape(helpdesk: Store) -> None:
    helpdesk.calls.apply(queue_call_answered().events)
    call = helpdesk.queries.list_calls()[0]
    assert set(call) >= PUBLIC_FIELDS
    assert json.loads(json.dumps(call)) == call  # plain JSON values only
    for name in ("started_at", "answered_at", "ended_at"):
        assert call[name].endswith("Z")
        parsed = datetime.fromisoformat(call[name])
        offset = parsed.utcoffset()
        assert offset is not None and offset.total_seconds() == 0
    assert call["ended_with"] == "anna"
    assert helpdesk.queries.get_call(call["id"]) == {
        **call,
        "notes_history": [],
    }  # one call: with its history
    assert helpdesk.queries.find_call("main", "1795735383.330") == call
    assert helpdesk.queries.find_call("other-pbx", "1795735383.330") is None


@pytest.mark.parametrize(
    "query", ["+3250123456", "050123456", "050 12 34 56", "0032 50 12 34 56", "+32050123456"]
)
def test_number_in_any_format_finds_the_calls(helpdesk: Store, query: str) -> None:
    helpdesk.calls.apply(queue_call_answered("a").events)
    helpdesk.calls.apply(direct_call("b", "050/12.34.56", START + 100).events)
    helpdesk.calls.apply(direct_call("c", "0470123456", START + 200).events)
    found = helpdesk.queries.list_calls(number=query)
    assert [c["linkedid"] for c in found] == ["b", "a"]  # newest first


def test_a_number_that_does_not_normalise_matches_the_raw_caller_id(helpdesk: Store) -> None:
    helpdesk.calls.apply(direct_call("internal", "1001", START).events)
    helpdesk.calls.apply(direct_call("hostile", "'; DROP TABLE calls;--", START + 10).events)
    assert [c["linkedid"] for c in helpdesk.queries.list_calls(number="1001")] == ["internal"]
    found = helpdesk.queries.list_calls(number="'; DROP TABLE calls;--")
    assert [c["linkedid"] for c in found] == ["hostile"]
    assert helpdesk.queries.list_calls(number="' OR '1'='1") == []
    assert len(helpdesk.queries.list_calls()) == 2


def test_since_until_and_limit(helpdesk: Store) -> None:
    for n in range(5):
        helpdesk.calls.apply(direct_call(f"call-{n}", "0470123456", START + n * 3600).events)
    since = datetime.fromtimestamp(START + 2 * 3600, UTC)
    assert [c["linkedid"] for c in helpdesk.queries.list_calls(since=since)] == [
        "call-4",
        "call-3",
        "call-2",
    ]
    iso = since.isoformat().replace("+00:00", "Z")
    assert len(helpdesk.queries.list_calls(since=iso)) == 3
    assert len(helpdesk.queries.list_calls(since=START + 2 * 3600)) == 3
    assert [c["linkedid"] for c in helpdesk.queries.list_calls(since=since, limit=2)] == [
        "call-4",
        "call-3",
    ]
    until = helpdesk.queries.list_calls(until=since)
    assert [c["linkedid"] for c in until] == ["call-1", "call-0"]
    assert len(helpdesk.queries.list_calls(limit=0)) == 1  # at least one
    assert len(helpdesk.queries.list_calls(limit=10**9)) == 5  # capped, not unbounded


def test_paging_with_before_id(helpdesk: Store) -> None:
    for n in range(7):
        helpdesk.calls.apply(direct_call(f"call-{n}", "0470123456", START + n).events)
    # Two calls starting at the same instant must still page correctly.
    helpdesk.calls.apply(direct_call("twin", "0470123456", START + 3).events)
    seen: list[str] = []
    before = None
    while page := helpdesk.queries.list_calls(limit=3, before_id=before):
        seen += [c["linkedid"] for c in page]
        before = page[-1]["id"]
    assert len(seen) == 8
    assert len(set(seen)) == 8
    assert seen[0] == "call-6"
    assert seen[-1] == "call-0"


def test_calls_of_one_operator(helpdesk: Store) -> None:
    anna = helpdesk.accounts.get_operator("anna")
    bart = helpdesk.accounts.get_operator("bart")
    assert anna is not None and bart is not None
    helpdesk.calls.apply(queue_call_answered("queue").events)  # Bart rang, Anna answered
    helpdesk.calls.apply(direct_call("bart-only", "0470123456", START + 50).events)
    anna_calls = helpdesk.queries.list_calls(operator_id=anna.id)
    bart_calls = helpdesk.queries.list_calls(operator_id=bart.id)
    assert [c["linkedid"] for c in anna_calls] == ["queue"]
    assert [c["linkedid"] for c in bart_calls] == ["bart-only", "queue"]


def test_other_filters(helpdesk: Store) -> None:
    helpdesk.calls.apply(queue_call_answered("queue").events)
    helpdesk.calls.apply(direct_call("direct", "0470123456", START + 50).events)
    assert [c["linkedid"] for c in helpdesk.queries.list_calls(queue="support")] == ["queue"]
    assert len(helpdesk.queries.list_calls(outcome="answered")) == 2
    assert helpdesk.queries.list_calls(outcome="missed") == []


def test_patch_call_sets_operator_fields(helpdesk: Store, fake_time: FakeTime) -> None:
    helpdesk.calls.apply(queue_call_answered().events)
    call_id = helpdesk.queries.list_calls()[0]["id"]
    anna = helpdesk.accounts.get_operator("anna")
    assert anna is not None
    fake_time.advance(100)
    patched = helpdesk.queries.patch_call(
        call_id,
        notes="Printer <b>jams</b> again; see ticket 12",
        category="printer",
        disposition="agreement_made",
        by_operator=anna.id,
    )
    assert patched["notes"] == "Printer <b>jams</b> again; see ticket 12"  # stored as text
    assert patched["category"] == "printer"
    assert patched["disposition"] == "agreement_made"
    assert patched["annotated_by"] == "anna"
    assert patched["annotated_at"] == "2026-11-26T23:24:43.000Z"
    # Only what is passed changes; None clears.
    again = helpdesk.queries.patch_call(call_id, disposition=None)
    assert again["disposition"] is None
    assert again["notes"] == patched["notes"]
    assert again["outcome"] == "answered"


def test_every_change_to_the_notes_is_kept(helpdesk: Store, fake_time: FakeTime) -> None:
    """Issue 13: who changed a call's notes, category or disposition, when, from what to
    what, on ``get_call`` (``notes_history``, oldest first); the lists leave it out."""
    helpdesk.calls.apply(queue_call_answered().events)
    call_id = helpdesk.queries.list_calls()[0]["id"]
    anna, bart = (helpdesk.accounts.get_operator(n) for n in ("anna", "bart"))
    assert anna is not None and bart is not None
    assert helpdesk.queries.get_call(call_id)["notes_history"] == []
    fake_time.advance(100)
    helpdesk.queries.patch_call(
        call_id, notes="Router reset", category="router", by_operator=anna.id
    )
    fake_time.advance(60)
    patched = helpdesk.queries.patch_call(
        call_id,
        notes="Router reset; works.",
        category="router",  # unchanged: no entry
        disposition="solved",
        by_operator=bart.id,
    )
    fake_time.advance(1)
    helpdesk.queries.patch_call(call_id, disposition=None, by_operator=anna.id)
    history = helpdesk.queries.get_call(call_id)["notes_history"]
    assert [(h["operator"], h["field"], h["old"], h["new"]) for h in history] == [
        ("anna", "notes", None, "Router reset"),
        ("anna", "category", None, "router"),
        ("bart", "notes", "Router reset", "Router reset; works."),
        ("bart", "disposition", None, "solved"),
        ("anna", "disposition", "solved", None),
    ]
    assert [h["at"] for h in history] == [
        "2026-11-26T23:24:43.000Z",
        "2026-11-26T23:24:43.000Z",
        "2026-11-26T23:25:43.000Z",
        "2026-11-26T23:25:43.000Z",
        "2026-11-26T23:25:44.000Z",
    ]
    assert patched["notes_history"] == history[:4]  # the PATCH answers with it
    assert "notes_history" not in helpdesk.queries.list_calls()[0]


@pytest.mark.parametrize(
    "changes",
    [
        {"disposition": "fixed-it"},
        {"disposition": "SOLVED"},
        {"category": "x" * 101},
        {"notes": "x" * 20_001},
        {"notes": 42},
    ],
)
def test_patch_call_validates(helpdesk: Store, changes: dict[str, object]) -> None:
    helpdesk.calls.apply(queue_call_answered().events)
    call_id = helpdesk.queries.list_calls()[0]["id"]
    with pytest.raises(InvalidAnnotation):
        helpdesk.queries.patch_call(call_id, **changes)  # type: ignore[arg-type]
    call = helpdesk.queries.get_call(call_id)
    assert (call["notes"], call["category"], call["disposition"]) == (None, None, None)


@pytest.mark.parametrize(
    "disposition",
    [
        "solved",
        "agreement_made",
        "escalated",
        "technician_planned",
        "repair_planned",
        "replacement_planned",
        "out_of_contract",
        "complaint",
    ],
)
def test_every_disposition_is_accepted(helpdesk: Store, disposition: str) -> None:
    helpdesk.calls.apply(queue_call_answered().events)
    call_id = helpdesk.queries.list_calls()[0]["id"]
    assert helpdesk.queries.patch_call(call_id, disposition=disposition)["disposition"] == (
        disposition
    )


def test_unknown_call(helpdesk: Store) -> None:
    with pytest.raises(CallNotFound):
        helpdesk.queries.get_call(4242)
    with pytest.raises(CallNotFound):
        helpdesk.queries.patch_call(4242, notes="x")


def test_a_viewer_sees_ended_calls_and_the_live_ones_they_are_on(helpdesk: Store) -> None:
    """``viewer`` (docs/security.md, "Which calls an operator sees"), in the query: a
    live call is only for the operators it rings or rang (by operator, or by a device
    no operator was bound to), ended ones for everybody unless ``own``; pages stay full."""
    anna = helpdesk.accounts.get_operator("anna")
    bart = helpdesk.accounts.get_operator("bart")
    assert anna is not None and bart is not None
    helpdesk.calls.apply(direct_call("anna-old", "0470123456", START, device=ANNA).events)
    helpdesk.calls.apply(direct_call("bart-old", "0470123456", START + 10).events)
    for n in range(3):  # newer than both, live, ringing Bart
        live = CallBuilder(f"live-{n}", number="0470123456", at=START + 100 + n, dialled="1002")
        helpdesk.calls.apply(live.ring(BART, START + 100.5 + n).events)
    spare = CallBuilder("spare", number="0470999999", at=START + 200, dialled="1009")
    helpdesk.calls.apply(spare.ring("PJSIP/1009", START + 200.5).events)  # nobody's device

    def seen(viewer: CallViewer | None, **filters: Any) -> list[str]:
        return [c["linkedid"] for c in helpdesk.queries.list_calls(viewer=viewer, **filters)]

    everything = ["spare", "live-2", "live-1", "live-0", "bart-old", "anna-old"]
    assert seen(None) == everything
    assert seen(CallViewer(anna.id, (ANNA,))) == ["bart-old", "anna-old"]
    assert seen(CallViewer(anna.id, (ANNA,)), limit=1) == ["bart-old"]  # not an empty page
    assert seen(CallViewer(anna.id, (ANNA,), own=True)) == ["anna-old"]
    assert seen(CallViewer(bart.id, (BART,))) == everything[1:]
    assert seen(CallViewer(bart.id, (BART,), own=True), limit=2) == ["live-2", "live-1"]
    assert seen(CallViewer(anna.id, (ANNA, "PJSIP/1009"), own=True)) == ["spare", "anna-old"]
    assert seen(CallViewer(anna.id, (ANNA,)), number="0470999999") == []
    assert seen(CallViewer(anna.id, (ANNA,)), outcome="answered") == ["bart-old", "anna-old"]
    helpdesk.calls.apply(spare.end(START + 230, Outcome.MISSED).events)
    assert seen(CallViewer(anna.id, (ANNA,)), number="0470999999") == ["spare"]
    assert seen(CallViewer(anna.id, (ANNA,), own=True), outcome="missed") == []
