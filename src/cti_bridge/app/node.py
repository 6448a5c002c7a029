"""The node: what one running cti-bridge shares with its features, and where they add.

The daemon builds one ``Node`` and hands it to each feature's ``install(node)``. The
node holds the shared parts - reactor (the clock too), config, bus, store and its
sessions, the bounded thread pools, the PBX links (per PBX its ``AMIClient`` and
``CallPipeline``) and the web's plumbing - and the places a feature adds itself: AMI
listeners, domain-event consumers, resync hooks, HTTP routes, what the screens' sockets
listen on and answer (``node.hub.add_topic_rule``/``add_message_handler``), ``/healthz``
sections, ``/metrics`` sources, start/stop hooks, and a named handle on what it built
(``provide``/``part``) for tests and benchmarks.

Nothing here knows a feature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, TypeVar, runtime_checkable

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from cti_bridge.ami.client import AMIAccount, AMIClient
from cti_bridge.bus import Bus
from cti_bridge.calls.devices import Topology
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline, Consumer, ResyncHook
from cti_bridge.lease import Fences
from cti_bridge.log import register_secret
from cti_bridge.store import Store
from cti_bridge.web.accounts import Accounts
from cti_bridge.web.api import WebApp
from cti_bridge.web.ws import Hub

from .config import Config, PbxConfig
from .health import Health
from .metrics import Metrics, link_metrics
from .ownership import Ownership

__all__ = ["Feature", "Hook", "Node", "pbx_links", "topology_for"]

log = structlog.get_logger("cti_bridge.node")
T = TypeVar("T")
P = TypeVar("P")

#: How often the node checks that the database answers (for /healthz).
DB_CHECK_INTERVAL = 10.0

#: A start or stop hook; it may return a Deferred, which is waited for.
Hook = Callable[[], object]


@runtime_checkable
class Feature(Protocol):
    """A feature's package (``records``, ``pop``, ...): it adds itself to the node."""

    def install(self, node: Node) -> None: ...


def topology_for(pbx: PbxConfig) -> Topology:
    topology = Topology()
    if pbx.trunks:
        topology = replace(topology, trunk_devices=pbx.trunks)
    if pbx.inbound_contexts:
        topology = replace(topology, inbound_contexts=pbx.inbound_contexts)
    return topology


def pbx_links(config: Config, reactor: Any) -> tuple[dict[str, AMIClient], dict[str, CallPipeline]]:
    """Per configured PBX: its AMI client, listened to by its call pipeline."""
    clients: dict[str, AMIClient] = {}
    pipelines: dict[str, CallPipeline] = {}
    for pbx in config.pbx:
        register_secret(pbx.secret)
        pipeline = CallPipeline(CallModel(pbx.name, topology=topology_for(pbx)))
        clients[pbx.name] = AMIClient(
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
            ping_timeout=pbx.ping_timeout,
            action_timeout=pbx.action_timeout,
        )
        pipelines[pbx.name] = pipeline
    return clients, pipelines


