"""Call records from domain events: the fields, and idempotency under replay, reconnects
and reordering. Runs on SQLite and on PostgreSQL (see cti_bridge.testing.store)."""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cti_bridge.calls.events import (
    CallEnded,
    CallStarted,
    Direction,
    DomainEvent,
    HungUpBy,
    OperatorRinging,
    Outcome,
    RingResult,
    TransferKind,
)
from cti_bridge.store import Store
from cti_bridge.store.compaction import effective, group, newest_alone, segments_fit
from cti_bridge.store.models import CallRecord, CallRing, CallSegment, CallTransfer
from cti_bridge.testing.store import START, CallBuilder, call_row_counts, queue_call_answered
from cti_bridge.testing.store_contract import every_backend

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

ANNA, BART = "Local/1001@agents", "Local/1002@agents"


@pytest.fixture
def helpdesk(store: Store) -> Store:
    store.accounts.add_operator("anna", role="operator", password="anna-secret", devices=[ANNA])
    store.accounts.add_operator("bart", role="operator", password="bart-secret", devices=[BART])
    return store


def counts(store: Store) -> dict[str, int]:
    return call_row_counts(store)  # also on the memory twin


def only_call(store: Store) -> dict[str, Any]:
    calls = store.queries.list_calls()
    assert len(calls) == 1
    return calls[0]


def without_identity(call: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in call.items() if k not in ("id", "linkedid", "updated_at")}


# --- the fields of typical calls -------------------------------------------------------


@every_backend
def test_queue_call_answered(helpdesk: Store) -> None:
    helpdesk.calls.apply(queue_call_answered().events)
    call = only_call(helpdesk)
    assert call["pbx"] == "main"
    assert call["linkedid"] == "1795735383.330"
    assert call["direction"] == "inbound"
    assert call["caller_number"] == "+3250123456"
    assert call["caller_number_raw"] == "+3250123456"
    assert call["caller_name"] == "Jan Peeters"
    assert call["caller_withheld"] is False
    assert call["queue"] == "support"
    assert call["started_at"] == "2026-11-26T23:23:03.000Z"
    assert call["answered_at"] == "2026-11-26T23:23:05.500Z"
    assert call["ended_at"] == "2026-11-26T23:23:17.500Z"
    assert call["wait_seconds"] == 2.0  # from joining the queue to the answer
    assert call["talk_seconds"] == 12.0
    assert call["rang"] == ["bart", "anna"]
    assert call["answered_by"] == "anna"
    assert call["outcome"] == "answered"
    assert call["hung_up_by"] == "caller"
    assert call["transfers"] == []
    assert [(r["operator"], r["result"]) for r in call["rings"]] == [
        ("bart", "cancelled"),
        ("anna", "answered"),
    ]
    assert [(s["operator"], s["started_at"], s["ended_at"]) for s in call["segments"]] == [
        ("anna", "2026-11-26T23:23:05.500Z", "2026-11-26T23:23:17.500Z")
    ]
    assert call["complete"] is True
    assert call["ended_at_approximate"] is False
    assert (call["notes"], call["category"], call["disposition"]) == (None, None, None)


@every_backend
def test_queue_call_abandoned(helpdesk: Store) -> None:
    t = START
    built = (
        CallBuilder("1795735401.336", number="050123456", name="Marie Dubois", at=t)
        .join_queue("support", t + 1)
        .ring(BART, t + 1.1, queue="support")
        .ring(ANNA, t + 1.2, queue="support")
        .end(t + 7, Outcome.ABANDONED)
    )
    helpdesk.calls.apply(built.events)
    call = only_call(helpdesk)
    assert call["caller_number"] == "+3250123456"
    assert call["caller_number_raw"] == "050123456"
    assert call["outcome"] == "abandoned"
    assert call["wait_seconds"] == 6.0
    assert call["talk_seconds"] is None
    assert call["answered_by"] is None
    assert call["answered_at"] is None
    assert call["rang"] == ["bart", "anna"]
    assert {r["result"] for r in call["rings"]} == {"cancelled"}


