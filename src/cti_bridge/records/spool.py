"""The records' durable spool: call events not yet in the database, on local disk.

The record writer keeps its backlog in memory; a daemon killed while the database is
away would lose it. The spool is the backlog's durable copy, in the spirit of Vector's
and Fluent Bit's disk buffers:

* ``add`` (reactor, cheap) hands the spool each event the writer accepted; ``done``
  says the event is in the database (or was dropped for good: superseded by a newer
  snapshot of its call, of a PBX another node owns, refused by the database).
* Every ``flush_interval`` (0.2 s) the events added since the last flush that are still
  not done are appended to the active segment file in the spool's own thread, and the
  file is fsync'd: one write and one fsync per flush, whatever the number of events.
  With the database answering, events are committed before the flush comes round and
  nothing touches the disk; during an outage every event is on disk within about
  ``flush_interval``.
* A segment is deleted once every event in it is done; the active one is closed first.
  Nothing is ever deleted before its events are committed.
* At start-up (``open``) every segment left behind is read and its events are handed
  back for writing (``CallStore.apply`` is idempotent: replaying an event that did
  commit before the crash changes nothing). Those segments are deleted once written.

A segment is a text file ``records-NNNNNNNN.spool`` of lines ``<crc32 hex> <json>\\n``:
the CRC-32 of the JSON bytes, then the event as ``codec.encode_event`` writes it (ASCII
only, so a line never holds a raw newline). A line that does not end in a newline, or
whose checksum or JSON is wrong - the torn last write of a killed process, a block the
disk lost - is skipped, counted and logged, and reading goes on.

Limits and faults:

* ``max_bytes``: the segments' total size. An event that would pass it is *refused*:
  not made durable (it stays in the writer's memory backlog, so it is still written if
  the daemon lives until the database returns), logged as an error naming the calls,
  counted; the spool reports ``degraded`` while it is full.
* A write that fails (``ENOSPC``, ``EIO``): the segment is truncated back to its last
  whole line (a failed write leaves no torn line in the middle of a file), the error is
  logged once and shown in ``status()``, the events wait in memory and are retried at
  the next flush, in order; when a write succeeds again the spool says so and is ``ok``.
* One process per spool directory: ``open`` takes an exclusive ``flock`` on
  ``spool.lock`` and refuses a directory another daemon holds.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from cti_bridge.calls.events import DomainEvent
from cti_bridge.store.types import from_posix, iso_utc

from .codec import decode_event, encode_event

__all__ = ["Recovered", "Spool", "SpoolFiles", "SpoolInUse", "Ticket", "encode_line"]

log = structlog.get_logger("cti_bridge.records.spool")
T = TypeVar("T")
Run = Callable[[Callable[[], Any]], "Deferred[Any]"]

PREFIX = "records-"
SUFFIX = ".spool"
LOCK = "spool.lock"
#: How many refused calls an error line names (the count is always there).
NAMED = 20
#: While the spool stays full, one error line per this many seconds sums up the refusals.
REFUSAL_LOG_EVERY = 10.0


class SpoolInUse(Exception):
    """Another process holds the spool directory."""


def encode_line(event: DomainEvent) -> bytes:
    """One line; never raises for an odd value (``str`` of it: a line that then does not
    decode is skipped at replay, instead of a spool that can write nothing more)."""
    body = json.dumps(
        encode_event(event), separators=(",", ":"), ensure_ascii=True, default=str
    ).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode_line(line: bytes) -> DomainEvent:
    """One whole line (newline included); ``ValueError`` when torn or damaged."""
    if not line.endswith(b"\n"):
        raise ValueError("torn line (no newline)")
    crc, _, body = line[:-1].partition(b" ")
    if len(crc) != 8 or int(crc, 16) != zlib.crc32(body):
        raise ValueError("checksum mismatch")
    return decode_event(json.loads(body))


@dataclass
class Recovered:
    """What ``SpoolFiles.open`` found: per segment left behind, its readable events."""

    segments: list[tuple[int, list[DomainEvent]]] = field(default_factory=list)
    damaged: int = 0  # lines skipped: torn, bad checksum, unreadable
    bytes: int = 0

    @property
    def events(self) -> int:
        return sum(len(events) for _, events in self.segments)


class SpoolFiles:
    """The segment files. Blocking: used from one thread at a time (the spool's)."""

    def __init__(
        self, directory: str | os.PathLike[str], *, max_bytes: int, segment_bytes: int = 8 << 20
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._sizes: dict[int, int] = {}  # live segment -> bytes
        self._lines: dict[int, int] = {}  # live segment -> lines written or found
        self._active: int | None = None
        self._fd: int | None = None
        self._next = 1
        self._lock: int | None = None

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes.values())

    def path(self, segment: int) -> Path:
        return self.directory / f"{PREFIX}{segment:08d}{SUFFIX}"

    def open(self) -> Recovered:
        """Lock the directory and read what an earlier run left in it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(lock)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SpoolInUse(f"{self.directory}: in use by another cti-bridge") from None
            raise
        self._lock = lock
        found = Recovered()
        for segment in self._existing():
            events, damaged, size = self._read(segment)
            found.damaged += damaged
            found.bytes += size
            self._sizes[segment] = size
            self._lines[segment] = len(events)
            found.segments.append((segment, events))
            self._next = max(self._next, segment + 1)
        return found

    def _existing(self) -> list[int]:
        numbers = []
        for entry in self.directory.iterdir():
            name = entry.name
            if name.startswith(PREFIX) and name.endswith(SUFFIX):
                digits = name[len(PREFIX) : -len(SUFFIX)]
                if digits.isdigit():
                    numbers.append(int(digits))
        return sorted(numbers)

    def _read(self, segment: int) -> tuple[list[DomainEvent], int, int]:
        data = self.path(segment).read_bytes()
        events: list[DomainEvent] = []
        damaged = 0
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            line = data[start:] if end < 0 else data[start : end + 1]
            start = len(data) if end < 0 else end + 1
            try:
                events.append(decode_line(line))
            except ValueError as error:
                damaged += 1
                log.warning(
                    "call record spool: damaged line skipped",
                    file=str(self.path(segment)),
                    offset=start - len(line),
                    error=str(error)[:200],
                )
        return events, damaged, len(data)

    def append(self, events: Sequence[DomainEvent]) -> tuple[int, int, int]:
        """Write ``events`` (in order, as many as the limit lets in) to the active
        segment and fsync it: (segment, events written, total bytes). ``OSError``:
        nothing of this write is left in the file."""
        lines = []
        room = self.max_bytes - self.total_bytes
        for event in events:
            line = encode_line(event)
            if len(line) > room:
                break
            lines.append(line)
            room -= len(line)
        if not lines:
            return (self._active or 0), 0, self.total_bytes
        segment, fd = self._active_file()
        data = b"".join(lines)
        size = self._sizes[segment]
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            self._undo(segment, fd, size)
            raise
        self._sizes[segment] = size + len(data)
        self._lines[segment] += len(lines)
        if self._sizes[segment] >= self.segment_bytes:
            self._seal()
        return segment, len(lines), self.total_bytes

    def _active_file(self) -> tuple[int, int]:
        if self._active is None or self._fd is None:
            segment = self._next
            fd = os.open(self.path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._next += 1
            self._active, self._fd = segment, fd
            self._sizes[segment] = os.fstat(fd).st_size
            self._lines[segment] = 0
            self._sync_directory()
        return self._active, self._fd

    def _undo(self, segment: int, fd: int, size: int) -> None:
        """Cut a failed write off (shrinking needs no space); if even that fails, the
        segment is closed and never written again (a torn tail is skipped on replay)."""
        try:
            os.ftruncate(fd, size)
        except OSError:
            log.error("call record spool: cannot cut a failed write off", segment=segment)
            self._sizes[segment] = os.fstat(fd).st_size
            self._seal()

    def _seal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._active = None

    def retire(self, segment: int, lines: int) -> int:
        """Delete ``segment`` if it holds exactly ``lines`` lines (the caller knows them
        all done; more would be a write it has not seen yet): the total bytes left."""
        if self._lines.get(segment) != lines:
            return self.total_bytes
        if segment == self._active:
            self._seal()
        self.path(segment).unlink(missing_ok=True)
        self._sizes.pop(segment, None)
        self._lines.pop(segment, None)
        return self.total_bytes

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._seal()
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None


class Ticket:
    """One event's place in the spool, as the writer holds it."""

    __slots__ = ("covers", "done", "event", "segment")

    def __init__(self, event: DomainEvent, segment: int | None = None) -> None:
        self.event = event
        self.segment = segment  # on disk in this segment; None: not (yet) durable
        self.done = False
        #: Older events of the call this one superseded, let go once it is durable.
        self.covers: list[Ticket] | None = None


@dataclass
class _Segment:
    lines: int = 0  # lines this segment holds (written by this run, or found at start)
    outstanding: int = 0  # of them, not done yet
    retiring: bool = False


class Spool:
    """The reactor side: tickets, flushes and segment bookkeeping. File work runs
    through ``run`` (one thread; the spool never has two file operations at once)."""

    def __init__(
        self,
        files: SpoolFiles,
        clock: IReactorTime,
        run: Run,
        *,
        flush_interval: float = 0.2,
    ) -> None:
        self._files = files
        self._clock = clock
        self._run = run
        self._flush_interval = flush_interval
        self._fresh: list[Ticket] = []
        self._segments: dict[int, _Segment] = {}
        self._queue: list[tuple[Callable[[], Any], Deferred[Any]]] = []
        self._busy = False
        self._flushing: Deferred[Any] | None = None
        self._loop: LoopingCall | None = None
        self._closed = False
        self._bytes = 0
        self._full = False
        self._error: str | None = None
        self._error_at: float | None = None
        self._unlogged = 0  # refused since the last error line
        self._unnamed: list[Ticket] = []  # some of them, to name in the next one
        self._refusal_logged_at = float("-inf")
        self._counts = {"spooled": 0, "refused": 0, "write_errors": 0, "replayed": 0, "damaged": 0}

    # --- start and stop ----------------------------------------------------------------

    def open(self) -> Deferred[list[Ticket]]:
        """Read what an earlier run left; its events come back as tickets, in order
        (already durable: they are not written again). Starts the flushes."""

        def opened(found: Recovered) -> list[Ticket]:
            tickets: list[Ticket] = []
            for segment, events in found.segments:
                self._segments[segment] = _Segment(lines=len(events), outstanding=len(events))
                tickets.extend(Ticket(event, segment) for event in events)
            self._bytes = found.bytes
            self._counts["replayed"] = len(tickets)
            self._counts["damaged"] = found.damaged
            if found.segments:
                log.warning(
                    "call record spool: replaying events an earlier run left unwritten",
                    directory=str(self._files.directory),
                    events=len(tickets),
                    damaged_lines=found.damaged,
                    bytes=found.bytes,
                )
            for segment, events in found.segments:
                if not events:  # nothing readable in it: nothing to wait for
                    self._retire_if_done(segment)
            self._loop = LoopingCall(self._tick)
            self._loop.clock = self._clock
            self._loop.start(self._flush_interval, now=False)
            return tickets

        return self._serial(self._files.open).addCallback(opened)

    def close(self) -> Deferred[None]:
        """The last flush (what is still unwritten stays on disk for the next start),
        then the files are closed."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()

        def closed(_: object) -> Deferred[None]:
            self._closed = True
            if lost := sum(1 for ticket in self._fresh if not ticket.done):
                log.error(
                    "call record spool closed with events it could not write: lost",
                    lost=lost,
                    error=self._error,
                )
            return self._serial(self._files.close)

        # The flush under way, then one for what came since.
        return self.flush().addBoth(lambda _: self.flush()).addBoth(closed)

    # --- the writer's side -------------------------------------------------------------

    def add(self, event: DomainEvent) -> Ticket:
        ticket = Ticket(event)
        if not self._closed:
            self._fresh.append(ticket)
        return ticket

    def done(self, ticket: Ticket) -> None:
        if ticket.done:
            return
        ticket.done = True
        if ticket.segment is not None and (entry := self._segments.get(ticket.segment)):
            entry.outstanding -= 1
            self._retire_if_done(ticket.segment)
        self._release_covered(ticket)

    def supersede(self, old: Ticket, new: Ticket) -> None:
        """The writer's compaction dropped ``old``'s event for ``new``'s, a newer
        snapshot of the same call. ``old`` is let go once ``new`` is on disk or written;
        while ``new`` is not (the spool refused it), ``old`` stays on disk: after a crash
        an older snapshot of the call is better than none."""
        if old.done:
            return
        if new.done or new.segment is not None or (old.segment is None and not old.covers):
            self.done(old)
        else:  # ``old`` (or what it covers) is on disk and ``new`` not yet: hold on
            new.covers = [*(new.covers or ()), old]

    def _release_covered(self, ticket: Ticket) -> None:
        covered, ticket.covers = ticket.covers, None
        for old in covered or ():
            self.done(old)

    # --- flushing ----------------------------------------------------------------------

    def _tick(self) -> Deferred[Any]:
        """The periodic flush: whatever goes wrong in one is logged, and the next one
        still comes (a LoopingCall stops for good on a failure)."""
        try:
            d = self.flush()
        except Exception:
            log.exception("call record spool flush failed")
            return succeed(None)

        def failed(failure: Failure) -> None:
            self._flushing = None
            log.error("call record spool flush failed", error=failure.getErrorMessage())

        return d.addErrback(failed)

    def flush(self) -> Deferred[Any]:
        """Append the events added since the last flush that are still not written."""
        if self._flushing is not None:
            return self._flushing
        batch = [ticket for ticket in self._fresh if not ticket.done]
        self._fresh = []
        if not batch and self._error is not None:
            # What the failed writes held has been committed meanwhile: nothing is at
            # risk now (the next write says so again if the disk is still full).
            log.info("call record spool: nothing left to write; the database took it all")
            self._error = None
        if not batch or self._closed:
            return succeed(None)
        events = [ticket.event for ticket in batch]
        d: Deferred[Any] = self._serial(lambda: self._files.append(events))
        d.addCallbacks(
            self._appended, self._not_appended, callbackArgs=(batch,), errbackArgs=(batch,)
        )
        if not d.called:  # file work in a thread: a flush under way
            self._flushing = d
        return d

    def _appended(self, result: tuple[int, int, int], batch: list[Ticket]) -> None:
        self._flushing = None
        segment, accepted, self._bytes = result
        if accepted:
            entry = self._segments.setdefault(segment, _Segment())
            entry.lines += accepted
            for ticket in batch[:accepted]:
                ticket.segment = segment
                if not ticket.done:
                    entry.outstanding += 1
            self._counts["spooled"] += accepted
            for ticket in batch[:accepted]:
                self._release_covered(ticket)
            self._retire_if_done(segment)
        if self._error is not None:
            log.info("call record spool writes again", directory=str(self._files.directory))
            self._error = None
        refused = [ticket for ticket in batch[accepted:] if not ticket.done]
        if refused:
            self._refuse(refused)
        elif accepted:
            self._full = False

    def _refuse(self, refused: list[Ticket]) -> None:
        self._counts["refused"] += len(refused)
        self._unlogged += len(refused)
        now = self._clock.seconds()
        if self._full and now - self._refusal_logged_at < REFUSAL_LOG_EVERY:
            self._unnamed.extend(refused[:NAMED])
            return
        refused = self._unnamed + refused
        count, self._unlogged, self._unnamed = self._unlogged, 0, []
        self._refusal_logged_at = now
        calls = sorted({f"{t.event.call.pbx}/{t.event.call.linkedid}" for t in refused})
        kinds: dict[str, int] = {}
        for ticket in refused:
            kind = type(ticket.event).__name__
            kinds[kind] = kinds.get(kind, 0) + 1
        log.error(
            "call record spool full: events refused, held in memory only (lost if the "
            "daemon stops before the database returns)",
            refused=count,
            refused_total=self._counts["refused"],
            kinds=kinds,
            calls=calls[:NAMED],
            more_calls=max(0, len(calls) - NAMED),
            spool_bytes=self._bytes,
            max_bytes=self._files.max_bytes,
        )
        self._full = True

    def _not_appended(self, failure: Failure, batch: list[Ticket]) -> None:
        self._flushing = None
        error = failure.value
        self._counts["write_errors"] += 1
        self._fresh[:0] = batch  # in order, before what came since: retried next flush
        if not isinstance(error, OSError):
            log.error("call record spool failed", error=failure.getErrorMessage())
        text = f"{type(error).__name__}: {error}"[:300]
        if self._error is None:
            log.error(
                "call record spool cannot write: events held in memory and retried",
                directory=str(self._files.directory),
                error=text,
                unspooled=sum(1 for t in self._fresh if not t.done),
            )
        self._error = text
        self._error_at = self._clock.seconds()

    # --- deleting what is written ------------------------------------------------------

    def _retire_if_done(self, segment: int) -> None:
        entry = self._segments.get(segment)
        if entry is None or entry.outstanding > 0 or entry.retiring or self._closed:
            return
        entry.retiring = True
        lines = entry.lines

        def retired(total: int) -> None:
            self._bytes = total
            if self._full and total < self._files.max_bytes * 0.9:
                self._full = False
                log.info("call record spool has room again", spool_bytes=total)
            if self._segments.get(segment) is not entry:
                return
            if entry.lines == lines:
                del self._segments[segment]
            else:  # more were written meanwhile: ask again when those are done
                entry.retiring = False
                self._retire_if_done(segment)

        def failed(failure: Failure) -> None:
            entry.retiring = False
            log.error(
                "call record spool: cannot delete a written segment",
                segment=segment,
                error=failure.getErrorMessage(),
            )

        self._serial(lambda: self._files.retire(segment, lines)).addCallbacks(retired, failed)

    # --- one file operation at a time ---------------------------------------------------

    def _serial(self, work: Callable[[], T]) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        self._queue.append((work, d))
        self._next()
        return d

    def _next(self) -> None:
        if self._busy or not self._queue:
            return
        work, d = self._queue.pop(0)
        self._busy = True

        def finished(result: object) -> None:
            self._busy = False
            d.callback(result) if not isinstance(result, Failure) else d.errback(result)
            self._next()

        self._run(work).addBoth(finished)

    # --- health ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        pending = sum(entry.outstanding for entry in self._segments.values())
        unspooled = sum(1 for ticket in self._fresh if not ticket.done)
        degraded = self._error is not None or self._full
        return {
            "status": "degraded" if degraded else "ok",
            "directory": str(self._files.directory),
            "pending": pending,  # on disk, not yet in the database
            "unspooled": unspooled,  # accepted, not on disk yet (or waiting out an error)
            "bytes": self._bytes,
            "max_bytes": self._files.max_bytes,
            "full": self._full,
            **self._counts,
            "last_error": self._error,
            "last_error_at": iso_utc(from_posix(self._error_at)),
        }
