"""``install(node)``: the record writer on the node's call events, and its spool."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.engine import make_url
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from cti_bridge.lease import Fences

from .spool import Spool, SpoolFiles, Ticket
from .writer import RecordWriter

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["THREADS", "HeldReplay", "install", "spool_directory"]

log = structlog.get_logger("cti_bridge.records")

#: Threads that write call records (the writer's own pool; the store's connection pool
#: counts them).
THREADS = 2

#: How often replayed events of a PBX this node does not own yet are looked at again.
OWNERSHIP_POLL = 0.5


def spool_directory(database_url: str, configured: str | None, node_name: str) -> Path | None:
    """Where the spool lives: configured, or next to a SQLite file, or (another
    database) ``cti-bridge-<node>-spool`` in the working directory; ``None``: no spool
    (configured ``""``, or a SQLite database in memory)."""
    if configured is not None:
        return Path(configured) if configured else None
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return None
        return Path(database + "-spool")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in node_name) or "node"
    return Path(f"cti-bridge-{safe}-spool")


class HeldReplay:
    """Replayed events wait here until the node owns their PBX: they are written under
    the node's *current* token, as live events are, never under the one of the run that
    spooled them. Without fencing (one node) they go to the writer at once."""

    def __init__(self, writer: RecordWriter, fences: Fences | None, clock: IReactorTime) -> None:
        self._writer = writer
        self._fences = fences
        self._held: dict[str, list[Ticket]] = {}
        self._loop = LoopingCall(self.release)
        self._loop.clock = clock

    def offer(self, tickets: list[Ticket]) -> None:
        if self._fences is None:
            self._writer.replay(tickets)
            return
        for ticket in tickets:
            self._held.setdefault(ticket.event.call.pbx, []).append(ticket)
        self.release()
        if self._held and not self._loop.running:
            self._loop.start(OWNERSHIP_POLL, now=False)

    def release(self) -> None:
        if self._fences is None:
            return
        for pbx in list(self._held):
            if self._fences.token(pbx) is not None:
                tickets = self._held.pop(pbx)
                log.info("replaying spooled call events now this node owns the PBX", pbx=pbx,
                         events=len(tickets))  # fmt: skip
                self._writer.replay(tickets)
        if not self._held and self._loop.running:
            self._loop.stop()

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def held(self) -> dict[str, int]:
        return {pbx: len(tickets) for pbx, tickets in self._held.items()}


def install(node: Node) -> None:
    database = node.config.database
    directory = None
    if node.config.node.role != "web":  # a web node writes no records
        directory = spool_directory(database.url, database.spool_dir, node.config.node.name)
    spool: Spool | None = None
    pool: ThreadPool | None = None
    if directory is not None:
        pool = ThreadPool(minthreads=0, maxthreads=1, name="cti-bridge-spool")
        pool.start()
        files = SpoolFiles(directory, max_bytes=database.spool_max_bytes)
        spool = Spool(files, node.reactor, partial(deferToThreadPool, node.reactor, pool))
    writer = RecordWriter.in_thread_pool(
        node.store.calls,
        node.reactor,
        threads=THREADS,
        max_pending=database.max_pending_events,
        fences=node.fences,
        spool=spool,
    )
    held = HeldReplay(writer, node.fences, node.reactor) if spool is not None else None
    node.add_consumer(writer.submit)
    if held is not None and node.fences is not None:
        # A PBX's link resyncs once the node owns it: replayed events go before the
        # resync's close-stale marker, not up to a poll later.
        node.add_resync_hook(lambda pbx, live, at: held.release())
    node.add_resync_hook(writer.resynced)
    node.health.add_detail("database", "records", writer.status)
    node.metrics.add(lambda: record_metrics(writer))
    # After the PBX links closed: write what is queued, then the store may close.
    node.on_flush(writer.stop)
    node.provide("records", writer)
    if spool is None or pool is None or held is None:
        return

    def status() -> dict[str, Any]:
        return {**spool.status(), "held": held.held()}

    # Before the PBX links start: what an earlier run left comes before anything live.
    node.on_start(lambda: spool.open().addCallback(held.offer))
    node.health.add_detail("database", "spool", status)
    node.metrics.add(lambda: spool_metrics(spool))

    def close() -> object:
        held.stop()
        return spool.close().addBoth(lambda _: pool.stop())

    node.on_flush(close)  # after the writer: what it could not write stays on disk
    node.provide("spool", spool)


def record_metrics(writer: RecordWriter) -> Iterator[Metric]:
    status = writer.status()
    yield GaugeMetricFamily(
        "cti_records_pending", "Call events waiting to be written", value=status["pending"]
    )
    yield CounterMetricFamily("cti_records_written", "Call events written", value=status["written"])
    yield CounterMetricFamily(
        "cti_records_dropped", "Call events dropped (backlog full)", value=status["dropped"]
    )


def spool_metrics(spool: Spool) -> Iterator[Metric]:
    status = spool.status()
    yield GaugeMetricFamily(
        "cti_records_spool_bytes", "Size of the call record spool on disk", value=status["bytes"]
    )
    yield GaugeMetricFamily(
        "cti_records_spool_pending",
        "Call events on disk in the spool, not yet in the database",
        value=status["pending"],
    )
    yield CounterMetricFamily(
        "cti_records_spool_refused",
        "Call events the spool refused (full)",
        value=status["refused"],
    )
    yield CounterMetricFamily(
        "cti_records_spool_write_errors",
        "Spool writes that failed (disk full, I/O error)",
        value=status["write_errors"],
    )
