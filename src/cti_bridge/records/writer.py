"""Getting call records written from the reactor without ever waiting for the database.

``submit`` only appends to an in-memory queue. Lanes drain the queues through a bounded
thread pool: one batch in flight per lane, a call always on the same lane, so each
call's events reach the database in the order the model produced them, and under load
many events share one transaction.

When the database is unreachable the batch goes back to the head of its lane, the
writer reports itself degraded and tries again with capped, jittered back-off; nothing
is dropped and, because ``CallStore.apply`` is idempotent, a batch that did commit just
before the connection broke does no harm when written again. Memory is bounded: when
the backlog reaches ``max_pending`` events it is first compacted (each event carries
its call's whole snapshot, so only the newest per call is needed), and only if that is
not enough are new events refused, counted and logged as an error.

An event the database refuses for what it is (not for being unreachable) would block
its lane forever; the batch is retried one event at a time and the offending event is
logged and set aside.

With several nodes (``fences``: the node's PBX ownership) each batch is written with
this node's fencing token of every PBX in it, read on the reactor as the batch starts;
events of a PBX this node does not own (any more) are dropped there, counted and
logged: the PBX's owner writes them from its own link (``docs/architecture.md``). When
the database refuses a token as stale (``FenceRefused``: another node took the PBX
over, perhaps while this one was paused), the node gives the PBX up at once
(``fences.refused``) and the batch goes back to its lane: its events of that PBX are
then dropped, the others written. Never retried forever with a stale token.

With a ``spool`` (``spool.Spool``) the backlog has a durable copy: every accepted event
is handed to it (``add``) and, once written or dropped for good, let go (``done``); the
spool writes to disk what stays unwritten past its flush interval. ``replay`` queues
what a spool kept from an earlier run, under the same rules as live events (fencing
included: written with this node's current token, or dropped there).
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy import exc as sa_exc
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from cti_bridge.backoff import Backoff
from cti_bridge.calls.events import DomainEvent
from cti_bridge.lease import FenceRefused, Fences
from cti_bridge.store.types import from_posix as _from_posix
from cti_bridge.store.types import iso_utc

from .spool import Ticket

__all__ = ["CloseStale", "RecordWriter", "is_transient"]

log = structlog.get_logger("cti_bridge.store.writer")
T = TypeVar("T")
Runner = Callable[[Callable[[], int]], "Deferred[int]"]


class Spooler(Protocol):
    """What the writer needs from the spool (``spool.Spool``)."""

    def add(self, event: DomainEvent) -> Ticket: ...

    def done(self, ticket: Ticket) -> None: ...

    def supersede(self, old: Ticket, new: Ticket) -> None: ...


class RecordSink(Protocol):
    """What the writer needs from ``CallStore`` (tests may hand in a twin)."""

    def apply(
        self, events: Sequence[DomainEvent], *, fences: Mapping[str, int] | None = None
    ) -> int: ...

    def close_stale(
        self,
        pbx: str,
        live_linkedids: Collection[str],
        at: float,
        *,
        owns: Callable[[tuple[str, str]], bool] | None = None,
        fence: int | None = None,
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class CloseStale:
    """After a (re)start's resync: close the records of calls that are no longer live."""

    pbx: str
    live_linkedids: frozenset[str]
    at: float


Item = DomainEvent | CloseStale


def is_transient(error: BaseException) -> bool:
    """Errors that say "the database is not there right now", as opposed to "no"."""
    if isinstance(
        error,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError,
    ):
        return True
    return isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated


def _describe(error: BaseException) -> str:
    """One line, without SQL or parameters (they hold caller IDs)."""
    inner = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig else error
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {text}"[:300]


def _pbx(item: Item) -> str:
    return item.pbx if isinstance(item, CloseStale) else item.call.pbx


def _key(item: Item) -> tuple[str, str] | None:
    return None if isinstance(item, CloseStale) else (item.call.pbx, item.call.linkedid)


