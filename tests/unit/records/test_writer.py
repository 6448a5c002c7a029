"""RecordWriter: ordering, batching, back-off, outages, bounded memory.

The reactor side is driven with ``twisted.internet.task.Clock`` and a runner the test
controls (work runs in the test thread when the test says so), so nothing sleeps and
no global reactor is touched. The database outages are real: a locked SQLite file and
a PostgreSQL database that refuses connections.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from structlog.testing import capture_logs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from cti_bridge.calls.events import DomainEvent, Outcome
from cti_bridge.records.writer import RecordWriter
from cti_bridge.store import CallStore, Store
from cti_bridge.store.db import create_database_engine, session_factory
from cti_bridge.store.models import CallRecord, CallRing, CallSegment
from cti_bridge.testing.store import (
    START,
    CallBuilder,
    queue_call_answered,
    set_connections_allowed,
)

pytest_plugins = ["cti_bridge.testing.store_fixtures"]


class NoJitter(random.Random):
    def random(self) -> float:
        return 1.0  # the full delay, so the test knows it


class HeldRunner:
    """Work waits until the test releases it, like a busy thread pool."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Callable[[], int], Deferred[int]]] = []

    def __call__(self, work: Callable[[], int]) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        self.waiting.append((work, d))
        return d

    def release(self, index: int = 0) -> None:
        work, d = self.waiting.pop(index)
        try:
            result = work()
        except Exception:
            d.errback(Failure())
        else:
            d.callback(result)

    def release_all(self) -> None:
        while self.waiting:
            self.release()


def run_now(work: Callable[[], int]) -> Deferred[int]:
    """Runs the work at once, in the test thread."""
    try:
        return succeed(work())
    except Exception:
        return fail(Failure())


@dataclass
class RecordingSink:
    """Remembers every batch; can be told to fail."""

    batches: list[list[DomainEvent]] = field(default_factory=list)
    closes: list[tuple[str, frozenset[str], float]] = field(default_factory=list)
    outage: int = 0  # how many more calls fail as if the database were gone
    refuse: Callable[[DomainEvent], bool] = lambda event: False

    def apply(
        self, events: Sequence[DomainEvent], *, fences: Mapping[str, int] | None = None
    ) -> int:
        if self.outage:
            self.outage -= 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))
        if any(self.refuse(e) for e in events):
            raise IntegrityError("INSERT", {}, ValueError("value too long"))
        self.batches.append(list(events))
        return len(events)

    def close_stale(
        self,
        pbx: str,
        live_linkedids: Collection[str],
        at: float,
        *,
        owns: Callable[[tuple[str, str]], bool] | None = None,
        fence: int | None = None,
    ) -> int:
        self.closes.append((pbx, frozenset(live_linkedids), at))
        return 0

    @property
    def events(self) -> list[DomainEvent]:
        return [e for batch in self.batches for e in batch]


def calls(n: int, prefix: str = "call") -> list[list[DomainEvent]]:
    return [queue_call_answered(f"{prefix}-{i}", at=START + i).events for i in range(n)]


def interleaved(per_call: list[list[DomainEvent]]) -> list[DomainEvent]:
    out: list[DomainEvent] = []
    longest = max(len(events) for events in per_call)
    for i in range(longest):
        out += [events[i] for events in per_call if i < len(events)]
    return out


# --- the reactor side, with a twin sink ------------------------------------------------


def test_submit_only_queues_and_batches_while_a_write_is_in_flight() -> None:
    sink, runner, clock = RecordingSink(), HeldRunner(), Clock()
    writer = RecordWriter(sink, clock, runner)
    events = queue_call_answered().events
    writer.submit(events[0])
    assert len(runner.waiting) == 1  # started at once, but not run: the pool is busy
    for event in events[1:]:
        writer.submit(event)
    assert len(runner.waiting) == 1  # one batch in flight per lane
    assert writer.status()["pending"] == len(events)
    runner.release()
    assert len(runner.waiting) == 1
    runner.release()
    assert [len(b) for b in sink.batches] == [1, len(events) - 1]
    assert sink.events == events
    status = writer.status()
    assert (status["status"], status["pending"], status["written"], status["batches"]) == (
        "ok",
        0,
        len(events),
        2,
    )


def test_batches_are_bounded() -> None:
    sink, runner = RecordingSink(), HeldRunner()
    writer = RecordWriter(sink, Clock(), runner, max_batch=4)
    for event in interleaved(calls(3)):
        writer.submit(event)
    runner.release_all()
    assert [len(b) for b in sink.batches] == [1, 4, 4, 4, 4, 4]


@pytest.mark.parametrize("lanes", [1, 3])
def test_each_call_keeps_its_order(lanes: int) -> None:
    sink, runner = RecordingSink(), HeldRunner()
    writer = RecordWriter(sink, Clock(), runner, lanes=lanes, max_batch=3)
    per_call = calls(12)
    for event in interleaved(per_call):
        writer.submit(event)
    assert len(runner.waiting) == lanes  # one batch in flight per lane, lanes in parallel
    shuffle = random.Random(7)
    while runner.waiting:  # lanes finish in any order
        runner.release(shuffle.randrange(len(runner.waiting)))
    assert len(sink.events) == sum(len(e) for e in per_call)
    for events in per_call:
        key = events[0].call.linkedid
        assert [e for e in sink.events if e.call.linkedid == key] == events