@every_backend
def test_queue_timeout_waits_until_the_queue_gave_up(helpdesk: Store) -> None:
    t = START
    built = (
        CallBuilder("1795735668.484", number="092300646", at=t)
        .join_queue("support", t + 1)
        .ring(ANNA, t + 2, queue="support")
        .ring_end(ANNA, t + 61, RingResult.NO_ANSWER)
        .end(t + 75, Outcome.ABANDONED, hung_up_by=HungUpBy.SYSTEM, wait_ended_at=t + 61)
    )
    helpdesk.calls.apply(built.events)
    call = only_call(helpdesk)
    assert call["caller_number"] == "+3292300646"
    assert call["outcome"] == "abandoned"
    assert call["hung_up_by"] == "system"
    assert call["wait_seconds"] == 60.0
    assert call["rings"][0]["result"] == "no_answer"


@every_backend
def test_direct_call_missed(helpdesk: Store) -> None:
    t = START
    built = (
        CallBuilder("1795735433.348", number="0470123456", name="Luc Claes", dialled="1001", at=t)
        .ring(ANNA, t + 0.2)
        .ring_end(ANNA, t + 30.2, RingResult.NO_ANSWER)
        .end(t + 30.3, Outcome.MISSED)
    )
    helpdesk.calls.apply(built.events)
    call = only_call(helpdesk)
    assert call["queue"] is None
    assert call["dialled"] == "1001"
    assert call["caller_number"] == "+32470123456"
    assert call["outcome"] == "missed"
    assert call["wait_seconds"] == pytest.approx(30.3)  # a direct call waits from its start
    assert call["rang"] == ["anna"]
    assert call["answered_by"] is None


@every_backend
def test_transferred_call(helpdesk: Store) -> None:
    t = START
    second_line = "Local/2001@internal"
    built = (
        CallBuilder("1795735455.354", number="+3250987654", name="Sophie Maes", at=t)
        .join_queue("support", t + 1)
        .ring(ANNA, t + 1.1, queue="support")
        .answer(ANNA, t + 3)
        .transfer(TransferKind.BLIND, t + 6, ANNA, "2001")
        .leave(ANNA, t + 6)
        .ring(second_line, t + 6.1)
        .answer(second_line, t + 8)
        .transfer(TransferKind.BLIND, t + 6, ANNA, second_line)  # the target became known
        .end(t + 20, Outcome.TRANSFERRED)
    )
    helpdesk.calls.apply(built.events)
    call = only_call(helpdesk)
    assert call["outcome"] == "transferred"
    assert call["answered_by"] == "anna"  # the first who answered
    assert call["talk_seconds"] == 17.0  # all parts, transfer included
    assert call["rang"] == ["anna", second_line]  # nobody is bound to 2001
    assert call["transfers"] == [
        {
            "kind": "blind",
            "at": "2026-11-26T23:23:09.000Z",
            "from": "anna",
            "to": second_line,
            "from_device": ANNA,
            "to_target": second_line,
        }
    ]
    assert [(s["device"], s["ended_at"]) for s in call["segments"]] == [
        (ANNA, "2026-11-26T23:23:09.000Z"),
        (second_line, "2026-11-26T23:23:23.000Z"),
    ]
    assert counts(helpdesk)["call_transfers"] == 1


@pytest.mark.parametrize(
    ("raw", "presentation_withheld"),
    [("anonymous", True), ("<unknown>", False), ("", False), ("+3250123456", True)],
)
@every_backend
def test_withheld_caller(helpdesk: Store, raw: str, presentation_withheld: bool) -> None:
    built = CallBuilder("1795735734.546", number=raw, withheld=presentation_withheld)
    built.end(START + 5, Outcome.ABANDONED)
    helpdesk.calls.apply(built.events)
    call = only_call(helpdesk)
    assert call["caller_number"] is None
    assert call["caller_withheld"] is True
    assert call["caller_number_raw"] == raw


