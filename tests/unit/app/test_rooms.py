# mypy: disallow-untyped-calls=False
"""Features as rooms: a feature is a folder with ``install(node)``, and the node is enough.

A throw-away feature defined here adds one HTTP endpoint, one AMI listener, a health
section and a metrics source to a ``Node`` built on fakes (a memory reactor, a memory
bus, a stub store, an AMI client on a scripted connection); the endpoint answers, the
listener gets the PBX's events, and ``/healthz`` and ``/metrics`` show its parts. Also:
the real features keep the routes in the order they always had, the pages last.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from types import ModuleType, SimpleNamespace
from typing import cast

import pytest
from prometheus_client.core import CounterMetricFamily, Metric
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from structlog.testing import capture_logs
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.test.requesthelper import DummyChannel

from cti_bridge import agi
from cti_bridge.ami.client import AMIAccount, AMIClient
from cti_bridge.ami.listener import AMIListener
from cti_bridge.ami.parser import Message
from cti_bridge.app.config import parse_config
from cti_bridge.app.daemon import FEATURES, load_features
from cti_bridge.app.node import Node
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.calls.model import CallModel
from cti_bridge.calls.pipeline import CallPipeline
from cti_bridge.store import Store
from cti_bridge.web.http import respond
from tests.support.ami_link import FULLY_BOOTED, SECRET, FakeEndpoint, PBXSide, finish_resync
from tests.support.web_requests import RecordingRequest


def bring_up(client: AMIClient, endpoint: FakeEndpoint) -> PBXSide:
    """Log in, boot and resync (no channels): the link is live."""
    client.start()
    pbx = endpoint.accept()
    (login,) = pbx.actions()
    pbx.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n" + FULLY_BOOTED)
    finish_resync(pbx)
    assert client.state == "connected"
    return pbx


# -- a node on fakes ----------------------------------------------------------------------


@dataclass
class Fakes:
    reactor: MemoryReactorClock
    endpoint: FakeEndpoint
    client: AMIClient
    node: Node


def fake_node(agi_token: str | None = None) -> Fakes:
    config = parse_config(
        {
            "web": {"host": "127.0.0.1", "port": 0},
            "database": {"url": "sqlite://"},
            "bus": {"url": "memory://"},
            "node": {"name": "node-a"},
            "pbx": [{"name": "main", "host": "127.0.0.1", "username": "cti", "secret": SECRET}],
        },
        source="test",
    )
    reactor = MemoryReactorClock()
    endpoint = FakeEndpoint()
    pipeline = CallPipeline(CallModel("main"))
    client = AMIClient(
        reactor,
        AMIAccount("main", "127.0.0.1", 5038, "cti", SECRET, auth="plain"),
        endpoint=endpoint,
        listeners=[pipeline],
    )
    store = cast(
        Store,
        SimpleNamespace(
            sessions=sessionmaker(create_engine("sqlite://")),
            pop_read=None,  # the pop port: no pop is built here
            accounts=None,
            url="sqlite://",
            ping=lambda: None,
        ),
    )
    node = Node(
        config,
        reactor,
        store,
        MemoryBus(reactor),
        clients={"main": client},
        pipelines={"main": pipeline},
    )
    return Fakes(reactor, endpoint, client, node)


def http_get(resource: Resource, path: bytes, reactor: MemoryReactorClock) -> RecordingRequest:
    channel = DummyChannel()
    channel.site = Site(resource, reactor=reactor)
    request = RecordingRequest(channel)
    request.content = BytesIO()
    request.requestReceived(b"GET", path, b"HTTP/1.1")
    return request


# -- the throw-away feature ---------------------------------------------------------------


class Tiny:
    """What a new feature's folder would hold: its listener, its figures, its route."""

    class Listener(AMIListener):
        wanted_events = frozenset({"UserEvent"})

        def __init__(self) -> None:
            self.events: list[Message] = []

        def ami_event(self, msg: Message, received_at: float) -> None:
            self.events.append(msg)

    def __init__(self) -> None:
        self.listener = self.Listener()

    def install(self, node: Node) -> None:
        node.add_listener(self.listener)

        @node.http.route("/api/tiny", methods=["GET"])
        def tiny(request: Request) -> bytes:
            return respond(request, 200, {"events": len(self.listener.events)})

        @node.http.route("/api/tiny/mine", methods=["GET"])
        def mine(request: Request) -> Deferred[bytes]:
            return node.http.principal(request).addCallback(
                lambda who: respond(request, 200, {"me": who.username})
            )

        node.health.add("tiny", lambda: {"status": "ok", "seen": len(self.listener.events)})
        node.metrics.add(self.metrics)
        node.provide("tiny", self)

    def metrics(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "cti_tiny_events", "UserEvents seen", value=len(self.listener.events)
        )