def test_flush_waits_until_everything_is_written() -> None:
    sink, runner = RecordingSink(), HeldRunner()
    writer = RecordWriter(sink, Clock(), runner)
    assert writer.flush().called  # nothing pending
    for event in queue_call_answered().events:
        writer.submit(event)
    flushed = writer.flush()
    assert not flushed.called
    runner.release()
    assert not flushed.called
    runner.release()
    assert flushed.called


def test_an_outage_keeps_the_events_and_retries_with_capped_backoff() -> None:
    sink, clock = RecordingSink(outage=7), Clock()
    writer = RecordWriter(sink, clock, run_now, initial_delay=0.5, max_delay=4.0, jitter=NoJitter())
    events = queue_call_answered().events
    clock.advance(10)
    with capture_logs() as logs:
        for event in events:
            writer.submit(event)
    status = writer.status()
    assert status["status"] == "degraded"
    assert status["pending"] == len(events)
    assert status["degraded_since"] == "1970-01-01T00:00:10.000Z"
    assert "connection refused" in status["last_error"]
    assert any(log["log_level"] == "error" for log in logs)
    delays = []
    while sink.outage:
        (retry,) = clock.getDelayedCalls()
        delays.append(retry.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # doubling, capped
    (retry,) = clock.getDelayedCalls()
    clock.advance(retry.getTime() - clock.seconds())
    assert sink.events == events  # all of them, once, in order
    status = writer.status()
    assert (status["status"], status["pending"], status["retries"]) == ("ok", 0, 7)
    assert status["degraded_since"] is None
    assert not clock.getDelayedCalls()


def test_jitter_spreads_the_retries() -> None:
    sink, clock = RecordingSink(outage=1), Clock()
    writer = RecordWriter(sink, clock, run_now, initial_delay=2.0, jitter=random.Random(3))
    writer.submit(queue_call_answered().events[0])
    (retry,) = clock.getDelayedCalls()
    assert 1.0 <= retry.getTime() <= 2.0


def test_a_refused_event_is_set_aside_and_the_rest_written() -> None:
    poison = queue_call_answered("poison").events[2]
    sink = RecordingSink(refuse=lambda event: event is poison)
    runner = HeldRunner()
    writer = RecordWriter(sink, Clock(), runner)
    good = calls(2)
    writer.submit(good[0][0])
    for event in [*good[0][1:], *queue_call_answered("poison").events[:2], poison, *good[1]]:
        writer.submit(event)
    with capture_logs() as logs:
        runner.release_all()
    written = sink.events
    assert poison not in written
    assert len(written) == sum(len(e) for e in good) + 2
    assert writer.status()["failed"] == 1
    assert writer.status()["status"] == "ok"  # the database is fine; one event was bad
    refused = [log for log in logs if log["event"].startswith("database refused a call record")]
    assert refused[0]["linkedid"] == "poison"
    # after the bad one, batching resumes
    writer.submit(good[0][0])
    runner.release_all()
    assert len(sink.batches[-1]) == 1


def test_a_full_backlog_compacts_then_refuses_loudly() -> None:
    sink, runner = RecordingSink(), HeldRunner()
    writer = RecordWriter(sink, Clock(), runner, max_pending=10)
    first = queue_call_answered("first").events  # 7 events
    for event in first:
        writer.submit(event)  # 1 in flight, 6 queued
    second = queue_call_answered("second").events
    for event in second:
        writer.submit(event)  # compaction keeps the newest snapshot per call
    assert writer.status()["dropped"] == 0
    assert writer.status()["pending"] <= 10
    with capture_logs() as logs:
        for n in range(20):
            writer.submit(queue_call_answered(f"extra-{n}").events[0])
    status = writer.status()
    assert status["dropped"] > 0
    assert status["backlog_full"] is True
    assert status["status"] == "degraded"
    assert [log["event"] for log in logs if log["log_level"] == "error"] == [
        "call record backlog full: events are being dropped"
    ]  # once, not once per event
    runner.release_all()
    # The newest snapshot of each compacted call still made it: records end complete.
    last_of = {e.call.linkedid: e for e in sink.events}
    assert last_of["first"] == first[-1]
    assert last_of["second"] == second[-1]
    assert writer.status()["backlog_full"] is False


def test_resync_marker_runs_after_the_events_before_it() -> None:
    sink, runner = RecordingSink(), HeldRunner()
    writer = RecordWriter(sink, Clock(), runner, lanes=2)
    per_call = calls(4)
    for event in interleaved(per_call):
        writer.submit(event)
    writer.resynced("main", ["call-1"], START + 100)
    runner.release_all()
    assert len(sink.closes) == 2  # once per lane
    assert sink.events[-1].call.linkedid == "call-3"
    assert len(sink.events) == sum(len(events) for events in per_call)
    assert sink.closes[0] == ("main", frozenset({"call-1"}), START + 100)


def test_stop_gives_the_backlog_a_deadline() -> None:
    sink, clock = RecordingSink(outage=1000), Clock()
    writer = RecordWriter(sink, clock, run_now, initial_delay=1.0, max_delay=1.0)
    writer.submit(queue_call_answered().events[0])
    with capture_logs() as logs:
        stopped = writer.stop(timeout=5.0)
        assert not stopped.called
        clock.advance(1.0)
        clock.advance(1.0)
        clock.advance(3.0)
    assert stopped.called
    assert any(log["event"] == "record writer stopped with events unwritten" for log in logs)
    assert not clock.getDelayedCalls()  # no retry left behind
    attempts_left = sink.outage
    clock.advance(60)
    assert sink.outage == attempts_left  # nothing is tried after the deadline
    writer.submit(queue_call_answered().events[1])
    assert writer.status()["dropped"] == 1


# --- real databases --------------------------------------------------------------------


def record_counts(store: Store) -> tuple[int, int, int]:
    with store.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(CallRecord)) or 0,
            session.scalar(select(func.count()).select_from(CallRing)) or 0,
            session.scalar(select(func.count()).select_from(CallSegment)) or 0,
        )


