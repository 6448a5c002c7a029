"""``install(node)``: the record writer on the node's call events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .writer import RecordWriter

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["THREADS", "install"]

#: Threads that write call records (the writer's own pool; the store's connection pool
#: counts them).
THREADS = 2


def install(node: Node) -> None:
    writer = RecordWriter.in_thread_pool(
        node.store.calls,
        node.reactor,
        threads=THREADS,
        max_pending=node.config.database.max_pending_events,
        fences=node.fences,
    )
    node.add_consumer(writer.submit)
    node.add_resync_hook(writer.resynced)
    node.health.add_detail("database", "records", writer.status)
    node.metrics.add(lambda: record_metrics(writer))
    # After the PBX links closed: write what is queued, then the store may close.
    node.on_flush(writer.stop)
    node.provide("records", writer)


def record_metrics(writer: RecordWriter) -> Iterator[Metric]:
    status = writer.status()
    yield GaugeMetricFamily(
        "cti_records_pending", "Call events waiting to be written", value=status["pending"]
    )
    yield CounterMetricFamily("cti_records_written", "Call events written", value=status["written"])
    yield CounterMetricFamily(
        "cti_records_dropped", "Call events dropped (backlog full)", value=status["dropped"]
    )