@every_backend
def test_callback_that_failed_names_its_agreement(helpdesk: Store) -> None:
    agreement = helpdesk.agreements.add_agreement("callback", callback_number="0478554433")
    t = START
    built = CallBuilder(
        "1795735559.382",
        direction=Direction.OUTBOUND,
        number="0478554433",
        name="Terugbelverzoek",
        dialled="0478554433",
        at=t,
    )
    built.call = replace(
        built.call, agreement_id=str(agreement), originate_action_id="callback-busy"
    )
    built.events = [CallStarted(built.call)]
    built.ring(ANNA, t).answer(ANNA, t + 2)
    built.ring("Local/0478554433@pstn-out", t + 2.1).ring_end(
        "Local/0478554433@pstn-out", t + 3, RingResult.BUSY
    )
    built.end(t + 3.1, Outcome.FAILED, hung_up_by=HungUpBy.SYSTEM, cause=17)
    helpdesk.calls.apply(built.events)
    call = only_call(helpdesk)
    assert call["direction"] == "outbound"
    assert call["outcome"] == "failed"
    assert call["agreement_id"] == agreement
    assert call["agreement_ref"] == str(agreement)
    assert call["hangup_cause"] == 17
    assert call["rings"][-1]["result"] == "busy"


@every_backend
def test_unknown_agreement_reference_is_kept_but_not_linked(helpdesk: Store) -> None:
    built = queue_call_answered()
    events = [replace(e, call=replace(e.call, agreement_id="99999")) for e in built.events]
    helpdesk.calls.apply(events)
    call = only_call(helpdesk)
    assert (call["agreement_id"], call["agreement_ref"]) == (None, "99999")


@every_backend
def test_caller_is_matched_to_a_customer(helpdesk: Store) -> None:
    customer = helpdesk.customers.add_customer("Bakkerij Peeters", numbers=["050 12 34 56"])
    helpdesk.calls.apply(queue_call_answered().events)
    assert only_call(helpdesk)["customer_id"] == customer


@every_backend
def test_operators_are_resolved_when_the_record_is_written(helpdesk: Store) -> None:
    helpdesk.calls.apply(queue_call_answered("first").events)
    helpdesk.accounts.bind_device("bart", ANNA)  # Anna's phone goes to Bart afterwards
    helpdesk.calls.apply(queue_call_answered("second", at=START + 100).events)
    second, first = helpdesk.queries.list_calls()
    assert first["answered_by"] == "anna"
    assert second["answered_by"] == "bart"


@every_backend
def test_device_without_operator_is_shown_as_device(store: Store) -> None:
    store.calls.apply(queue_call_answered().events)
    call = only_call(store)
    assert call["rang"] == [BART, ANNA]
    assert call["answered_by"] == ANNA


@every_backend
def test_hostile_caller_id_is_stored_verbatim_and_safely(helpdesk: Store) -> None:
    name = "<script>alert(1)</script>'; DROP TABLE calls;--\r\nEvent: Hangup\x00\ud800" + "x" * 600
    built = CallBuilder("1795735733.534", number="'); DELETE FROM calls; --", name=name)
    built.end(START + 3, Outcome.ABANDONED)
    helpdesk.calls.apply(built.events)
    call = only_call(helpdesk)
    assert call["caller_name"].startswith("<script>alert(1)</script>'; DROP TABLE calls;--\r\n")
    assert "\x00" not in call["caller_name"]
    assert len(call["caller_name"]) == 512
    assert call["caller_number"] is None
    assert call["caller_number_raw"] == "'); DELETE FROM calls; --"


# --- idempotency -----------------------------------------------------------------------


@every_backend
def test_replaying_the_same_events_changes_nothing(helpdesk: Store) -> None:
    events = queue_call_answered().events
    helpdesk.calls.apply(events)
    first = only_call(helpdesk)
    rows = counts(helpdesk)
    assert helpdesk.calls.apply(events) == 0
    assert helpdesk.calls.apply(events + events) == 0
    assert only_call(helpdesk) == first  # updated_at included: nothing was touched
    assert (
        counts(helpdesk)
        == rows
        == {
            "calls": 1,
            "call_rings": 2,
            "call_segments": 1,
            "call_transfers": 0,
        }
    )


