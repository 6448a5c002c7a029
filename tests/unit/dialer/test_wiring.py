"""The dialer room on a node: installed only when enabled, with its listener, hooks,
health detail, metrics and part."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from twisted.internet.testing import MemoryReactorClock

from cti_bridge import dialer
from cti_bridge.ami.client import AMIAccount, AMIClient
from cti_bridge.app.config import parse_config
from cti_bridge.app.daemon import FEATURES
from cti_bridge.app.node import Node
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.callbacks import AGREEMENTS_CHANGED
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline
from cti_bridge.dialer.service import DialerService
from cti_bridge.store import Store
from cti_bridge.store.memory import open_memory_store
from tests.support.ami_link import SECRET, FakeEndpoint


def node(enabled: bool) -> Node:
    config = parse_config(
        {
            "web": {"host": "127.0.0.1", "port": 0},
            "database": {"url": "sqlite://"},
            "bus": {"url": "memory://"},
            "node": {"name": "node-a"},
            "dialer": {"enabled": enabled},
            "pbx": [{"name": "main", "host": "127.0.0.1", "username": "cti", "secret": SECRET}],
        },
        source="test",
    )
    reactor = MemoryReactorClock()
    pipeline = CallPipeline(CallModel("main"))
    client = AMIClient(
        reactor,
        AMIAccount("main", "127.0.0.1", 5038, "cti", SECRET, auth="plain"),
        endpoint=FakeEndpoint(),
        listeners=[pipeline],
    )
    memory = open_memory_store()
    store = cast(
        Store,
        SimpleNamespace(
            sessions=None,
            accounts=memory.accounts,
            agreements=memory.agreements,
            url="memory:",
            ping=lambda: None,
        ),
    )
    return Node(
        config, reactor, store, MemoryBus(reactor),
        clients={"main": client}, pipelines={"main": pipeline},
    )  # fmt: skip


def test_the_daemon_installs_the_dialer_after_the_queues() -> None:
    assert FEATURES.index("dialer") == FEATURES.index("queues") + 1


def test_a_disabled_dialer_adds_nothing() -> None:
    n = node(enabled=False)
    hooks = (len(n.starting), len(n.stopping))
    dialer.install(n)
    assert "dialer" not in n.parts
    assert (len(n.starting), len(n.stopping)) == hooks
    assert "dialer" not in n.health.section("database")


def test_an_enabled_dialer_listens_starts_stops_and_reports() -> None:
    n = node(enabled=True)
    dialer.install(n)
    service = n.part("dialer", DialerService)
    assert service.node_name == "node-a"
    assert service.listeners["main"] in n.clients["main"]._listeners
    assert service.start in n.starting and service.stop in n.stopping
    shown: dict[str, Any] = n.health.section("database")["dialer"]
    assert (shown["status"], shown["running"], shown["operator_board"]) == ("ok", False, False)
    metrics = n.metrics.render().decode()
    for name in ("cti_dialer_passes", "cti_dialer_originates", "cti_dialer_due_backlog"):
        assert name in metrics


def test_the_agreements_changed_signal_kicks_a_pass() -> None:
    n = node(enabled=True)
    dialer.install(n)
    reactor = cast(MemoryReactorClock, n.reactor)
    assert reactor.getDelayedCalls() == []
    n.notify(AGREEMENTS_CHANGED)
    n.notify(AGREEMENTS_CHANGED)  # a kick pending: still one
    [kick] = reactor.getDelayedCalls()
    assert kick.getTime() == reactor.seconds()  # at once, not after pass_seconds