class Node:
    def __init__(
        self,
        config: Config,
        reactor: Any,
        store: Store,
        bus: Bus,
        *,
        clients: dict[str, AMIClient],
        pipelines: dict[str, CallPipeline],
        pool: ThreadPool | None = None,
        pop_pool: ThreadPool | None = None,
        static_dir: str | None = None,
    ):
        self.config = config
        #: The reactor, also the clock of everything on the node.
        self.reactor = reactor
        self.store = store
        self.sessions = store.sessions
        self.bus = bus
        #: ``database.pool_size`` threads: API requests, token checks, health checks.
        self.pool = pool or ThreadPool(
            minthreads=0, maxthreads=config.database.pool_size, name="cti-bridge-db"
        )
        #: ``database.pop_threads`` threads, so no API request or token check queues
        #: ahead of a ring's context build.
        self.pop_pool = pop_pool or ThreadPool(
            minthreads=0, maxthreads=config.database.pop_threads, name="cti-bridge-pop"
        )
        self.clients = clients
        self.pipelines = pipelines
        #: The PBX leases (several nodes on one Redis); ``None`` with the in-process bus:
        #: this node alone owns every PBX, nothing is fenced.
        self.ownership: Ownership | None = None
        self.health = Health()
        self.metrics = Metrics()
        self.parts: dict[str, object] = {}
        self._signals: dict[str, list[Callable[[], object]]] = {}
        self.starting: list[Hook] = []
        self.stopping: list[Hook] = []
        self.flushing: list[Hook] = []
        # The web's plumbing: logins and tokens, the screens' sockets, the HTTP routes.
        self.accounts = Accounts(store.accounts, self.run)
        self.hub = Hub(
            reactor,
            bus,
            self.accounts.resolve_token,
            valid_tokens=self.accounts.valid_tokens,
        )
        self.http = WebApp(
            self.accounts,
            self.hub,
            health=self.health.report,
            metrics=self.metrics.render,
            static_dir=static_dir,
            trusted_proxies=config.web.trusted_networks,
            allowed_origins=config.web.allowed_origins,
            status_token=config.web.status_token,
        )
        self._db_state: dict[str, Any] = {"reachable": None, "last_error": None}
        self.database_check = LoopingCall(self._check_database)
        self.database_check.clock = reactor
        # The node's own parts of /healthz and /metrics.
        self.health.add("ami", self._ami_health)
        self.health.add("database", self._database_health)
        self.health.add("bus", bus.status)
        self.health.add("web", self.hub.status, counts=False)
        self.health.add("node", self._node_health, counts=False)
        self.metrics.add(link_metrics(clients, pipelines))
        self.metrics.add(self._node_metrics)

    @property
    def fences(self) -> Fences | None:
        """What the fenced writes ask (records, attempts); ``None``: no fencing."""
        return self.ownership

    def owns(self) -> list[str]:
        """The PBXs this node owns now."""
        if self.ownership is not None:
            return self.ownership.owns()
        return list(self.clients) if self.config.node.role != "web" else []

    # -- blocking work -------------------------------------------------------------------

    def run(self, work: Callable[[], T]) -> Deferred[T]:
        """Run blocking work (the store) in the ``database.pool_size`` pool."""
        return deferToThreadPool(self.reactor, self.pool, work)

    def run_in(self, pool: ThreadPool, work: Callable[[], T]) -> Deferred[T]:
        return deferToThreadPool(self.reactor, pool, work)

    def run_pop_work(self, work: Callable[[], T]) -> Deferred[T]:
        """Run a pop's blocking database work in the pop pool."""
        return deferToThreadPool(self.reactor, self.pop_pool, work)

    # -- where a feature adds ------------------------------------------------------------

    def add_listener(self, listener: object, *, pbx: str | None = None) -> None:
        """An AMI listener (``ami.listener.AMIListener``) on every PBX link, or on ``pbx``'s."""
        for name, client in self.clients.items():
            if pbx is None or name == pbx:
                client.add_listener(listener)

    def add_consumer(self, consumer: Consumer) -> None:
        """Give every PBX's domain events to ``consumer`` too (records, pops, ...)."""
        for pipeline in self.pipelines.values():
            pipeline.add_consumer(consumer)

    def add_resync_hook(self, hook: ResyncHook) -> None:
        """``hook(pbx, live_linkedids, at)`` after every resync of a PBX's calls."""
        for pipeline in self.pipelines.values():
            pipeline.resync_hooks.append(hook)

    def on_start(self, hook: Hook) -> None:
        """When the pools and the bus run, before the web listens and the PBX links start."""
        self.starting.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """First thing when the node stops: before the PBX links and the web close."""
        self.stopping.append(hook)

    def on_flush(self, hook: Hook) -> None:
        """After the PBX links and the web closed, before the bus, pools and store go:
        write out what is queued."""
        self.flushing.append(hook)

    def provide(self, name: str, part: object) -> None:
        """A feature's handle on what it built (its service, its writer)."""
        if name in self.parts:
            raise ValueError(f"part {name!r} is taken")
        self.parts[name] = part

    def listen(self, signal: str, listener: Callable[[], object]) -> None:
        """``listener()`` whenever a feature ``notify``s ``signal``: how one room tells
        the others something happened without importing them (the signal names are
        where the rooms share words, e.g. ``callbacks.AGREEMENTS_CHANGED``)."""
        self._signals.setdefault(signal, []).append(listener)

    def notify(self, signal: str) -> None:
        """Call the listeners of ``signal`` now, in order; one that raises is logged and
        costs the others (and the notifier) nothing."""
        for listener in list(self._signals.get(signal, ())):
            try:
                listener()
            except Exception:
                log.exception("signal listener failed", signal=signal)

    def part(self, name: str, kind: type[P]) -> P:
        found = self.parts[name]
        if not isinstance(found, kind):
            raise TypeError(f"part {name!r} is a {type(found).__name__}, not {kind.__name__}")
        return found

    @staticmethod
    def run_hooks(hooks: list[Hook]) -> Deferred[None]:
        """Each hook in turn, waiting for the Deferreds they return."""
        done: Deferred[None] = Deferred()
        pending = list(hooks)

        def step(_: object = None) -> None:
            if not pending:
                done.callback(None)
                return
            d = maybeDeferred(pending.pop(0))
            d.addCallbacks(step, done.errback)

        step()
        return done

    # -- health --------------------------------------------------------------------------

    def _check_database(self) -> Deferred[None]:
        def ok(_: object) -> None:
            self._db_state = {"reachable": True, "last_error": None}

        def failed(failure: Failure) -> None:
            if self._db_state.get("reachable") is not False:
                log.error("database unreachable", error=failure.getErrorMessage())
            self._db_state = {"reachable": False, "last_error": failure.getErrorMessage()}

        d = self.run(self.store.ping)
        d.addCallbacks(ok, failed)
        return d

    def _ami_health(self) -> dict[str, Any]:
        pbx = {name: client.status() for name, client in self.clients.items()}
        for name, pipeline in self.pipelines.items():
            pbx[name]["calls"] = pipeline.status()
        if self.config.node.role == "web":
            return {"status": "ok", "pbx": pbx}  # a web node runs no PBX link
        if self.ownership is None:
            ami_ok = bool(pbx) and all(s.get("state") == "connected" for s in pbx.values())
        else:  # the links of the PBXs it owns; another node runs the others
            ami_ok = all(pbx[name].get("state") == "connected" for name in self.owns())
        return {"status": "ok" if ami_ok else "degraded", "pbx": pbx}

    def _node_health(self) -> dict[str, Any]:
        node = self.config.node
        section: dict[str, Any] = {
            "status": "ok",
            "name": node.name,
            "role": node.role,
            "owns": self.owns(),
        }
        if self.ownership is not None:
            section["leases"] = self.ownership.status()
        return section

    def _database_health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self._db_state["reachable"] is not False else "degraded",
            "url": self.store.url,
            **self._db_state,
        }

    def _node_metrics(self) -> list[Metric]:
        reachable = self.health.section("database")["status"] == "ok"
        return [
            GaugeMetricFamily(
                "cti_screen_sockets",
                "Open operator/supervisor WebSockets",
                value=len(self.hub.sockets),
            ),
            GaugeMetricFamily(
                "cti_database_up", "1 when the database answers", value=1.0 if reachable else 0.0
            ),
        ]
