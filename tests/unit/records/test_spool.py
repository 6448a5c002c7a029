"""The records' spool: lines, torn tails, the limit, failed writes, and the writer on it.

File work is real (a temporary directory; a tiny tmpfs for the real disk-full case);
the reactor side runs on ``twisted.internet.task.Clock`` with file work done at once in
the test thread, so nothing sleeps.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from cti_bridge.calls.events import (
    CallTransferred,
    DomainEvent,
    HungUpBy,
    QueueResult,
    Transfer,
    TransferKind,
)
from cti_bridge.records.codec import decode_event, encode_event
from cti_bridge.records.spool import Spool, SpoolFiles, SpoolInUse, Ticket, encode_line
from cti_bridge.records.wiring import HeldReplay, spool_directory
from cti_bridge.records.writer import RecordWriter
from cti_bridge.store import Store
from cti_bridge.testing.store import START, call_row_counts, queue_call_answered
from tests.support.small_disk import small_tmpfs
from tests.unit.records.test_writer import NoJitter, RecordingSink, calls, run_now

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

FLUSH = 0.2


def now(work: Callable[[], Any]) -> Deferred[Any]:
    """File work at once, in the test thread."""
    try:
        return succeed(work())
    except Exception:
        return fail(Failure())


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("records-*.spool"))


def opened(directory: Path, clock: Clock, **options: Any) -> tuple[Spool, list[Ticket]]:
    spool = Spool(SpoolFiles(directory, **{"max_bytes": 1 << 20, **options}), clock, now)
    found: list[list[Ticket]] = []
    spool.open().addCallback(found.append)
    return spool, found[0]


def crash(spool: Spool) -> None:
    """As SIGKILL leaves it: no last flush, the lock let go by the process's end."""
    spool._files.close()
    if spool._loop is not None and spool._loop.running:
        spool._loop.stop()


def transferred_call() -> list[DomainEvent]:
    """Every shape a line must carry: rings, segments, a transfer, enums, variables."""
    events = queue_call_answered("enc-1").events
    last = events[-1]
    transfer = Transfer(TransferKind.BLIND, START + 5, "Local/1001@agents", "2001")
    call = replace(
        last.call,
        transfers=(transfer,),
        hung_up_by=HungUpBy.CALLER,
        queue_result=QueueResult.ANSWERED,
        variables={"CTI_AGREEMENT_ID": "7"},
        caller_name='Jan "\n\u202e<b>',
    )
    return [*events, CallTransferred(call, transfer), replace(last, call=call)]


# --- lines ----------------------------------------------------------------------------


def test_every_event_kind_comes_back_equal() -> None:
    for event in transferred_call():
        back = decode_event(encode_event(event))
        assert back == event
        assert back.call.variables == event.call.variables
        line = encode_line(event)
        assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()


def test_a_line_of_another_format_version_is_refused() -> None:
    data = encode_event(transferred_call()[0])
    with pytest.raises(ValueError, match="version"):
        decode_event({**data, "v": 99})
    with pytest.raises(ValueError, match="not a call event"):
        decode_event({**data, "kind": "Nonsense"})


# --- files ----------------------------------------------------------------------------


def test_appended_events_are_read_back_in_order_by_the_next_run(tmp_path: Path) -> None:
    events = [e for call in calls(3) for e in call]
    files = SpoolFiles(tmp_path, max_bytes=1 << 20)
    assert files.open().segments == []
    segment, accepted, total = files.append(events)
    assert (accepted, total) == (len(events), segments(tmp_path)[0].stat().st_size)
    files.close()
    again = SpoolFiles(tmp_path, max_bytes=1 << 20)
    found = again.open()
    assert found.segments == [(segment, events)] and found.damaged == 0
    # The next run writes a new segment; the old one is never appended to.
    new, _, _ = again.append(events[:1])
    assert new == segment + 1


