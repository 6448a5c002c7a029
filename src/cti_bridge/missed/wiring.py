"""``install(node)``: missed calls become callback agreements, on the node's call events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric

from cti_bridge.callbacks import AGREEMENTS_CHANGED
from cti_bridge.dialer.policy import Policy, business_deadline
from cti_bridge.store.numbers import normalize_number

from .service import MissedCallService

if TYPE_CHECKING:
    from cti_bridge.app.config import MissedCallsConfig
    from cti_bridge.app.node import Node

__all__ = ["enabled_anywhere", "install"]


def enabled_anywhere(config: MissedCallsConfig) -> bool:
    """Off by default: on when ``[missed_calls] enabled`` or one queue's ``enabled`` is."""
    return config.enabled or any(q.enabled for q in config.queues.values())


def install(node: Node) -> None:
    config = node.config
    if not enabled_anywhere(config.missed_calls):
        return  # no promise is made, none is kept: nothing to listen to
    policy = config.dialer.policy()
    service = MissedCallService(
        node.store.missed,
        node.store.callers,
        settings=config.missed_calls.for_queue,
        normalize=partial(normalize_number, region=config.phone.default_region),
        deadline=partial(_deadline, policy=policy),
        clock=node.reactor,
        run=node.run,
    )
    node.add_consumer(service.submit)
    # A new callback is due at once: the dialer (when on) looks without waiting.
    service.agreement_listeners.append(partial(node.notify, AGREEMENTS_CHANGED))
    node.health.add_detail("database", "missed_calls", service.status)
    node.metrics.add(lambda: missed_metrics(service))
    # After the PBX links closed: finish what is queued, then the store may close.
    node.on_flush(service.stop)
    node.provide("missed", service)


def _deadline(start: datetime, hours: float, *, policy: Policy) -> datetime:
    return business_deadline(start, hours, policy)


def missed_metrics(service: MissedCallService) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "cti_missed_calls",
        "Missed queue calls and the callback agreements they made or kept",
        labels=["result"],
    )
    for result, count in service.counts().items():
        family.add_metric([result], count)
    yield family