@every_backend
def test_one_batch_holding_a_call_twice(helpdesk: Store) -> None:
    events = queue_call_answered().events
    helpdesk.calls.apply(events + events)
    assert counts(helpdesk)["call_rings"] == 2
    assert only_call(helpdesk)["outcome"] == "answered"


@every_backend
def test_events_in_any_order_give_the_same_record(helpdesk: Store) -> None:
    helpdesk.calls.apply(queue_call_answered("in-order").events)
    expected = without_identity(only_call(helpdesk))
    shuffle = random.Random(1234)
    for n in range(12):
        events = list(queue_call_answered(f"shuffled-{n}").events)
        shuffle.shuffle(events)
        helpdesk.calls.apply(events[:3])
        helpdesk.calls.apply(events[3:])
    reversed_events = list(reversed(queue_call_answered("reversed").events))
    for event in reversed_events:
        helpdesk.calls.apply([event])
    calls = helpdesk.queries.list_calls(limit=100)
    assert len(calls) == 14
    for call in calls:
        assert without_identity(call) == expected, call["linkedid"]


@every_backend
def test_an_ended_call_is_not_reopened_by_a_late_event(helpdesk: Store) -> None:
    built = queue_call_answered()
    helpdesk.calls.apply(built.events)
    ended = only_call(helpdesk)
    late_ring = built.events[1]
    assert isinstance(late_ring, OperatorRinging)
    helpdesk.calls.apply([built.events[0], late_ring])
    rejoin = CallStarted(replace(built.events[0].call, complete=False, started_at=START + 30))
    helpdesk.calls.apply([rejoin])
    after = only_call(helpdesk)
    assert after["ended_at"] == ended["ended_at"]
    assert after["outcome"] == "answered"
    assert after["rings"] == ended["rings"]
    assert after["started_at"] == ended["started_at"]  # the earliest start stays
    assert after["complete"] is False  # it did receive a snapshot of an incomplete call


@every_backend
def test_an_estimated_end_is_stored_as_such_and_gives_way_only_to_a_seen_one(
    helpdesk: Store,
) -> None:
    """An end a resync estimated stays until an end that was seen arrives (the PBX's CDR
    read after the resync, a spool replayed from the run that saw it): that one replaces
    it; another estimate never replaces an end, seen or estimated. The record stays
    ``complete: false`` (not all of it was watched)."""
    built = queue_call_answered()
    *during, ended = built.events
    assert isinstance(ended, CallEnded)
    assert ended.call.ended_at is not None
    later = ended.call.ended_at + 30.0
    estimated = replace(ended.call, complete=False, ended_at_approximate=True, ended_at=later)
    helpdesk.calls.apply([*during, CallEnded(estimated)])
    call = only_call(helpdesk)
    assert (call["ended_at_approximate"], call["complete"]) == (True, False)
    helpdesk.calls.apply([CallEnded(replace(estimated, ended_at=later + 9))])
    assert only_call(helpdesk)["ended_at"] == call["ended_at"]  # an estimate stays put
    helpdesk.calls.apply(built.events)  # what was seen, replayed
    seen = only_call(helpdesk)
    assert (seen["ended_at_approximate"], seen["complete"]) == (False, False)
    assert seen["ended_at"] < call["ended_at"] and seen["talk_seconds"] < call["talk_seconds"]
    helpdesk.calls.apply([CallEnded(estimated)])
    assert only_call(helpdesk)["ended_at"] == seen["ended_at"]