def test_a_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    """Injected: the last line cut half-way (a write the kill interrupted). Survives:
    every whole line before it."""
    events = queue_call_answered("torn").events
    files = SpoolFiles(tmp_path, max_bytes=1 << 20)
    files.open()
    files.append(events)
    files.close()
    path = segments(tmp_path)[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(encode_line(events[-1])) // 2])
    with capture_logs() as logs:
        found = SpoolFiles(tmp_path, max_bytes=1 << 20).open()
    assert found.segments[0][1] == events[:-1]
    assert found.damaged == 1
    assert [e["event"] for e in logs] == ["call record spool: damaged line skipped"]


def test_a_damaged_line_in_the_middle_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    """Injected: one flipped byte in the second line. Survives: the other lines."""
    events = queue_call_answered("flip").events
    files = SpoolFiles(tmp_path, max_bytes=1 << 20)
    files.open()
    files.append(events)
    files.close()
    path = segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    second = len(encode_line(events[0])) + 40
    data[second] ^= 0x01
    path.write_bytes(bytes(data))
    found = SpoolFiles(tmp_path, max_bytes=1 << 20).open()
    assert found.segments[0][1] == [events[0], *events[2:]]
    assert found.damaged == 1


def test_one_process_per_spool_directory(tmp_path: Path) -> None:
    first = SpoolFiles(tmp_path, max_bytes=1 << 20)
    first.open()
    with pytest.raises(SpoolInUse, match="in use by another cti-bridge"):
        SpoolFiles(tmp_path, max_bytes=1 << 20).open()
    first.close()
    SpoolFiles(tmp_path, max_bytes=1 << 20).open()


def test_a_failed_write_leaves_no_torn_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: the disk fills half-way through a write (part written, then ENOSPC).
    Survives: the file holds exactly the lines written before, all readable."""
    events = queue_call_answered("enospc").events
    files = SpoolFiles(tmp_path, max_bytes=1 << 20)
    files.open()
    files.append(events[:2])
    before = segments(tmp_path)[0].read_bytes()
    real_write = os.write
    writes = iter([True])

    def filling(fd: int, data: Any) -> int:
        if next(writes, False):
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("os.write", filling)  # the spool's writes: nothing else writes
    with pytest.raises(OSError, match="No space left"):
        files.append(events[2:])
    monkeypatch.undo()
    assert segments(tmp_path)[0].read_bytes() == before
    files.append(events[2:])  # space again: appended after the whole lines
    files.close()
    found = SpoolFiles(tmp_path, max_bytes=1 << 20).open()
    assert found.segments[0][1] == events and found.damaged == 0


# --- the reactor side ------------------------------------------------------------------


def test_events_written_before_the_flush_never_touch_the_disk(tmp_path: Path) -> None:
    clock = Clock()
    spool, replayed = opened(tmp_path, clock)
    assert replayed == []
    tickets = [spool.add(e) for e in queue_call_answered().events]
    for ticket in tickets:
        spool.done(ticket)
    clock.advance(FLUSH)
    assert segments(tmp_path) == []
    assert spool.status()["spooled"] == 0


def test_a_segment_is_deleted_once_its_events_are_done(tmp_path: Path) -> None:
    clock = Clock()
    spool, _ = opened(tmp_path, clock)
    tickets = [spool.add(e) for e in queue_call_answered().events]
    clock.advance(FLUSH)
    assert len(segments(tmp_path)) == 1
    assert spool.status()["pending"] == len(tickets)
    for ticket in tickets[:-1]:
        spool.done(ticket)
    assert len(segments(tmp_path)) == 1  # one event still unwritten: kept
    spool.done(tickets[-1])
    assert segments(tmp_path) == []
    status = spool.status()
    assert (status["pending"], status["bytes"], status["status"]) == (0, 0, "ok")


def test_the_limit_refuses_loudly_and_names_what_it_refused(tmp_path: Path) -> None:
    """Injected: more events than ``max_bytes`` holds. Survives: the events that fit
    (on disk); the refused ones are counted, named in an error line, and the spool
    says degraded until there is room again."""
    events = [e for call in calls(4) for e in call]
    limit = sum(len(encode_line(e)) for e in events[:10])
    clock = Clock()
    spool, _ = opened(tmp_path, clock, max_bytes=limit)
    tickets = [spool.add(e) for e in events]
    with capture_logs() as logs:
        clock.advance(FLUSH)
    status = spool.status()
    assert (status["status"], status["full"]) == ("degraded", True)
    assert (status["spooled"], status["refused"]) == (10, len(events) - 10)
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error["event"].startswith("call record spool full: events refused")
    assert error["refused"] == len(events) - 10
    assert "main/call-3" in error["calls"] and "main/call-0" not in error["calls"]
    for ticket in tickets:
        spool.done(ticket)
    assert spool.status()["status"] == "ok"


def test_disk_errors_hold_events_in_memory_and_retry_them_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: ENOSPC on every write for a while. Survives: every event, on disk in
    order once writes succeed; the error is logged once and shown in the status."""
    events = queue_call_answered("full").events
    clock = Clock()
    spool, _ = opened(tmp_path, clock)

    def no_space(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("os.write", no_space)
    with capture_logs() as logs:
        for event in events[:3]:
            spool.add(event)
        clock.advance(FLUSH)
        spool.add(events[3])
        clock.advance(FLUSH)
    status = spool.status()
    assert status["status"] == "degraded" and "No space left" in status["last_error"]
    assert (status["unspooled"], status["write_errors"]) == (4, 2)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "call record spool cannot write: events held in memory and retried"
    ]
    monkeypatch.undo()
    for event in events[4:]:
        spool.add(event)
    with capture_logs() as logs:
        clock.advance(FLUSH)
    assert [e["event"] for e in logs] == ["call record spool writes again"]
    assert spool.status()["status"] == "ok"
    crash(spool)
    _, replayed = opened(tmp_path, Clock())
    assert [t.event for t in replayed] == events


# --- the writer on the spool -------------------------------------------------------------


def writer_on(sink: Any, spool: Spool, clock: Clock, **options: Any) -> RecordWriter:
    return RecordWriter(sink, clock, run_now, jitter=NoJitter(), spool=spool, **options)


def test_an_outage_goes_to_disk_and_is_let_go_once_written(tmp_path: Path) -> None:
    clock = Clock()
    spool, _ = opened(tmp_path, clock)
    sink = RecordingSink(outage=3)
    writer = writer_on(sink, spool, clock)
    events = queue_call_answered().events
    for event in events:
        writer.submit(event)
    clock.advance(FLUSH)
    assert spool.status()["pending"] == len(events)  # unwritten: on disk
    clock.pump([1.0] * 10)  # the retries, the database back
    assert sink.events == events
    assert segments(tmp_path) == [] and spool.status()["pending"] == 0


def test_a_crash_during_an_outage_loses_nothing_and_writes_each_event_once(
    tmp_path: Path, store: Store
) -> None:
    """Injected: the database gone, then the process killed (no last flush, memory
    lost); the next run on a working database. Survives: every call, once, complete;
    an event committed just before the outage and replayed changes nothing."""
    per_call = calls(5)
    clock = Clock()
    spool, _ = opened(tmp_path, clock)
    sink = RecordingSink()
    writer = writer_on(sink, spool, clock)
    for event in per_call[0]:  # written while the database answers ...
        writer.submit(event)
    assert segments(tmp_path) == []
    sink.outage = 10**6  # ... then it goes away
    for call in per_call[1:]:
        for event in call:
            writer.submit(event)
    clock.advance(FLUSH)
    late = queue_call_answered("call-late", at=START + 50).events
    writer.submit(late[0])  # after the last flush: memory only when the kill comes
    crash(spool)

    clock = Clock()
    spool, replayed = opened(tmp_path, clock)
    assert [t.event for t in replayed] == [e for call in per_call[1:] for e in call]
    writer = RecordWriter(store.calls, clock, run_now, spool=spool)
    assert writer.replay(replayed) == len(replayed)
    assert segments(tmp_path) == []
    store.calls.apply(per_call[0])  # the pre-outage call, as the first run wrote it
    writer.replay(replayed)  # the same once more: idempotent
    rows = store.queries.list_calls(limit=50)
    assert sorted(r["linkedid"] for r in rows) == [f"call-{i}" for i in range(5)]
    assert all(r["ended_at"] is not None and r["outcome"] == "answered" for r in rows)
    assert call_row_counts(store)["calls"] == 5


def test_compaction_lets_superseded_events_go_and_keeps_the_newest_on_disk(
    tmp_path: Path,
) -> None:
    """The writer's compaction (newest snapshot per call) lets the older events go; the
    segment stays for the newest, and a replay of it alone gives the same record."""
    clock = Clock()
    spool, _ = opened(tmp_path, clock)
    sink = RecordingSink(outage=10**6)
    writer = writer_on(sink, spool, clock, max_pending=100)
    per_call = calls(20)
    for call in per_call:
        for event in call:
            writer.submit(event)
    clock.advance(FLUSH)
    status = spool.status()
    assert writer.status()["pending"] < 100
    assert status["pending"] == writer.status()["pending"]
    crash(spool)
    _, replayed = opened(tmp_path, Clock())
    newest = {e.call.linkedid: e for e in (t.event for t in replayed)}
    for call in per_call:
        assert newest[call[0].call.linkedid] == call[-1]


class FakeFences:
    def __init__(self) -> None:
        self.tokens: dict[str, int] = {}

    def token(self, pbx: str) -> int | None:
        return self.tokens.get(pbx)

    def refused(self, pbx: str, token: int, current: int | None = None) -> None:
        self.tokens.pop(pbx, None)


def test_replayed_events_wait_for_ownership_and_take_the_current_token(tmp_path: Path) -> None:
    """Fenced (several nodes): replayed events of a PBX are written only once this node
    owns it, with its token of now; the segment stays on disk meanwhile."""
    events = queue_call_answered("fenced").events
    files = SpoolFiles(tmp_path, max_bytes=1 << 20)
    files.open()
    files.append(events)
    files.close()
    clock, fences = Clock(), FakeFences()
    spool, replayed = opened(tmp_path, clock)

    applied: list[dict[str, int] | None] = []

    class Sink(RecordingSink):
        def apply(self, events: Any, *, fences: Any = None) -> int:
            applied.append(dict(fences) if fences is not None else None)
            return super().apply(events, fences=fences)

    sink = Sink()
    writer = RecordWriter(sink, clock, run_now, fences=fences, spool=spool)
    held = HeldReplay(writer, fences, clock)
    held.offer(replayed)
    clock.advance(5)
    assert sink.events == [] and held.held() == {"main": len(events)}
    assert len(segments(tmp_path)) == 1
    fences.tokens["main"] = 42
    clock.advance(1)
    assert sink.events == events and applied == [{"main": 42}] * len(events)
    assert held.held() == {} and segments(tmp_path) == []


def test_the_default_directory_sits_next_to_a_sqlite_file() -> None:
    assert spool_directory("sqlite:////var/lib/cti/cti.sqlite3", None, "a") == Path(
        "/var/lib/cti/cti.sqlite3-spool"
    )
    assert spool_directory("sqlite://", None, "a") is None
    assert spool_directory("postgresql+psycopg://db/cti", None, "node a") == Path(
        "cti-bridge-node_a-spool"
    )
    assert spool_directory("postgresql+psycopg://db/cti", "", "a") is None
    assert spool_directory("postgresql+psycopg://db/cti", "/s", "a") == Path("/s")


# --- a real full disk ---------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (root mounts it; the suite runs as root here and in CI)."""
    with small_tmpfs(tmp_path / "disk", "256k") as mount:
        yield mount


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def test_a_real_full_disk_is_survived(small_disk: Path) -> None:
    """Injected: the spool's file system full (a 256 KiB tmpfs filled by another file)
    while the database is down. Survives: no torn line on disk, the error in the status,
    and every event on disk once space returns; replayed equal and in order."""
    directory = small_disk / "spool"
    clock = Clock()
    spool, _ = opened(directory, clock)
    writer = writer_on(RecordingSink(outage=10**6), spool, clock)
    first = [e for call in calls(2) for e in call]
    for event in first:
        writer.submit(event)
    clock.advance(FLUSH)
    filler = fill(small_disk)
    more = [e for call in calls(15, "more") for e in call]
    for event in more:
        writer.submit(event)
    clock.advance(FLUSH)
    status = spool.status()
    assert status["status"] == "degraded" and "No space left" in status["last_error"]
    assert status["pending"] == len(first) and status["unspooled"] == len(more)
    # What is on disk is whole: a second reader (as after a crash now) sees no damage.
    for path in segments(directory):
        data = path.read_bytes()
        assert data.endswith(b"\n") and data.count(b"\n") == len(first)
    filler.unlink()
    clock.advance(FLUSH)
    assert spool.status()["status"] == "ok" and spool.status()["unspooled"] == 0
    crash(spool)
    _, replayed = opened(directory, Clock())
    assert [t.event for t in replayed] == first + more


def test_a_clean_stop_during_an_outage_leaves_the_backlog_on_disk(tmp_path: Path) -> None:
    """Injected: SIGTERM while the database is away (the writer's stop deadline passes).
    Survives: the events that arrived since the last flush go to disk in the spool's
    close, so the next start replays every one."""
    clock = Clock()
    spool, _ = opened(tmp_path, clock)
    writer = writer_on(RecordingSink(outage=10**6), spool, clock)
    events = [e for call in calls(3) for e in call]
    for event in events[:10]:
        writer.submit(event)
    clock.advance(FLUSH)
    for event in events[10:]:
        writer.submit(event)
    stopped = writer.stop(timeout=5)
    clock.advance(5)
    assert stopped.called
    closed = spool.close()
    assert closed.called
    _, replayed = opened(tmp_path, Clock())
    assert [t.event for t in replayed] == events


def test_a_write_error_clears_once_the_database_took_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk full, then the database back: once nothing waits for the spool it is
    ok again, although it never wrote since."""
    clock = Clock()
    spool, _ = opened(tmp_path, clock)

    def no_space(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("os.write", no_space)
    tickets = [spool.add(e) for e in queue_call_answered().events]
    clock.advance(FLUSH)
    assert spool.status()["status"] == "degraded"
    for ticket in tickets:
        spool.done(ticket)
    clock.advance(FLUSH)
    assert spool.status()["status"] == "ok" and spool.status()["write_errors"] == 1


@given(cut=st.floats(min_value=0.0, max_value=1.0))
@settings(max_examples=60)
def test_a_file_cut_anywhere_replays_exactly_the_whole_lines_before_the_cut(cut: float) -> None:
    """Injected: the segment cut at any byte (a kill during any write). Survives: every
    whole line before the cut, in order; at most the one torn line is skipped."""
    events = [e for call in calls(2) for e in call]
    with tempfile.TemporaryDirectory() as folder:
        files = SpoolFiles(folder, max_bytes=1 << 20)
        files.open()
        files.append(events)
        files.close()
        path = segments(Path(folder))[0]
        data = path.read_bytes()
        at = int(len(data) * cut)
        path.write_bytes(data[:at])
        found = SpoolFiles(folder, max_bytes=1 << 20).open()
        whole = data[:at].count(b"\n")
        replayed = found.segments[0][1] if found.segments else []
        assert replayed == events[:whole]
        assert found.damaged == (0 if at == 0 or data[:at].endswith(b"\n") else 1)


def test_compaction_keeps_an_older_snapshot_on_disk_while_the_newer_one_is_refused(
    tmp_path: Path,
) -> None:
    """Injected: the spool full and the memory backlog full at once. The writer's
    compaction drops a call's older events for its newest, which the spool refused:
    the older ones stay on disk (a crash now still finds the call), and go once the
    newest is written."""
    clock = Clock()
    per_call = calls(30)
    first = [call[0] for call in per_call]  # every call's start ...
    limit = sum(len(encode_line(e)) for e in first)
    spool, _ = opened(tmp_path, clock, max_bytes=limit)
    sink = RecordingSink(outage=10**6)
    writer = writer_on(sink, spool, clock, max_pending=100)
    for event in first:
        writer.submit(event)
    clock.advance(FLUSH)  # ... on disk: the spool is full now
    assert spool.status()["spooled"] == len(first)
    for call in per_call:
        for event in call[1:]:
            writer.submit(event)  # refused by the spool; compaction drops the starts
    clock.advance(FLUSH)
    assert spool.status()["refused"] > 0 and writer.status()["pending"] < 100
    assert spool.status()["pending"] == len(first)  # every start still on disk
    crash_copy = SpoolFiles(tmp_path / "copy", max_bytes=1 << 20)
    crash_copy.open()
    crash_copy.close()
    for path in segments(tmp_path):
        (tmp_path / "copy" / path.name).write_bytes(path.read_bytes())
    _, replayed = opened(tmp_path / "copy", Clock())
    assert {t.event.call.linkedid for t in replayed} == {e.call.linkedid for e in first}
    sink.outage = 0  # the database back: the newest are written, the starts let go
    clock.pump([1.0] * 40)
    assert writer.status()["pending"] == 0
    assert spool.status()["pending"] == 0 and segments(tmp_path) == []
