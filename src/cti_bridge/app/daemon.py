"""The daemon: builds the node, installs the features, starts and stops them in order.

Start-up does its blocking checks (open the database, refuse an out-of-date schema)
before the reactor runs; after that everything blocking happens in the node's bounded
thread pools. What each feature does, and what it adds to the node, is in its own
package (``records/``, ``missed/``, ``pop/``, ``console/``, ``agi/``, ``queues/``, ``dialer/``).
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any, TypeVar

import structlog
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure

from cti_bridge import records
from cti_bridge.bus import make_bus
from cti_bridge.calls.pipeline import Consumer
from cti_bridge.log import configure_logging
from cti_bridge.store import Store, open_store
from cti_bridge.web.access import AccessLogSite

from .config import Config
from .node import DB_CHECK_INTERVAL, Feature, Node, pbx_links
from .ownership import Ownership

log = structlog.get_logger("cti_bridge.daemon")
T = TypeVar("T")

#: The features (``cti_bridge.<name>`` packages, each with ``install(node)``), installed
#: in this order: the records before the pops (each call event is queued for its record
#: first, then for the missed-call book), the console's routes before the AGI's. A new
#: feature is its folder and its name here.
FEATURES = ("records", "backfill", "missed", "pop", "console", "agi", "queues", "dialer")


def load_features(names: Iterable[str] = FEATURES) -> list[Feature]:
    features: list[Feature] = []
    for name in names:
        feature = import_module(f"cti_bridge.{name}")
        if not isinstance(feature, Feature):
            raise TypeError(f"cti_bridge.{name} has no install(node)")
        features.append(feature)
    return features


class Daemon:
    """Every running part of one cti-bridge node."""

    def __init__(self, config: Config, reactor: Any, *, store: Store | None = None):
        store = store or open_store(
            config.database.url,
            default_region=config.phone.default_region,
            # One connection for every thread that may hold one at the same time.
            pool_size=config.database.pool_size + config.database.pop_threads + records.THREADS,
            accounts={
                "token_lifetime": config.web.token_ttl_hours * 3600.0,
                "max_failures": config.web.login_max_failures,
                "max_failures_per_account": config.web.login_max_failures_per_account,
                "max_failures_per_source": config.web.login_max_failures_per_source,
                "failure_window": config.web.login_window_seconds,
            },
        )
        clients, pipelines = pbx_links(config, reactor)
        self.node = node = Node(
            config, reactor, store, make_bus(config.bus.url, reactor),
            clients=clients, pipelines=pipelines,
        )  # fmt: skip
        node.ownership = ownership_for(node)
        for feature in load_features():
            feature.install(node)
        # The shared parts, as tests and benchmarks reach them.
        self.config, self.reactor, self.store, self.bus = config, reactor, store, node.bus
        self.clients, self.pipelines, self.hub = clients, pipelines, node.hub
        self.pool, self.pop_pool = node.pool, node.pop_pool
        self.port: IListeningPort | None = None
        self._stopping: Deferred[None] | None = None

    def run_pop_work(self, work: Callable[[], T]) -> Deferred[T]:
        return self.node.run_pop_work(work)

    def add_consumer(self, consumer: Consumer) -> None:
        self.node.add_consumer(consumer)

    def health(self) -> dict[str, Any]:
        return self.node.health.report()

    # -- lifecycle -----------------------------------------------------------------------

    @inlineCallbacks
    def start(self) -> Any:
        node = self.node
        node.pool.start()
        node.pop_pool.start()
        yield node.bus.start()
        yield node.run_hooks(node.starting)
        site = AccessLogSite(node.http.resource(), trusted_proxies=node.http.trusted_proxies)
        site.noisy = False
        site.displayTracebacks = False
        self.port = self.reactor.listenTCP(
            self.config.web.port, site, interface=self.config.web.host
        )
        node.database_check.start(DB_CHECK_INTERVAL, now=True)
        if node.ownership is not None:
            node.ownership.start()  # each link starts when its PBX is owned
        elif self.config.node.role != "web":
            for client in node.clients.values():
                client.start()
        log.info(
            "cti-bridge started",
            web=self.url,
            database=self.store.url,
            bus=self.config.bus.url.split("@")[-1],
            pbx=[p.address for p in self.config.pbx],
        )

    @property
    def url(self) -> str:
        host = self.config.web.host
        port = getattr(self.port.getHost(), "port", self.config.web.port) if self.port else 0
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
        return f"http://{shown}:{port}/"

    def stop(self) -> Deferred[None]:
        if self._stopping is None:
            self._stopping = self._stop()
        return self._stopping

    @inlineCallbacks
    def _stop(self) -> Any:
        log.info("cti-bridge stopping")
        node = self.node
        if node.database_check.running:
            node.database_check.stop()
        yield node.run_hooks(node.stopping)
        node.hub.stop()
        yield DeferredList([c.stop() for c in node.clients.values()], consumeErrors=True)
        if self.port is not None:
            yield self.port.stopListening()
        yield node.run_hooks(node.flushing)
        if node.ownership is not None:  # after the records are written with its tokens
            yield node.ownership.stop()
        yield node.bus.stop()
        node.pop_pool.stop()
        node.pool.stop()
        node.store.close()
        log.info("cti-bridge stopped")


def ownership_for(node: Node) -> Ownership | None:
    """The PBX leases of an ``all``/``owner`` node on a shared bus (Redis): each PBX link
    runs only while the node owns its PBX. ``None`` for the in-process bus (the node
    alone: it owns every PBX, unfenced) and for a ``web`` node (it owns none)."""
    config = node.config
    if config.node.role == "web" or config.bus.url.startswith("memory://"):
        return None
    name = config.node.name
    store = node.store

    def raise_fence(pbx: str, token: int, holder: str) -> Deferred[int]:
        return node.run(lambda: store.fences.raise_fence(pbx, token, holder))

    def read_fence(pbx: str) -> Deferred[int | None]:
        return node.run(lambda: store.fences.current_fence(pbx))

    def owned(pbx: str, token: int) -> None:
        node.clients[pbx].start()

    def lost(pbx: str, token: int) -> None:
        node.clients[pbx].stop().addErrback(
            lambda f: log.warning("pbx link stop failed", pbx=pbx, error=f.getErrorMessage())
        )

    return Ownership(
        node.reactor,
        node.bus,
        list(node.clients),
        name,
        raise_fence=raise_fence,
        read_fence=read_fence,
        on_owned=owned,
        on_lost=lost,
    )


def run_daemon(config: Config, *, reactor: Any = None) -> int:
    """``cti-bridge run``: until SIGTERM/SIGINT. Start-up problems raise for the CLI."""
    configure_logging(config.log.level, sys.stderr)
    # Alembic's schema check logs its dialect at INFO on every start: noise in a daemon.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not config.pbx:
        from .config import ConfigError  # noqa: PLC0415

        raise ConfigError("pbx: at least one [[pbx]] section is needed to run")
    if reactor is None:
        from twisted.internet import reactor as default_reactor  # noqa: PLC0415

        reactor = default_reactor
    daemon = Daemon(config, reactor)
    return serve(daemon, reactor)


def quiet_garbage_collector() -> None:
    """Fewer and shorter collector pauses for a long-running daemon.

    Everything built while starting lives as long as the process: frozen, a full
    collection no longer walks it (benchmarks saw 100-130 ms full collections stop every
    thread, reactor included). A larger first generation means fewer collections while
    AMI events stream in; the objects an event makes are freed by reference counting.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def serve(daemon: Daemon, reactor: Any, *, started: Callable[[Daemon], None] | None = None) -> int:
    """Start ``daemon`` on ``reactor``, stop it cleanly on a signal, return the exit code."""
    exit_code = [0]

    def start() -> None:
        d = daemon.start()
        d.addCallback(lambda _: quiet_garbage_collector())
        if started is not None:
            d.addCallback(lambda _: started(daemon))
        d.addErrback(failed)

    def failed(failure: Failure) -> None:
        log.error("cti-bridge failed to start", error=failure.getErrorMessage())
        print(f"cti-bridge: {failure.getErrorMessage()}", file=sys.stderr)
        exit_code[0] = 1
        reactor.stop()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", daemon.stop)
    # Twisted installs SIGINT/SIGTERM handlers that stop the reactor; the trigger
    # above then stops the daemon (log off the PBX, flush records) before exit.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    reactor.run()
    return exit_code[0]