def test_a_feature_is_one_install_on_the_node() -> None:
    fakes = fake_node()
    tiny = Tiny()
    tiny.install(fakes.node)
    resource = fakes.node.http.resource()
    assert fakes.node.part("tiny", Tiny) is tiny

    pbx = bring_up(fakes.client, fakes.endpoint)
    pbx.send("Event: UserEvent\r\nUserEvent: Hello\r\n\r\n")
    pbx.send("Event: UserEvent\r\nUserEvent: Again\r\n\r\n")
    assert [m["UserEvent"] for m in tiny.listener.events] == ["Hello", "Again"]
    assert fakes.client.wanted is not None and fakes.client.wanted.wants("UserEvent")

    answer = http_get(resource, b"/api/tiny", fakes.reactor)
    assert answer.code == 200 and json.loads(answer.body) == {"events": 2}
    # The web's error answers hold for a feature's routes too.
    refused = http_get(resource, b"/api/tiny/mine", fakes.reactor)
    assert refused.code == 401
    assert json.loads(refused.body) == {"error": "Authorization: Bearer TOKEN required"}

    health = json.loads(http_get(resource, b"/healthz", fakes.reactor).body)
    assert health["tiny"] == {"status": "ok", "seen": 2}
    assert list(health) == ["status", "ami", "database", "bus", "web", "node", "tiny"]
    # One node on the in-process bus owns every PBX from the start, unfenced.
    assert health["node"] == {"status": "ok", "name": "node-a", "role": "all", "owns": ["main"]}
    assert health["ami"]["pbx"]["main"]["state"] == "connected"
    metrics = http_get(resource, b"/metrics", fakes.reactor).body.decode()
    assert "cti_tiny_events_total 2.0" in metrics
    assert 'cti_ami_connected{pbx="main"} 1.0' in metrics


def test_a_section_that_counts_makes_the_node_degraded() -> None:
    node = fake_node().node  # the link is down: ami degraded already
    assert node.health.report()["status"] == "degraded"
    node.health.add_detail("bus", "extra", lambda: {"status": "degraded"})
    assert node.health.section("bus")["status"] == "degraded"
    assert node.health.section("bus")["extra"] == {"status": "degraded"}


def test_a_signal_reaches_its_listeners_in_order_and_a_failing_one_costs_nothing() -> None:
    node = fake_node().node
    heard: list[str] = []

    def broken() -> None:
        raise RuntimeError("a listener bug")

    node.listen("agreements_changed", lambda: heard.append("first"))
    node.listen("agreements_changed", broken)
    node.listen("agreements_changed", lambda: heard.append("last"))
    node.listen("other", lambda: heard.append("other"))
    with capture_logs() as logs:
        node.notify("agreements_changed")  # does not raise
    assert heard == ["first", "last"]
    assert [(e["event"], e["signal"]) for e in logs] == [
        ("signal listener failed", "agreements_changed")
    ]
    node.notify("nobody listens")  # nothing happens
    assert heard == ["first", "last"]