class CommitsThenFails:
    """The commit happened but the answer got lost: the writer will write it again."""

    def __init__(self, store: CallStore) -> None:
        self.store = store
        self.lost = 1

    def apply(
        self, events: Sequence[DomainEvent], *, fences: Mapping[str, int] | None = None
    ) -> int:
        changed = self.store.apply(events, fences=fences)
        if self.lost:
            self.lost -= 1
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset"))
        return changed

    def close_stale(self, *args: object, **kwargs: object) -> int:
        return self.store.close_stale(*args, **kwargs)  # type: ignore[arg-type]


def test_a_write_whose_answer_was_lost_is_not_duplicated(store: Store) -> None:
    clock = Clock()
    writer = RecordWriter(CommitsThenFails(store.calls), clock, run_now, jitter=NoJitter())
    for event in interleaved(calls(3)):
        writer.submit(event)
    assert writer.status()["status"] == "degraded"
    clock.advance(0.5)
    assert writer.status()["status"] == "ok"
    assert record_counts(store) == (3, 6, 3)
    assert {c["outcome"] for c in store.queries.list_calls()} == {"answered"}


@pytest.mark.postgres
@pytest.mark.parametrize("store_db", ["postgresql"], indirect=True)
def test_postgresql_outage_loses_and_duplicates_nothing(store: Store, store_url: str) -> None:
    assert store_url.startswith("postgresql")
    clock = Clock()
    writer = RecordWriter(store.calls, clock, run_now, max_batch=5, jitter=NoJitter())
    per_call = calls(6)
    stream = interleaved(per_call)
    for event in stream[:10]:
        writer.submit(event)
    assert record_counts(store)[0] == 6
    set_connections_allowed(store_url, False)
    try:
        for event in stream[10:]:
            writer.submit(event)
        status = writer.status()
        assert status["status"] == "degraded"
        assert status["pending"] == len(stream) - 10
        clock.advance(0.5)
        clock.advance(1.0)  # still down: retried twice more
        assert writer.status()["pending"] == len(stream) - 10
        assert writer.status()["retries"] == 3
    finally:
        set_connections_allowed(store_url, True)
    clock.advance(2.0)
    assert writer.status()["status"] == "ok"
    assert writer.status()["pending"] == 0
    assert writer.status()["written"] == len(stream)
    assert record_counts(store) == (6, 12, 6)
    assert {c["outcome"] for c in store.queries.list_calls()} == {"answered"}


def test_sqlite_locked_database_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    from cti_bridge.store.schema import upgrade

    url = f"sqlite:///{tmp_path / 'locked.sqlite3'}"
    upgrade(url)
    engine = create_database_engine(url, sqlite_busy_timeout=0.05)
    calls_store = CallStore(session_factory(engine))
    clock = Clock()
    writer = RecordWriter(calls_store, clock, run_now, jitter=NoJitter())
    built = CallBuilder("locked-1").join_queue("support", START + 1)
    built.ring("Local/1001@agents", START + 2).answer("Local/1001@agents", START + 3)
    writer.submit(built.events[0])
    other = sqlite3.connect(make_url(url).database or "", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        for event in built.end(START + 30, Outcome.ANSWERED).events[1:]:
            writer.submit(event)
        status = writer.status()
        assert status["status"] == "degraded"
        assert "locked" in status["last_error"]
        assert status["pending"] == len(built.events) - 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    clock.advance(0.5)
    assert writer.status()["status"] == "ok"
    with session_factory(engine)() as session:
        row = session.scalars(select(CallRecord)).one()
        assert row.outcome == "answered"
        assert len(row.rings) == 1 and len(row.segments) == 1
    engine.dispose()
