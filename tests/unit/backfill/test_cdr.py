"""Calls from CDR rows: rows as Asterisk 22's cdr_pgsql wrote them here (a queue call
that an operator answered, a ringall member rung in vain, the simulated caller's own
Local half), and the reader on a SQLite table with both kinds of time columns."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from cti_bridge.backfill.cdr import calls_from_cdr
from cti_bridge.backfill.reader import CdrReader
from cti_bridge.calls.devices import Topology
from cti_bridge.calls.events import Direction, Outcome, QueueResult, RingResult

T = 1_796_345_276.0
LINKEDID = "1796345276.1"


def row(**values: Any) -> dict[str, Any]:
    base = {"linkedid": LINKEDID, "src": "0485000601", "clid": '"Klant \\"B\\"" <0485000601>'}
    return {**base, **values}


#: The queue call: caller Local;1 in from-pstn -> Queue(support); 1002 rang in vain,
#: 1001 answered (its Local;2 half answered 1 s later); the caller's own Local;2.
ANSWERED = [
    row(uniqueid=LINKEDID, sequence=2, channel="Local/hold6@sim-caller-00000001;1",
        dstchannel="Local/1002@agents-00000002;1", dst="3200", dcontext="from-pstn",
        lastapp="Queue", lastdata="support,t,,,60", disposition="NO ANSWER",
        start=T, answer=T + 0.001, end=T + 1.0),
    row(uniqueid="1796345276.3", sequence=3, channel="Local/hold6@sim-caller-00000001;2",
        dstchannel=None, dst="hold6", dcontext="sim-caller", lastapp="Answer",
        disposition="ANSWERED", start=T, answer=T + 0.001, end=T + 4.0),
    row(uniqueid=LINKEDID, sequence=8, channel="Local/hold6@sim-caller-00000001;1",
        dstchannel="Local/1001@agents-00000003;1", dst="3200", dcontext="from-pstn",
        lastapp="Queue", lastdata="support,t,,,60", disposition="ANSWERED",
        start=T, answer=T + 0.001, end=T + 4.0),
    row(uniqueid="1796345276.6", sequence=9, channel="Local/1001@agents-00000003;2",
        dstchannel=None, dst="1001", dcontext="agents", lastapp="Wait",
        disposition="ANSWERED", start=T + 0.002, answer=T + 1.0, end=T + 4.0),
]  # fmt: skip

TOPOLOGY = Topology(inbound_contexts=("from-pstn",))


def test_a_queue_call_answered_by_an_operator() -> None:
    (call,) = calls_from_cdr("main", reversed(ANSWERED), TOPOLOGY, ended_before=T + 10)
    assert (call.pbx, call.linkedid, call.direction) == ("main", LINKEDID, Direction.INBOUND)
    assert (call.caller_number_raw, call.caller_name, call.dialled) == (
        "0485000601",
        'Klant "B"',
        "3200",
    )
    assert (call.queue, call.outcome, call.queue_result) == (
        "support",
        Outcome.ANSWERED,
        QueueResult.ANSWERED,
    )
    assert [(r.device, r.result) for r in call.rings] == [
        ("Local/1002@agents", RingResult.NO_ANSWER),
        ("Local/1001@agents", RingResult.ANSWERED),
    ]
    # The member's answer from its Local half, not the caller's answer by the dialplan.
    assert call.answered_at == T + 1.0 and call.answered_by == "Local/1001@agents"
    assert (call.started_at, call.ended_at) == (T, T + 4.0)
    assert call.wait_seconds == 1.0 and call.talk_seconds == 3.0
    assert call.complete is False and call.ended_at_approximate is False
    assert len({r.uniqueid for r in call.rings}) == 2  # the store keys rings by it


def test_a_caller_who_left_the_queue_unanswered_is_abandoned() -> None:
    left = [
        row(uniqueid=LINKEDID, sequence=0, channel="Local/hold2@sim-caller-00000000;1",
            dstchannel=None, dst="3200", dcontext="from-pstn", lastapp="Queue",
            lastdata="support,t,,,60", disposition="ANSWERED", start=T, answer=T, end=T + 2),
    ]  # fmt: skip
    (call,) = calls_from_cdr("main", left, TOPOLOGY, ended_before=T + 10)
    assert (call.outcome, call.queue_result, call.answered_at) == (
        Outcome.ABANDONED,
        QueueResult.ABANDONED,
        None,
    )


def test_a_direct_call_that_rang_out_is_missed_and_one_never_put_through_failed() -> None:
    rang = [
        row(uniqueid=LINKEDID, sequence=0, channel="PJSIP/pstn-00000001",
            dstchannel="PJSIP/1001-00000002", dst="1001", dcontext="from-pstn", lastapp="Dial",
            disposition="NO ANSWER", start=T, answer=None, end=T + 30),
    ]  # fmt: skip
    (call,) = calls_from_cdr("main", rang, TOPOLOGY, ended_before=T + 60)
    assert (call.outcome, [r.device for r in call.rings]) == (Outcome.MISSED, ["PJSIP/1001"])
    nowhere = [{**rang[0], "dstchannel": None, "disposition": "FAILED"}]
    (call,) = calls_from_cdr("main", nowhere, TOPOLOGY, ended_before=T + 60)
    assert call.outcome is Outcome.FAILED and call.rings == ()


def test_calls_live_recorded_or_ended_after_the_resync_are_left_out() -> None:
    other = [{**r, "linkedid": "other", "uniqueid": "other"} for r in ANSWERED[:1]]
    rows = ANSWERED + other
    assert [c.linkedid for c in calls_from_cdr("m", rows, TOPOLOGY, ended_before=T + 10)] == [
        LINKEDID,
        "other",
    ]
    assert calls_from_cdr("m", rows, TOPOLOGY, ended_before=T + 3.0)[0].linkedid == "other"
    kept = calls_from_cdr("m", rows, TOPOLOGY, ended_before=T + 10, skip=[LINKEDID])
    assert [c.linkedid for c in kept] == ["other"]
    assert calls_from_cdr("m", [{"linkedid": "x", "start": None, "end": None}], TOPOLOGY,
                          ended_before=T + 10) == []  # fmt: skip


def test_hostile_callerid_text_stays_text() -> None:
    hostile = [{**ANSWERED[0], "clid": '"<script>\\"x\u202e" <0485>', "src": "0485"}]
    (call,) = calls_from_cdr("main", hostile, TOPOLOGY, ended_before=T + 10)
    assert call.caller_name == '<script>"x\u202e'
    (plain,) = calls_from_cdr(
        "main", [{**ANSWERED[0], "clid": "0485"}], TOPOLOGY, ended_before=T + 10
    )
    assert plain.caller_name is None


def test_the_reader_reads_epoch_and_timestamp_columns_as_seconds(tmp_path: Path) -> None:
    for kind, value in (("REAL", T), ("TIMESTAMP", "2026-12-04 00:47:56.000000")):
        url = f"sqlite:///{tmp_path / kind}.db"
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"CREATE TABLE cdr (linkedid TEXT, uniqueid TEXT, src TEXT, start {kind},"
                f' answer {kind}, "end" {kind}, disposition TEXT)'
            )
            connection.exec_driver_sql(
                "INSERT INTO cdr VALUES (?, ?, ?, ?, ?, ?, ?)",
                (LINKEDID, LINKEDID, "0485", value, None, value, "ANSWERED"),
            )
        reader = CdrReader(url, "cdr")
        try:
            (found,) = reader.rows_since(T - 1)
            assert found["start"] == T and found["end"] == T and found["answer"] is None, kind
            assert reader.rows_since(T + 1) == [], kind
        finally:
            reader.close()
    assert datetime.fromtimestamp(T, UTC).strftime("%H:%M:%S") == "00:47:56"


def test_an_operator_dialling_out_through_a_trunk_is_outbound() -> None:
    out = [
        row(uniqueid=LINKEDID, sequence=0, channel="PJSIP/1001-00000004",
            dstchannel="PJSIP/pstn-00000005", dst="0470123456", dcontext="operators",
            lastapp="Dial", disposition="ANSWERED", start=T, answer=T + 5, end=T + 65),
    ]  # fmt: skip
    trunks = Topology(inbound_contexts=("from-pstn",), trunk_devices=("PJSIP/pstn",))
    (call,) = calls_from_cdr("main", out, trunks, ended_before=T + 100)
    assert (call.direction, call.outcome, call.answered_by) == (
        Direction.OUTBOUND,
        Outcome.ANSWERED,
        "PJSIP/pstn",
    )
    assert call.rings[0].outside is True and call.hung_up_by is None