@every_backend
def test_reconnect_mid_call_continues_the_same_record(helpdesk: Store) -> None:
    """The daemon restarts during a call: the new model joins it half-way with a second
    CallStarted (complete=False) and its own estimate of when the talk started."""
    t = START
    before = CallBuilder("1795735600.400", at=t).join_queue("support", t + 1)
    before.ring(ANNA, t + 1.5, queue="support").answer(ANNA, t + 3)
    helpdesk.calls.apply(before.events)
    answered = before.call
    ring = answered.rings[0]
    segment = answered.segments[0]
    rejoined = replace(
        answered,
        complete=False,
        started_at=t + 40,  # resync only knows the channels' age, roughly
        queue=None,
        queues=(),
        queue_joined_at=None,
        answered_at=t + 40,
        rings=(replace(ring, started_at=t + 40),),
        segments=(replace(segment, started_at=t + 40),),
    )
    ended = replace(
        rejoined,
        ended_at=t + 90,
        outcome=Outcome.ANSWERED,
        hung_up_by=HungUpBy.OPERATOR,
        segments=(replace(segment, started_at=t + 40, ended_at=t + 90),),
    )
    helpdesk.calls.apply([CallStarted(rejoined), CallEnded(ended)])
    call = only_call(helpdesk)
    assert counts(helpdesk) == {
        "calls": 1,
        "call_rings": 1,
        "call_segments": 1,
        "call_transfers": 0,
    }
    assert call["complete"] is False
    assert call["queue"] == "support"
    assert call["answered_at"] == "2026-11-26T23:23:06.000Z"  # the first answer stands
    assert call["wait_seconds"] == 2.0
    assert call["talk_seconds"] == 87.0
    assert call["segments"][0]["started_at"] == "2026-11-26T23:23:06.000Z"
    assert call["segments"][0]["ended_at"] == "2026-11-26T23:24:33.000Z"


@every_backend
def test_operator_fields_survive_the_model_updates(helpdesk: Store) -> None:
    built = queue_call_answered()
    helpdesk.calls.apply(built.events[:4])
    call_id = only_call(helpdesk)["id"]
    helpdesk.queries.patch_call(
        call_id, notes="printer jams", category="printer", disposition="solved"
    )
    helpdesk.calls.apply(built.events)  # the rest of the call, and a replay
    call = helpdesk.queries.get_call(call_id)
    assert call["outcome"] == "answered"
    assert (call["notes"], call["category"], call["disposition"]) == (
        "printer jams",
        "printer",
        "solved",
    )


@every_backend
def test_two_writers_racing_on_one_call_make_one_record(helpdesk: Store) -> None:
    """Two nodes (or lanes) writing the same call at the same moment."""
    events = queue_call_answered().events
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            barrier.wait(timeout=10)
            helpdesk.calls.apply(events)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert counts(helpdesk) == {
        "calls": 1,
        "call_rings": 2,
        "call_segments": 1,
        "call_transfers": 0,
    }


@every_backend
def test_close_stale_closes_calls_that_ended_unseen(helpdesk: Store) -> None:
    t = START
    gone = CallBuilder("gone", at=t).join_queue("support", t + 1)
    gone.ring(ANNA, t + 1.5, queue="support")
    alive = CallBuilder("alive", at=t).join_queue("support", t + 1)
    talked = CallBuilder("talked", at=t).join_queue("support", t + 1)
    talked.ring(BART, t + 2, queue="support").answer(BART, t + 3)
    later = CallBuilder("later", at=t + 500)
    helpdesk.calls.apply(gone.events + alive.events + talked.events + later.events)
    closed = helpdesk.calls.close_stale("main", {"alive"}, at=t + 300)
    assert closed == 2
    calls = {c["linkedid"]: c for c in helpdesk.queries.list_calls()}
    assert calls["gone"]["outcome"] == "abandoned"
    assert calls["gone"]["complete"] is False
    assert calls["gone"]["hung_up_by"] == "system"
    assert calls["gone"]["ended_at_approximate"] is True
    assert calls["talked"]["outcome"] == "answered"
    assert calls["talked"]["ended_at_approximate"] is True
    assert calls["talked"]["talk_seconds"] == 297.0
    assert calls["alive"]["ended_at"] is None
    assert calls["later"]["ended_at"] is None  # started after the resync
    assert helpdesk.calls.close_stale("main", {"alive"}, at=t + 300) == 0


