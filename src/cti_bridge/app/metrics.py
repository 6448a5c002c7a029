"""``/metrics``: Prometheus text, read from the parts' own counters at scrape time.

Nothing is counted twice on the hot path: the pipeline and the writer already keep plain
integer counters, and this collector turns them into metric families when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .daemon import Daemon


class _DaemonCollector(Collector):
    def __init__(self, daemon: Daemon):
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        connected = GaugeMetricFamily(
            "cti_ami_connected", "1 when the PBX link is up and resynced", labels=["pbx"]
        )
        events = CounterMetricFamily("cti_ami_events", "AMI events received", labels=["pbx"])
        live = GaugeMetricFamily("cti_live_calls", "Calls in progress", labels=["pbx"])
        started = CounterMetricFamily("cti_calls_started", "Calls started", labels=["pbx"])
        ended = CounterMetricFamily(
            "cti_calls_ended", "Calls ended, by outcome", labels=["pbx", "outcome"]
        )
        errors = CounterMetricFamily(
            "cti_pipeline_errors", "Model or consumer failures (isolated)", labels=["pbx"]
        )
        for name, client in d.clients.items():
            connected.add_metric([name], 1.0 if client.status()["connected"] else 0.0)
        for name, pipeline in d.pipelines.items():
            status = pipeline.status()
            events.add_metric([name], status["events"])
            live.add_metric([name], status["live_calls"])
            started.add_metric([name], status["calls_started"])
            for outcome, count in status["calls_ended"].items():
                ended.add_metric([name, outcome], count)
            errors.add_metric([name], status["model_errors"] + status["consumer_errors"])
        yield from (connected, events, live, started, ended, errors)
        writer: dict[str, Any] = d.writer.status()
        yield GaugeMetricFamily(
            "cti_records_pending", "Call events waiting to be written", value=writer["pending"]
        )
        yield CounterMetricFamily(
            "cti_records_written", "Call events written", value=writer["written"]
        )
        yield CounterMetricFamily(
            "cti_records_dropped", "Call events dropped (backlog full)", value=writer["dropped"]
        )
        yield GaugeMetricFamily(
            "cti_screen_sockets", "Open operator/supervisor WebSockets", value=len(d.hub.sockets)
        )
        pops: dict[str, Any] = d.pop.status()
        yield CounterMetricFamily("cti_screen_pops", "Screen-pops sent", value=pops["pops"])
        latency = GaugeMetricFamily(
            "cti_ring_to_pop_seconds",
            "Ring event to pop published, recent calls",
            labels=["quantile"],
        )
        for quantile in ("p50", "p95", "max"):
            value = pops["ring_to_pop_ms"][quantile]
            if value is not None:
                latency.add_metric([quantile], value / 1000.0)
        yield latency
        reachable = d.health()["database"]["status"] == "ok"
        yield GaugeMetricFamily(
            "cti_database_up", "1 when the database answers", value=1.0 if reachable else 0.0
        )


class Metrics:
    def __init__(self, daemon: Daemon):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_DaemonCollector(daemon))

    def render(self) -> bytes:
        return generate_latest(self.registry)
