"""The backfill after a resync, on a real SQLite store with a CDR table beside it: which
calls are read (the window), which are given to the consumers (no record, not live,
ended before the resync), and a read that fails."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import create_engine
from twisted.internet.defer import Deferred, fail, succeed

from cti_bridge.app.config import parse_config
from cti_bridge.backfill.reader import CdrReader
from cti_bridge.backfill.wiring import MARGIN, Backfill
from cti_bridge.calls.events import Call, CallEnded, CallStarted, Direction, DomainEvent, Outcome
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline
from cti_bridge.store import open_store, upgrade

T = 1_796_345_000.0
AT = T + 100.0  # the resync


def cdr(linkedid: str, start: float, end: float) -> tuple[Any, ...]:
    return (linkedid, linkedid, "0485000600", "3200", "from-pstn", "Queue", "support", start, end)


def rig(tmp_path: Path, rows: list[tuple[Any, ...]]) -> tuple[Backfill, list[DomainEvent], Any]:
    url = f"sqlite:///{tmp_path / 'cti.sqlite3'}"
    upgrade(url)
    store = open_store(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE cdr (linkedid TEXT, uniqueid TEXT, src TEXT, dst TEXT, dcontext TEXT,"
            ' lastapp TEXT, lastdata TEXT, start REAL, "end" REAL)'
        )
        connection.exec_driver_sql("INSERT INTO cdr VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    engine.dispose()
    pbx = {"name": "main", "username": "cti", "secret": "s", "cdr_url": url}
    config = parse_config({"pbx": [{**pbx, "cdr_lookback_seconds": 1000}]})
    got: list[DomainEvent] = []
    pipeline = CallPipeline(CallModel("main"), [got.append])

    def run(work: Any) -> Deferred[Any]:
        try:
            return succeed(work())
        except Exception as error:  # as the pool's Deferred would fail
            return fail(error)

    node: Any = SimpleNamespace(run=run, store=store, pipelines={"main": pipeline})
    return Backfill(node, config.pbx[0], CdrReader(url, "cdr")), got, store


def recorded(linkedid: str, started_at: float) -> Call:
    return Call(
        pbx="main",
        linkedid=linkedid,
        direction=Direction.INBOUND,
        started_at=started_at,
        ended_at=started_at + 5,
        outcome=Outcome.ANSWERED,
    )


def test_only_calls_without_a_record_that_ended_before_the_resync_and_are_not_live(
    tmp_path: Path,
) -> None:
    rows = [
        cdr("seen", T + 10, T + 20),  # recorded by the link before it was lost
        cdr("gap", T + 40, T + 60),  # began and ended while no link listened
        cdr("live", T + 50, T + 70),  # still up at the resync (a ring attempt's row)
        cdr("after", T + 90, T + 120),  # ended after the resync: the link saw its end
    ]
    backfill, got, store = rig(tmp_path, rows)
    store.calls.apply([CallEnded(recorded("seen", T + 10))])
    backfill.resynced("other-pbx", set(), AT)
    assert got == []
    backfill.resynced("main", {"live"}, AT)
    assert [(type(e), e.call.linkedid, e.call.complete) for e in got] == [(CallEnded, "gap", False)]
    assert got[0].call.queue == "support" and got[0].call.outcome is Outcome.ABANDONED
    assert backfill.status()["calls_recorded"] == 1 and backfill.status()["error"] is None
    store.calls.apply(got)
    got.clear()
    backfill.resynced("main", {"live"}, AT)  # read again: "gap" has a record now
    assert got == [] and backfill.status()["reads"] == 2
    store.close()


def test_the_window_starts_a_margin_before_the_newest_record(tmp_path: Path) -> None:
    newest = T + 50
    rows = [
        cdr("long-ago", newest - MARGIN - 30, newest - MARGIN - 20),  # before the window
        cdr("in-margin", newest - MARGIN + 5, newest - MARGIN + 15),
    ]
    backfill, got, store = rig(tmp_path, rows)
    store.calls.apply([CallEnded(recorded("newest", newest))])
    backfill.resynced("main", set(), AT)
    assert [e.call.linkedid for e in got] == ["in-margin"]
    store.close()


def test_a_read_that_fails_is_told_and_the_next_resync_reads_again(tmp_path: Path) -> None:
    backfill, got, store = rig(tmp_path, [cdr("gap", T + 40, T + 60)])
    engine = create_engine(f"sqlite:///{tmp_path / 'cti.sqlite3'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE cdr RENAME TO cdr_away")
    backfill.resynced("main", set(), AT)
    assert got == [] and "cdr" in (backfill.status()["error"] or "")
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE cdr_away RENAME TO cdr")
    engine.dispose()
    backfill.resynced("main", set(), AT)
    assert [e.call.linkedid for e in got] == ["gap"] and backfill.status()["error"] is None
    store.close()


def test_an_end_a_resync_estimated_gives_way_to_the_cdrs_and_stays(tmp_path: Path) -> None:
    """The call the lost link saw begin, ended in the gap: the resync closed it at its
    own time (an estimate); the CDR's end replaces it; an estimate never replaces a seen
    end."""
    backfill, got, store = rig(tmp_path, [cdr("cut", T + 10, T + 60)])
    began = recorded("cut", T + 10)
    store.calls.apply([CallStarted(replace(began, ended_at=None, outcome=None))])
    assert store.calls.close_stale("main", set(), AT) == 1
    (closed,) = store.queries.list_calls(limit=5)
    assert closed["ended_at_approximate"] is True
    backfill.resynced("main", set(), AT)
    assert [e.call.linkedid for e in got] == ["cut"]
    store.calls.apply(got)
    (fixed,) = store.queries.list_calls(limit=5)
    assert fixed["ended_at_approximate"] is False and fixed["complete"] is False
    assert datetime.fromisoformat(fixed["ended_at"]).timestamp() == T + 60
    assert fixed["outcome"] == "abandoned"
    guess = replace(began, ended_at=AT + 5, ended_at_approximate=True, outcome=Outcome.FAILED)
    store.calls.apply([CallEnded(guess)])
    (kept,) = store.queries.list_calls(limit=5)
    assert (kept["ended_at"], kept["outcome"]) == (fixed["ended_at"], "abandoned")
    got.clear()
    backfill.resynced("main", set(), AT)  # settled now: not read again
    assert got == []
    store.close()


def test_calls_up_at_the_resync_do_not_narrow_the_window(tmp_path: Path) -> None:
    """The daemon was down for 15 minutes: the call up when it came back (and one begun
    just after) are written at once; the window still starts at the newest call a link
    saw before, not a margin before those."""
    back = T + 900.0  # the resync after the outage
    backfill, got, store = rig(
        tmp_path, [cdr("while-down", T + 20, T + 30), cdr("up-now", back - 10, back - 1)]
    )
    store.calls.apply([CallEnded(recorded("before", T))])
    store.calls.apply([CallStarted(replace(recorded("up-now", back - 10), ended_at=None))])
    store.calls.apply([CallStarted(replace(recorded("after", back + 1), ended_at=None))])
    backfill.resynced("main", {"up-now"}, back)
    assert [e.call.linkedid for e in got] == ["while-down"]
    store.close()