def test_routes_keep_their_order_and_names() -> None:
    node = fake_node().node
    for feature in load_features(["pop", "console", "agi", "queues"]):  # records: threads
        feature.install(node)
    node.http.resource()
    rules = [
        (r.rule, sorted(r.methods or ()), r.endpoint) for r in node.http.app.url_map.iter_rules()
    ]
    assert rules == [
        ("/healthz", ["GET", "HEAD"], "healthz"),
        ("/metrics", ["GET", "HEAD"], "metrics"),
        ("/api/login", ["POST"], "login"),
        ("/api/logout", ["POST"], "logout"),
        ("/api/me", ["GET", "HEAD"], "me"),
        ("/api/openapi.json", ["GET", "HEAD"], "openapi"),
        ("/api/calls", ["GET", "HEAD"], "calls"),
        ("/api/calls/<string:call_id>", ["GET", "HEAD"], "call"),
        ("/api/calls/<string:call_id>", ["PATCH"], "patch_call"),
        ("/api/customers", ["GET", "HEAD"], "customers"),
        ("/api/customers/<string:customer_id>", ["GET", "HEAD"], "customer"),
        ("/api/contacts", ["POST"], "create_contact"),
        ("/api/contacts", ["GET", "HEAD"], "contacts"),
        ("/api/agreements", ["POST"], "create_agreement"),
        ("/api/agreements", ["GET", "HEAD"], "agreements"),
        ("/api/agreements/<string:agreement_id>", ["GET", "HEAD"], "agreement"),
        ("/api/agreements/<string:agreement_id>", ["PATCH"], "patch_agreement"),
        ("/api/vocabulary", ["GET", "HEAD"], "words"),
        ("/api/agi/lookup", [], "agi"),
        ("/api/queues", ["GET", "HEAD"], "live_queues"),
        ("/api/queues/pause-reasons", ["GET", "HEAD"], "pause_reasons_list"),
        ("/api/agents", ["GET", "HEAD"], "live_agents"),
        ("/api/agents/<string:operator>", ["GET", "HEAD"], "live_agent"),
        ("/api/agents/<string:operator>/pause", ["POST"], "pause_agent"),
        ("/api/agents/<string:operator>/unpause", ["POST"], "unpause_agent"),
        ("/api/kpis", ["GET", "HEAD"], "kpi_figures"),
        ("/api/kpis/operators", ["GET", "HEAD"], "kpi_operators"),
        ("/wallboard", ["GET", "HEAD"], "page /wallboard"),
        ("/ws", [], "ws"),
        ("/<path:__rest__>", [], "pages_branch"),
        ("/", [], "pages"),
    ]


def test_the_agi_lookup_without_a_token_says_so_and_unknown_api_paths_are_json() -> None:
    fakes = fake_node()
    agi.install(fakes.node)
    resource = fakes.node.http.resource()
    off = http_get(resource, b"/api/agi/lookup?number=123", fakes.reactor)
    assert off.code == 404
    assert json.loads(off.body) == {"error": "the AGI caller lookup is not enabled"}
    unknown = http_get(resource, b"/api/nothing-here", fakes.reactor)
    assert unknown.code == 404  # not the pages' HTML 404 (tests/unit/web/test_api_errors.py)
    assert json.loads(unknown.body) == {"error": "no such API path"}
    assert unknown.responseHeaders.getRawHeaders(b"x-content-type-options") == [b"nosniff"]


def test_a_route_name_is_taken_once_and_routes_close_when_the_web_serves() -> None:
    node = fake_node().node

    def hello(request: Request) -> bytes:
        return b""

    node.http.route("/api/a")(hello)
    try:
        node.http.route("/api/b")(hello)
    except ValueError as error:
        assert "'hello' is taken" in str(error)
    else:
        raise AssertionError("a second route named hello was accepted")
    node.http.resource()
    try:
        node.http.route("/api/c", endpoint="c")(hello)
    except RuntimeError as error:
        assert "already serving" in str(error)
    else:
        raise AssertionError("a route after the web started was accepted")


def test_the_daemon_installs_the_feature_packages_it_names() -> None:
    names = [cast(ModuleType, f).__name__ for f in load_features()]
    assert names == [f"cti_bridge.{name}" for name in FEATURES]
    with pytest.raises(TypeError, match=r"cti_bridge\.calls has no install\(node\)"):
        load_features(["calls"])
