"""A node on fakes for the missed-calls room: the memory store, a memory reactor, and a
thread pool that runs its work at once (no threads, no global reactor)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from cti_bridge.app.config import parse_config
from cti_bridge.app.node import Node
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline
from cti_bridge.store import Store
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.testing.store import START


class ThreadlessReactor(MemoryReactorClock):
    """A memory reactor whose ``callFromThread`` runs the call at once."""

    def callFromThread(self, f: Callable[..., object], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


class SyncPool(ThreadPool):
    """Runs each job when it is handed in, in the caller's thread."""

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object] | None,
        func: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        try:
            result = func(*args, **kw)
        except Exception:
            if onResult is not None:
                onResult(False, Failure())
            return
        if onResult is not None:
            onResult(True, result)


@dataclass
class MemoryNode:
    node: Node
    store: MemoryStore
    pipeline: CallPipeline
    reactor: ThreadlessReactor


def memory_node(
    missed_calls: dict[str, Any], *, store: MemoryStore | None = None, **sections: Any
) -> MemoryNode:
    """A node with ``[missed_calls]`` (and any other sections) on ``store`` (a new memory
    store by default; hand one in for a second node on the same book)."""
    config = parse_config(
        {
            "web": {"host": "127.0.0.1", "port": 0},
            "database": {"url": "sqlite://"},
            "bus": {"url": "memory://"},
            "pbx": [{"name": "main", "host": "127.0.0.1", "username": "cti", "secret": "s"}],
            "missed_calls": missed_calls,
            **sections,
        },
        source="test",
    )
    reactor = ThreadlessReactor()
    reactor.advance(START)
    store = store or open_memory_store(clock=reactor.seconds)
    pipeline = CallPipeline(CallModel("main"))
    node = Node(
        config,
        reactor,
        cast(Store, SimpleNamespace(**vars(store), sessions=None, url="memory:")),
        MemoryBus(reactor),
        clients={},
        pipelines={"main": pipeline},
        pool=SyncPool(),
        pop_pool=SyncPool(),
    )
    return MemoryNode(node, store, pipeline, reactor)
