"""``install(node)``: on the call events when some queue has missed calls on, its figures
under ``/healthz`` and ``/metrics``; off by default, and then nothing at all."""

from __future__ import annotations

import pytest

from cti_bridge.callbacks import AGREEMENTS_CHANGED
from cti_bridge.missed import install
from cti_bridge.missed.service import MissedCallService
from cti_bridge.testing.store import START
from tests.support.calls_facts import messages

from .support import memory_node


@pytest.mark.parametrize(
    ("missed_calls", "installed"),
    [
        ({}, False),  # off by default
        ({"enabled": False, "queues": {"support": {"min_wait_seconds": 5}}}, False),
        ({"queues": {"sales": {"enabled": True}}}, True),  # one queue is enough
        ({"enabled": True}, True),
    ],
)
def test_installed_only_when_on_somewhere(missed_calls: dict[str, object], installed: bool) -> None:
    fakes = memory_node(missed_calls)
    install(fakes.node)
    assert (len(fakes.pipeline.consumers) == 1) is installed
    assert ("missed" in fakes.node.parts) is installed


def test_its_figures_on_healthz_and_metrics() -> None:
    fakes = memory_node({"enabled": True, "min_wait_seconds": 30})
    install(fakes.node)
    for i, msg in enumerate(messages("02-queue-abandoned.ami")):
        fakes.pipeline.ami_event(msg, START + i)
    detail = fakes.node.health.section("database")["missed_calls"]
    assert detail["status"] == "ok" and detail["created"] == 1 and detail["pending"] == 0
    metrics = fakes.node.metrics.render().decode()
    assert 'cti_missed_calls_total{result="created"} 1.0' in metrics
    assert 'cti_missed_calls_total{result="failed"} 0.0' in metrics
    assert fakes.node.part("missed", MissedCallService).counts()["created"] == 1


def test_a_new_callback_is_the_nodes_agreements_changed_signal() -> None:
    fakes = memory_node({"enabled": True, "min_wait_seconds": 30})
    told: list[str] = []
    fakes.node.listen(AGREEMENTS_CHANGED, lambda: told.append("changed"))
    install(fakes.node)
    for i, msg in enumerate(messages("02-queue-abandoned.ami")):
        fakes.pipeline.ami_event(msg, START + i)
    assert told == ["changed"]  # the trace's one abandon made one callback
