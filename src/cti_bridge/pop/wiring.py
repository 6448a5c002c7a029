"""``install(node)``: the screen-pop engine on the node's call events.

Pops are built from the domain events in the node's pop pool and go out on the bus
(``operator.<id>``); the hub's ``pop.replay`` re-sends them to a screen that connects.
The operator directory's reloads stay in the node's shared pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import make_pop_service
from .service import PopService

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["install", "pop_metrics"]


def install(node: Node) -> None:
    service = make_pop_service(
        node.store,
        node.reactor,
        node.bus,
        node.run,
        build_in=node.run_pop_work,
        default_region=node.config.phone.default_region,
        zone=node.config.dialer.timezone,
        own_history=node.config.web.call_history == "own",
    )
    node.add_consumer(service.handle)
    node.on_start(service.start)
    node.on_stop(service.stop)
    node.health.add("pops", service.status, counts=False)
    node.metrics.add(lambda: pop_metrics(service))
    node.provide("pop", service)
    # The console's call visibility: a call on an operator's screen now is theirs.
    node.provide("pops_on_screen", service.core.pops_of)


def pop_metrics(service: PopService) -> Iterator[Metric]:
    pops: dict[str, Any] = service.status()
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
