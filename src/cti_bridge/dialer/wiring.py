"""``install(node)``: the callback dialer on the node, when ``[dialer] enabled``.

The dialer listens on every PBX link (its attempts' events, each link's resync and
loss), starts its passes with the node and stops them first thing when the node stops
(before the links close: an attempt still ringing is resolved at the next start). Its
figures are ``database.dialer`` on ``/healthz`` (degraded while outcomes wait for the
store) and ``cti_dialer_*`` in ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from cti_bridge.callbacks import AGREEMENTS_CHANGED

from .service import DialerService

if TYPE_CHECKING:
    from cti_bridge.app.node import Node

__all__ = ["dialer_metrics", "install"]


def install(node: Node) -> None:
    if not node.config.dialer.enabled or node.config.node.role == "web":
        return  # a web node dials nothing: it runs no PBX link
    service = DialerService.for_node(node)
    for pbx, listener in service.listeners.items():
        node.add_listener(listener, pbx=pbx)
    # The start hooks run before the PBX links start: the first pass finds no link up
    # and dials nothing; each link's resync settles its open attempts, then kicks a pass.
    node.on_start(service.start)
    node.on_stop(service.stop)
    node.health.add_detail("database", "dialer", service.status)
    node.metrics.add(lambda: dialer_metrics(service))
    node.provide("dialer", service)
    # An agreement made or changed (the console, a missed call) is looked at at once.
    node.listen(AGREEMENTS_CHANGED, service.kick)


def dialer_metrics(service: DialerService) -> Iterator[Metric]:
    status = service.status()
    yield CounterMetricFamily("cti_dialer_passes", "Dialer passes run", value=status["passes"])
    yield CounterMetricFamily(
        "cti_dialer_originates", "Callback Originates sent", value=status["originates"]
    )
    attempts = CounterMetricFamily(
        "cti_dialer_attempts", "Callback attempts ended, by outcome", labels=["outcome"]
    )
    for outcome, count in status["attempts"].items():
        attempts.add_metric([outcome], count)
    yield attempts
    yield GaugeMetricFamily(
        "cti_dialer_due_backlog",
        "Due callbacks read by the last pass",
        value=status["due_backlog"],
    )
    yield GaugeMetricFamily(
        "cti_dialer_in_flight", "Callback attempts being followed", value=len(status["in_flight"])
    )
    yield GaugeMetricFamily(
        "cti_dialer_unfinished",
        "Ended attempts waiting for the store",
        value=status["unfinished"],
    )