# --- a batch merges only the newest snapshot of a call, with the same result -----------


def test_in_order_snapshots_collapse_into_the_newest() -> None:
    built = queue_call_answered()
    snapshots = [effective(event) for event in built.events]
    assert newest_alone(snapshots)
    assert group(built.events) == {("main", "1795735383.330"): snapshots}


def test_snapshots_that_know_something_the_newest_does_not_are_all_merged() -> None:
    built = queue_call_answered()
    started, *_, ended = [effective(event) for event in built.events]
    ringing = effective(built.events[1])
    assert not newest_alone([ended, ringing])  # a late ring after the end
    rejoined = replace(ended, started_at=START + 30, complete=False)
    assert not newest_alone([started, rejoined])  # a reconnect's later start
    renamed = replace(ended, caller_name="Jan Peeters (VIP)")
    assert not newest_alone([started, renamed])  # the caller ID changed mid-call
    forgot_queue = replace(ended, queue=None, queues=())
    assert not newest_alone([ringing, forgot_queue])  # a resync knows less


def test_segments_fit_asks_the_record_when_overlap_decides() -> None:
    ended = effective(queue_call_answered().events[-1])
    (segment,) = ended.segments
    start = datetime.fromtimestamp(segment.started_at, UTC)
    assert segments_fit([], ended)
    assert segments_fit([(segment.channel, start)], ended)
    assert segments_fit([("PJSIP/other-1", start + timedelta(seconds=9))], ended)
    assert not segments_fit([(segment.channel, start + timedelta(seconds=40))], ended)


DEVICES = (ANNA, BART, "Local/2001@internal")
QUEUES = ("support", "sales")
_serial = itertools.count()


@st.composite
def call_events(draw: st.DrawFn) -> list[DomainEvent]:
    """A call as the model would report it, then disordered the ways the store meets it:
    reordering, replays, a reconnect's second CallStarted, a caller ID changing."""
    t = START + draw(st.integers(0, 10_000))
    number = draw(st.sampled_from(["+3250123456", "050123456", "anonymous", None]))
    built = CallBuilder(f"prop-{next(_serial)}", number=number, at=t)
    if draw(st.booleans()):
        built.join_queue("support", t + 1)
    now = t + 1
    actions = st.sampled_from(["ring", "answer", "ring_end", "transfer", "leave", "queue"])
    for action in draw(st.lists(actions, max_size=8)):
        now += draw(st.sampled_from([0.0, 0.25, 3.0]))
        device = draw(st.sampled_from(DEVICES))
        rang = any(r.device == device for r in built.call.rings)
        if action == "ring":
            built.ring(device, now, queue=built.call.queue)
        elif action == "answer" and rang:
            built.answer(device, now)
        elif action == "ring_end" and rang:
            built.ring_end(device, now, draw(st.sampled_from(list(RingResult))))
        elif action == "transfer":
            target = draw(st.sampled_from(["2001", *DEVICES, None]))
            kind = draw(st.sampled_from(list(TransferKind)))
            built.transfer(kind, now - draw(st.sampled_from([0.0, 3.0])), device, target)
        elif action == "leave":
            built.leave(device, now)
        elif (
            action == "queue" and (queue := draw(st.sampled_from(QUEUES))) not in built.call.queues
        ):
            built.join_queue(queue, now)  # the model lists a queue once
    if draw(st.booleans()):
        built.end(now + 1, draw(st.sampled_from(list(Outcome))))
    events = list(built.events)
    if draw(st.booleans()):
        renamed_from = draw(st.integers(0, len(events) - 1))
        events[renamed_from:] = [
            replace(e, call=replace(e.call, caller_name="Jan Peeters (VIP)"))
            for e in events[renamed_from:]
        ]
    if draw(st.booleans()):
        seen = draw(st.sampled_from(events)).call
        events.insert(
            draw(st.integers(0, len(events))),
            CallStarted(replace(seen, complete=False, started_at=seen.started_at + 40)),
        )
    for _ in range(draw(st.integers(0, 2))):
        events.append(draw(st.sampled_from(events)))  # a replay of something seen
    if draw(st.booleans()):
        events = draw(st.permutations(events))
    return events


