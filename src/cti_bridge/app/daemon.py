"""The daemon: reads the config, builds the pieces, wires them, runs the reactor.

This is the one module that knows every box. Start-up does its blocking checks (open
the database, refuse an out-of-date schema) before the reactor runs; after that
everything blocking happens in bounded thread pools.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import structlog
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site

from cti_bridge.ami.client import AMIAccount, AMIClient
from cti_bridge.bus import Bus, make_bus
from cti_bridge.calls.devices import Topology
from cti_bridge.calls.events import DomainEvent
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline
from cti_bridge.log import configure_logging, register_secret
from cti_bridge.pop import make_pop_service
from cti_bridge.pop.agi import agi_lookup_resource
from cti_bridge.store import RecordWriter, Store, open_store
from cti_bridge.web.api import WebApp
from cti_bridge.web.ws import Hub

from .backend import StoreBackend
from .config import Config, PbxConfig
from .metrics import Metrics

log = structlog.get_logger("cti_bridge.daemon")
T = TypeVar("T")

#: How often the daemon checks that the database answers (for /healthz).
DB_CHECK_INTERVAL = 10.0
#: Threads that write call records; the API uses ``database.pool_size`` more and the pop
#: context builds ``database.pop_threads``.
RECORD_THREADS = 2


def topology_for(pbx: PbxConfig) -> Topology:
    topology = Topology()
    if pbx.trunks:
        topology = replace(topology, trunk_devices=pbx.trunks)
    if pbx.inbound_contexts:
        topology = replace(topology, inbound_contexts=pbx.inbound_contexts)
    return topology


class Daemon:
    """Every running part of one cti-bridge node."""

    def __init__(self, config: Config, reactor: Any, *, store: Store | None = None):
        self.config = config
        self.reactor = reactor
        self.store = store or open_store(
            config.database.url,
            default_region=config.phone.default_region,
            # One connection for every thread that may hold one at the same time.
            pool_size=config.database.pool_size + config.database.pop_threads + RECORD_THREADS,
            accounts={
                "token_lifetime": config.web.token_ttl_hours * 3600.0,
                "max_failures": config.web.login_max_failures,
                "failure_window": config.web.login_window_seconds,
            },
        )
        self.pool = ThreadPool(
            minthreads=0, maxthreads=config.database.pool_size, name="cti-bridge-db"
        )
        # A ring's context build must not wait behind API requests or token checks: the
        # builds (and the late call ids of their pops) have threads of their own.
        self.pop_pool = ThreadPool(
            minthreads=0, maxthreads=config.database.pop_threads, name="cti-bridge-pop"
        )
        self.writer = RecordWriter.in_thread_pool(
            self.store.calls,
            reactor,
            threads=RECORD_THREADS,
            max_pending=config.database.max_pending_events,
        )
        self.bus: Bus = make_bus(config.bus.url, reactor)
        self.pipelines: dict[str, CallPipeline] = {}
        self.clients: dict[str, AMIClient] = {}
        for pbx in config.pbx:
            register_secret(pbx.secret)
            model = CallModel(pbx.name, topology=topology_for(pbx))
            pipeline = CallPipeline(model, [self.writer.submit], on_resync=[self.writer.resynced])
            client = AMIClient(
                reactor,
                AMIAccount(
                    name=pbx.name,
                    host=pbx.host,
                    port=pbx.port,
                    username=pbx.username,
                    secret=pbx.secret or "",
                    auth=pbx.auth,
                ),
                listeners=[pipeline],
                ping_interval=pbx.ping_interval,
                action_timeout=pbx.action_timeout,
            )
            self.pipelines[pbx.name] = pipeline
            self.clients[pbx.name] = client
        self.metrics = Metrics(self)
        self.backend = StoreBackend(
            reactor, self.pool, self.store, self.health, self.metrics.render
        )
        self.hub = Hub(
            reactor,
            self.bus,
            self.backend.resolve_token,
            self.backend.operator_id_for,
            valid_tokens=self.backend.valid_tokens,
        )
        self.web = WebApp(self.backend, self.hub)
        # == screen-pop and AGI caller lookup (pop workstream, docs/screen-pop.md) =========
        # Pops are built from the domain events in the pop pool and go out on the bus
        # (operator.<id>); the hub's pop.replay re-sends them to a screen that connects.
        # The operator directory's reloads stay in the shared pool.
        self.pop = make_pop_service(
            self.store,
            reactor,
            self.bus,
            self.backend.run,
            build_in=self.run_pop_work,
            default_region=config.phone.default_region,
        )
        self.add_consumer(self.pop.handle)
        # /api/agi/lookup for dialplans/agi/caller_lookup.py; off without a service token.
        agi_token = config.agi.token
        if agi_token:
            register_secret(agi_token)
        self.agi_lookup = agi_lookup_resource(
            self.store,
            self.backend.run,
            default_region=config.phone.default_region,
            token=agi_token,
        )
        self.web.agi_lookup = self.agi_lookup
        # == end of the screen-pop block =================================================
        self.port: IListeningPort | None = None
        self._db_state: dict[str, Any] = {"reachable": None, "last_error": None}
        self._db_check = LoopingCall(self._check_database)
        self._db_check.clock = reactor
        self._stopping: Deferred[None] | None = None

    def run_pop_work(self, work: Callable[[], T]) -> Deferred[T]:
        """Run a pop's blocking database work in the pop pool."""
        return deferToThreadPool(self.reactor, self.pop_pool, work)

    def add_consumer(self, consumer: Callable[[DomainEvent], None]) -> None:
        """Give every PBX's domain events to ``consumer`` too (pops, KPIs, ...)."""
        for pipeline in self.pipelines.values():
            pipeline.add_consumer(consumer)

    # -- lifecycle -----------------------------------------------------------------------

    @inlineCallbacks
    def start(self) -> Any:
        self.pool.start()
        self.pop_pool.start()
        yield self.bus.start()
        self.pop.start()
        site = Site(self.web.resource())
        site.noisy = False
        site.displayTracebacks = False
        self.port = self.reactor.listenTCP(
            self.config.web.port, site, interface=self.config.web.host
        )
        self._db_check.start(DB_CHECK_INTERVAL, now=True)
        for client in self.clients.values():
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
        if self._db_check.running:
            self._db_check.stop()
        self.pop.stop()
        self.hub.stop()
        yield DeferredList([c.stop() for c in self.clients.values()], consumeErrors=True)
        if self.port is not None:
            yield self.port.stopListening()
        yield self.writer.stop()
        yield self.bus.stop()
        self.pop_pool.stop()
        self.pool.stop()
        self.store.close()
        log.info("cti-bridge stopped")

    # -- health --------------------------------------------------------------------------

    def _check_database(self) -> Deferred[None]:
        def ok(_: object) -> None:
            self._db_state = {"reachable": True, "last_error": None}

        def failed(failure: Failure) -> None:
            if self._db_state.get("reachable") is not False:
                log.error("database unreachable", error=failure.getErrorMessage())
            self._db_state = {"reachable": False, "last_error": failure.getErrorMessage()}

        d = deferToThreadPool(self.reactor, self.pool, self.store.ping)
        d.addCallbacks(ok, failed)
        return d

    def health(self) -> dict[str, Any]:
        pbx = {name: client.status() for name, client in self.clients.items()}
        for name, pipeline in self.pipelines.items():
            pbx[name]["calls"] = pipeline.status()
        ami_ok = bool(pbx) and all(s.get("state") == "connected" for s in pbx.values())
        writer = self.writer.status()
        db_ok = self._db_state["reachable"] is not False and writer["status"] == "ok"
        bus = self.bus.status()
        parts = {
            "ami": {"status": "ok" if ami_ok else "degraded", "pbx": pbx},
            "database": {
                "status": "ok" if db_ok else "degraded",
                "url": self.store.url,
                **self._db_state,
                "records": writer,
            },
            "bus": bus,
        }
        overall = all(part["status"] == "ok" for part in parts.values())
        return {
            "status": "ok" if overall else "degraded",
            **parts,
            "web": self.hub.status(),
            "pops": self.pop.status(),
        }


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