@dataclass(frozen=True)
class _ShareKept:
    """The writer's ``jitter`` source has always drawn the share of the delay *kept*
    (``1.0``: the full delay); :class:`Backoff` draws the share taken off."""

    source: random.Random

    def random(self) -> float:
        return 1.0 - self.source.random()


@dataclass(eq=False)
class _Lane:
    index: int
    queue: deque[Item] = field(default_factory=deque)
    inflight: list[Item] | None = None
    retry: IDelayedCall | None = None
    failures: int = 0
    one_by_one: int = 0  # events to write singly, to find one the database refuses


class RecordWriter:
    def __init__(
        self,
        store: RecordSink,
        clock: IReactorTime,
        run: Runner,
        *,
        lanes: int = 1,
        max_batch: int = 500,
        max_pending: int = 200_000,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        jitter: random.Random | None = None,
        fences: Fences | None = None,
        spool: Spooler | None = None,
    ) -> None:
        if lanes < 1 or max_batch < 1 or max_pending < 1:
            raise ValueError("lanes, max_batch and max_pending must be positive")
        self._store = store
        self._fences = fences
        self._spool = spool
        # The spool's ticket of each queued event (by identity; a list: the same event
        # object submitted twice holds two).
        self._tickets: dict[int, list[Ticket]] = {}
        self._clock = clock
        self._run = run
        self._lanes = [_Lane(i) for i in range(lanes)]
        self._max_batch = max_batch
        self._max_pending = max_pending
        # Delays in [1/2, 1] of the doubling, capped base; ``jitter`` draws the share kept.
        self._backoff = Backoff(
            initial=initial_delay,
            factor=2.0,
            cap=max_delay,
            jitter=0.5,
            rng=_ShareKept(jitter or random.Random()),
        )
        self._pending = 0
        self._pumping = False
        self._again: list[_Lane] = []
        self._waiters: list[Deferred[None]] = []
        self._pool: ThreadPool | None = None
        self._stopped = False
        self._released = False  # stopped and past the deadline: start nothing new
        self._counts = {"written": 0, "batches": 0, "retries": 0, "failed": 0, "dropped": 0}
        if fences is not None:
            self._counts["not_owned"] = 0  # events of a PBX another node owns: not written
        self._backlog_full = False
        self._degraded_since: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._last_write_at: float | None = None

    @classmethod
    def in_thread_pool(
        cls,
        store: RecordSink,
        reactor: Any,
        *,
        threads: int = 2,
        pool: ThreadPool | None = None,
        **options: Any,
    ) -> RecordWriter:
        """The production wiring: writes run in ``pool`` (or a new one of ``threads``
        threads that ``stop()`` shuts down). ``reactor`` provides time and threads."""
        assert IReactorTime.providedBy(reactor) and IReactorFromThreads.providedBy(reactor)
        owned = pool is None
        if pool is None:
            pool = ThreadPool(minthreads=0, maxthreads=threads, name="cti-bridge-records")
            pool.start()
        writer = cls(store, reactor, partial(_defer_in, reactor, pool), **options)
        if owned:
            writer._pool = pool
        return writer

    # --- the reactor side ------------------------------------------------------------

    def submit(self, event: DomainEvent) -> None:
        """Queue ``event`` for writing. Never blocks, never raises."""
        if self._stopped:
            self._counts["dropped"] += 1
            log.error("record writer stopped; event not written", **_about(event))
            return
        if self._pending >= self._max_pending and not self._make_room():
            self._counts["dropped"] += 1
            if not self._backlog_full:
                log.error(
                    "call record backlog full: events are being dropped",
                    max_pending=self._max_pending,
                    **_about(event),
                )
            self._backlog_full = True
            return
        if self._spool is not None:  # before queueing: a write may finish at once
            self._tickets.setdefault(id(event), []).append(self._spool.add(event))
        self._enqueue(self._lane_for(_key(event)), event)

    def replay(self, tickets: Sequence[Ticket]) -> int:
        """Queue events a spool kept from an earlier run, in their order (call it before
        the PBX links start, so they come before anything live); how many were queued.
        Those that do not fit the backlog stay in the spool for a later start."""
        for queued, ticket in enumerate(tickets):
            event = ticket.event
            if self._pending >= self._max_pending and not self._make_room():
                log.error(
                    "call record backlog full: spooled events left for a later start",
                    left=len(tickets) - queued,
                    max_pending=self._max_pending,
                )
                return queued
            self._tickets.setdefault(id(event), []).append(ticket)
            self._enqueue(self._lane_for(_key(event)), event)
        return len(tickets)

    def _finish(self, items: Iterable[Item]) -> None:
        """``items`` are written, or dropped for good: the spool may let them go."""
        if self._spool is None:
            return
        for item in items:
            if isinstance(item, CloseStale):
                continue
            tickets = self._tickets.get(id(item))
            if not tickets:
                continue
            ticket = tickets.pop()
            if not tickets:
                del self._tickets[id(item)]
            self._spool.done(ticket)

    def _supersede(self, pairs: list[tuple[Item, Item]]) -> None:
        """Compaction dropped each pair's first event for its second (a newer snapshot
        of the same call): the spool lets the first go when the second is safe."""
        if self._spool is None:
            return
        for old, new in pairs:
            tickets = self._tickets.get(id(old))
            newer = self._tickets.get(id(new))
            if not tickets:
                continue
            ticket = tickets.pop()
            if not tickets:
                del self._tickets[id(old)]
            if newer:
                self._spool.supersede(ticket, newer[-1])
            else:
                self._spool.done(ticket)

    def resynced(self, pbx: str, live_linkedids: Iterable[str], at: float) -> None:
        """Tell the writer which calls of ``pbx`` are live after a (re)start's resync;
        open records of other calls that started before ``at`` are closed, after every
        event submitted before this one has been written."""
        marker = CloseStale(pbx, frozenset(live_linkedids), at)
        for lane in self._lanes:
            self._enqueue(lane, marker)

    def flush(self) -> Deferred[None]:
        """Fires once everything submitted so far is written (waits out an outage)."""
        if self._idle():
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def stop(self, timeout: float = 10.0) -> Deferred[None]:
        """Stop taking events, give the backlog ``timeout`` seconds, then let go.

        Stopping an owned pool waits for a write already running in it (at most the
        database's connect or statement time): call this at shutdown, not per request.
        """
        self._stopped = True
        done: Deferred[None] = Deferred()

        def finished(_: object = None) -> None:
            if give_up.active():
                give_up.cancel()
            if not done.called:
                done.callback(None)

        give_up = self._clock.callLater(timeout, finished)

        self.flush().addBoth(finished)

        def release(_: object) -> None:
            self._released = True
            for lane in self._lanes:
                if lane.retry is not None and lane.retry.active():
                    lane.retry.cancel()
                lane.retry = None
            if self._pending:
                log.error(
                    "record writer stopped with events unwritten",
                    unwritten=self._pending,
                    spooled=self._spool is not None,
                )
            if self._pool is not None:
                self._pool.stop()
                self._pool = None

        return done.addCallback(release)

    def status(self) -> dict[str, Any]:
        """For /healthz: "degraded" while writes fail or events were dropped."""
        degraded = self._degraded_since is not None or self._backlog_full
        return {
            "status": "degraded" if degraded else "ok",
            "pending": self._pending,
            **self._counts,
            "backlog_full": self._backlog_full,
            "max_pending": self._max_pending,
            "lanes": len(self._lanes),
            "degraded_since": iso_utc(_from_posix(self._degraded_since)),
            "last_error": self._last_error,
            "last_error_at": iso_utc(_from_posix(self._last_error_at)),
            "last_write_at": iso_utc(_from_posix(self._last_write_at)),
        }

    # --- queueing --------------------------------------------------------------------

    def _lane_for(self, key: tuple[str, str] | None) -> _Lane:
        if key is None or len(self._lanes) == 1:
            return self._lanes[0]
        digest = zlib.crc32(f"{key[0]}\x00{key[1]}".encode("utf-8", "replace"))
        return self._lanes[digest % len(self._lanes)]

    def _owns(self, lane: _Lane, key: tuple[str, str]) -> bool:
        return self._lane_for(key) is lane

    def _enqueue(self, lane: _Lane, item: Item) -> None:
        lane.queue.append(item)
        self._pending += 1
        self._kick(lane)

    def _make_room(self) -> bool:
        """Keep only the newest queued event per call (in-flight batches untouched)."""
        for lane in self._lanes:
            newest: dict[tuple[str, str], int] = {}
            for position, item in enumerate(lane.queue):
                if (key := _key(item)) is not None:
                    newest[key] = position
            kept: deque[Item] = deque()
            superseded: list[tuple[Item, Item]] = []  # (dropped, the newest of its call)
            queue = lane.queue
            for position, item in enumerate(queue):
                if (key := _key(item)) is None or newest[key] == position:
                    kept.append(item)
                else:
                    superseded.append((item, queue[newest[key]]))
            self._pending -= len(superseded)
            lane.queue = kept
            self._supersede(superseded)
        return self._pending < self._max_pending

    def _idle(self) -> bool:
        return self._pending == 0

    # --- writing ---------------------------------------------------------------------

    def _kick(self, lane: _Lane) -> None:
        """Start the lane's next batch; loops instead of recursing when writes finish
        synchronously (as they do in tests)."""
        self._again.append(lane)
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._again:
                self._start(self._again.pop(0))
        finally:
            self._pumping = False

    def _start(self, lane: _Lane) -> None:
        if lane.inflight is not None or lane.retry is not None or not lane.queue:
            return
        if self._released:
            return
        size = 1 if lane.one_by_one else self._max_batch
        batch = [lane.queue.popleft() for _ in range(min(size, len(lane.queue)))]
        tokens: dict[str, int] | None = None
        if self._fences is not None:
            tokens, batch = self._owned(batch)
            if not batch:
                self._notify_if_idle()
                self._again.append(lane)
                return
        lane.inflight = batch
        d = self._run(partial(self._write, lane, batch, tokens))
        d.addCallbacks(self._written, self._failed, callbackArgs=(lane,), errbackArgs=(lane,))

    def _owned(self, batch: list[Item]) -> tuple[dict[str, int], list[Item]]:
        """This node's token per PBX of ``batch``, and the items it may write: a PBX it
        does not own now is not its to write (asked with the clock's time, so a node
        that was paused past its lease drops them before any timer told it)."""
        assert self._fences is not None
        tokens: dict[str, int] = {}
        refused: set[str] = set()
        for pbx in {_pbx(item) for item in batch}:
            token = self._fences.token(pbx)
            if token is None:
                refused.add(pbx)
            else:
                tokens[pbx] = token
        if not refused:
            return tokens, batch
        kept = [item for item in batch if _pbx(item) not in refused]
        self._finish(item for item in batch if _pbx(item) in refused)
        dropped = len(batch) - len(kept)
        self._pending -= dropped
        self._counts["not_owned"] += dropped
        log.warning(
            "call record events of a PBX this node does not own; not written",
            pbx=sorted(refused),
            events=dropped,
        )
        return tokens, kept

    def _write(self, lane: _Lane, batch: list[Item], tokens: dict[str, int] | None) -> int:
        """In a pool thread: consecutive events share a transaction."""
        changed = 0
        events: list[DomainEvent] = []

        def apply() -> int:
            if tokens is None:
                return self._store.apply(events)
            fences = {pbx: tokens[pbx] for pbx in {e.call.pbx for e in events}}
            return self._store.apply(events, fences=fences)

        for item in batch:
            if isinstance(item, CloseStale):
                if events:
                    changed += apply()
                    events = []
                owns = None if len(self._lanes) == 1 else partial(self._owns, lane)
                if tokens is None:
                    self._store.close_stale(item.pbx, item.live_linkedids, item.at, owns=owns)
                else:
                    fence = tokens[item.pbx]
                    self._store.close_stale(
                        item.pbx, item.live_linkedids, item.at, owns=owns, fence=fence
                    )
            else:
                events.append(item)
        if events:
            changed += apply()
        return changed

    def _written(self, _changed: int, lane: _Lane) -> None:
        batch = lane.inflight or []
        lane.inflight = None
        self._pending -= len(batch)
        self._finish(batch)
        lane.one_by_one = max(0, lane.one_by_one - len(batch))
        self._counts["written"] += sum(1 for item in batch if not isinstance(item, CloseStale))
        self._counts["batches"] += 1
        self._last_write_at = self._clock.seconds()
        if lane.failures:
            log.info("call records are being written again", lane=lane.index)
        lane.failures = 0
        if self._degraded_since is not None and not any(x.failures for x in self._lanes):
            self._degraded_since = None
        if self._backlog_full and self._pending < self._max_pending // 2:
            self._backlog_full = False
        self._notify_if_idle()
        self._kick(lane)

    def _notify_if_idle(self) -> None:
        if self._idle():
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _failed(self, failure: Failure, lane: _Lane) -> None:
        batch = lane.inflight or []
        lane.inflight = None
        error = failure.value
        assert error is not None
        if isinstance(error, FenceRefused) and self._fences is not None:
            # Another node owns the PBX now: give it up; the next start of this lane
            # drops its events (or writes them with a newer token of this node's).
            log.error(
                "call records refused: this node's fencing token is stale",
                pbx=error.pbx,
                token=error.token,
                current=error.current,
            )
            lane.queue.extendleft(reversed(batch))
            self._fences.refused(error.pbx, error.token, error.current)
            self._kick(lane)
            return
        self._last_error = _describe(error)
        self._last_error_at = self._clock.seconds()
        if is_transient(error):
            lane.queue.extendleft(reversed(batch))
            lane.failures += 1
            self._counts["retries"] += 1
            if self._degraded_since is None:
                self._degraded_since = self._clock.seconds()
            delay = self._backoff.delay(lane.failures)
            (log.error if lane.failures == 1 else log.warning)(
                "database disk full; call records kept and retried"
                if _disk_full(self._last_error)
                else "database unavailable; call records kept and retried",
                error=self._last_error,
                pending=self._pending,
                retry_in=round(delay, 2),
                lane=lane.index,
            )
            lane.retry = self._clock.callLater(delay, self._retry, lane)
            return
        if len(batch) > 1:
            log.warning("database refused a batch; writing it one by one", error=self._last_error)
            lane.queue.extendleft(reversed(batch))
            lane.one_by_one = len(batch)
        else:
            self._pending -= len(batch)
            lane.one_by_one = max(0, lane.one_by_one - 1)
            self._counts["failed"] += len(batch)
            self._finish(batch)
            for item in batch:
                log.error(
                    "database refused a call record event; set aside",
                    error=self._last_error,
                    **(_about(item) if not isinstance(item, CloseStale) else {"pbx": item.pbx}),
                )
            self._notify_if_idle()
        self._kick(lane)

    def _retry(self, lane: _Lane) -> None:
        lane.retry = None
        self._kick(lane)


def _disk_full(error: str) -> bool:
    """SQLite's SQLITE_FULL, PostgreSQL's "could not extend file" / ENOSPC."""
    text = error.lower()
    return "disk is full" in text or "no space left" in text or "could not extend" in text


def _about(event: DomainEvent) -> dict[str, str]:
    return {"kind": type(event).__name__, "pbx": event.call.pbx, "linkedid": event.call.linkedid}


def _defer_in(reactor: Any, pool: ThreadPool, work: Callable[[], T]) -> Deferred[T]:
    return deferToThreadPool(reactor, pool, work)