def record_rows(store: Store, pbx: str) -> list[Any]:
    """Everything the store wrote for ``pbx``'s calls, ids left out."""
    result: list[Any] = []
    with store.engine.connect() as connection:
        calls = connection.execute(
            select(CallRecord.__table__).where(CallRecord.pbx == pbx).order_by(CallRecord.linkedid)
        ).all()
        for call in calls:
            values = call._asdict()
            result.append({k: v for k, v in values.items() if k not in ("id", "pbx")})
            for model, order in (
                (CallRing, CallRing.started_at),
                (CallSegment, CallSegment.started_at),
                (CallTransfer, CallTransfer.at),
            ):
                children = connection.execute(
                    select(model.__table__)
                    .where(model.call_id == values["id"])
                    .order_by(order, model.id)
                ).all()
                result.append(
                    [
                        {k: v for k, v in c._asdict().items() if k not in ("id", "call_id")}
                        for c in children
                    ]
                )
    return result


def on_pbx(events: list[DomainEvent], pbx: str) -> list[DomainEvent]:
    return [replace(e, call=replace(e.call, pbx=pbx)) for e in events]


def test_a_batch_gives_the_rows_of_one_event_at_a_time(helpdesk: Store) -> None:
    """Compaction (only the newest snapshot per call and batch) is invisible: whatever
    the order, replays or reconnects, batches give exactly the rows that writing every
    event in its own transaction gives. (Hypothesis runs inside the test, not around
    it: pytest-twisted wraps test functions, which ``@given`` on a test does not survive.)
    """

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(calls=st.lists(call_events(), min_size=1, max_size=3), data=st.data())
    def check(calls: list[list[DomainEvent]], data: st.DataObject) -> None:
        serial = next(_serial)
        stream = [event for events in calls for event in events]
        if data.draw(st.booleans()):
            stream = data.draw(st.permutations(stream))
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=3)))
        batched, single = f"batch-{serial}", f"single-{serial}"
        for start, end in itertools.pairwise([0, *cuts, len(stream)]):
            helpdesk.calls.apply(on_pbx(stream[start:end], batched))
        for event in on_pbx(stream, single):
            helpdesk.calls.apply([event])
        assert record_rows(helpdesk, batched) == record_rows(helpdesk, single)

    check()


@dataclass(frozen=True)
class RingingCall:
    """What ``CallStore.ensure_call`` takes (a ``NewCall``; the pop hands its request)."""

    pbx: str
    linkedid: str
    direction: str = "inbound"
    started_at: float = START
    caller_withheld: bool = False
    complete: bool = True


@every_backend
def test_ensure_call_makes_the_row_once_and_the_writer_merges_into_it(helpdesk: Store) -> None:
    store = helpdesk
    call = queue_call_answered("ensure.1")
    made = store.calls.ensure_call(RingingCall("main", "ensure.1"))
    assert made is not None
    assert store.calls.ensure_call(RingingCall("main", "ensure.1"), 0.05) == made
    assert store.pop_read.ensure_call(RingingCall("main", "ensure.1")) == made
    bare = store.queries.get_call(made)
    assert (bare["started_at"], bare["ended_at"], bare["rang"]) == (
        "2026-11-26T23:23:03.000Z",
        None,
        [],
    )
    store.calls.apply(call.events)
    record = store.queries.find_call("main", "ensure.1")
    assert record is not None and record["id"] == made
    assert record["answered_by"] == "anna" and record["outcome"] == "answered"
    assert counts(store)["calls"] == 1
    # The writer first: the row is found, not made again.
    later = CallBuilder("ensure.2").ring("Local/1001@agents", START + 1)
    store.calls.apply(later.events)
    found = store.calls.ensure_call(RingingCall("main", "ensure.2"))
    assert found == store.queries.find_call("main", "ensure.2")["id"]  # type: ignore[index]
    assert counts(store)["calls"] == 2
