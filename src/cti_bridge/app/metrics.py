"""``/metrics``: Prometheus text, read from the parts' own counters at scrape time.

Nothing is counted twice on the hot path: the pipeline, the writer and the pop engine
already keep plain integer counters; each registers a source (a callable yielding metric
families) that turns them into metrics when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["MetricSource", "Metrics", "link_metrics"]

MetricSource = Callable[[], Iterable[Metric]]


class _Sources(Collector):
    def __init__(self, sources: list[MetricSource]):
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source()


class Metrics:
    """The sources, in the order they were added."""

    def __init__(self) -> None:
        self._sources: list[MetricSource] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Sources(self._sources))

    def add(self, source: MetricSource) -> None:
        self._sources.append(source)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Status(Protocol):
    def status(self) -> dict[str, Any]: ...


def link_metrics(clients: Mapping[str, _Status], pipelines: Mapping[str, _Status]) -> MetricSource:
    """The PBX links' and their call pipelines' figures, labelled by PBX."""

    def collect() -> Iterator[Metric]:
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
        for name, client in clients.items():
            connected.add_metric([name], 1.0 if client.status()["connected"] else 0.0)
        for name, pipeline in pipelines.items():
            status = pipeline.status()
            events.add_metric([name], status["events"])
            live.add_metric([name], status["live_calls"])
            started.add_metric([name], status["calls_started"])
            for outcome, count in status["calls_ended"].items():
                ended.add_metric([name, outcome], count)
            errors.add_metric([name], status["model_errors"] + status["consumer_errors"])
        yield from (connected, events, live, started, ended, errors)

    return collect
