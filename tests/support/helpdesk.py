"""The daemon's whole web on fakes: every feature the daemon installs, on one ``Node``
with the memory store, a memory reactor that is also the clock, thread pools that run
their work at once, and a real HTTP channel (bytes in, bytes out) per request.

Anna and Bart (operators, one phone each), Sofie (supervisor) and Alex (admin); a call
Anna answered (Bart was rung), Jan Peeters (customer) and an agreement Anna owns.
Tokens are made in the store (``token``), so a test may spend one per request: a logout
in one case does not end another's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast
from unittest.mock import patch

from twisted.internet import _producer_helpers
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.task import Cooperator
from twisted.internet.testing import MemoryReactorClock, StringTransport
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Event, RejectConnection, Request, TextMessage
from zope.interface import implementer

from cti_bridge.app.config import parse_config
from cti_bridge.app.daemon import load_features
from cti_bridge.app.node import Node
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.store import Store
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.testing.store import START, cheap_hasher, queue_call_answered
from cti_bridge.web.access import AccessLogSite
from tests.unit.missed.support import SyncPool

ANNA, BART = "Local/1001@agents", "Local/1002@agents"
AGI_TOKEN = "agi-service-token-0123456789"
HOST = "cti.example:8080"
PEOPLE = {
    "anna": ("operator", ANNA),
    "bart": ("operator", BART),
    "sofie": ("supervisor", None),
    "alex": ("admin", None),
}


@implementer(IReactorFromThreads)
class Reactor(MemoryReactorClock):
    """The records writer asks for a reactor that takes calls from threads: this one
    runs them at once."""

    def callFromThread(self, callable: Callable[..., Any], *args: object, **kwargs: object) -> None:
        callable(*args, **kwargs)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    #: The server's bytes after the handshake (a WebSocket's frames).
    rest: bytes = b""
    transport: StringTransport | None = field(default=None, repr=False)

    def json(self) -> Any:
        return json.loads(self.body)


def parse_answer(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == 101:
        return Answer(status, headers, b"", rest=body)
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return Answer(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_text, _, data = data.partition(b"\r\n")
        size = int(size_text.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


class Helpdesk:
    def __init__(self, **sections: Any) -> None:
        config = parse_config(
            {
                "web": {"host": "127.0.0.1", "port": 0},
                "database": {"url": "sqlite://"},
                "bus": {"url": "memory://"},
                "pbx": [{"name": "main", "host": "127.0.0.1", "username": "cti", "secret": "s"}],
                "agi": {"token": AGI_TOKEN},
                **sections,
            },
            source="test",
        )
        self.reactor = Reactor()
        self.reactor.advance(START)
        self.store: MemoryStore = open_memory_store(
            clock=self.reactor.seconds, accounts={"hasher": cheap_hasher()}
        )
        self.ids: dict[str, int] = {}
        for name, (role, device) in PEOPLE.items():
            info = self.store.accounts.add_operator(
                name, role=role, password=f"{name}-secret", devices=[device] if device else []
            )
            self.ids[name] = info.id
        self.customer_id = self.store.customers.add_customer("Jan Peeters", numbers=["0470123456"])
        built = queue_call_answered()
        self.store.calls.apply(built.events)
        found = self.store.queries.find_call("main", built.call.linkedid)
        assert found is not None
        self.call_id: int = found["id"]
        self.agreement_id = self.store.agreements.add_agreement(
            "documentation",
            customer_id=self.customer_id,
            call_id=self.call_id,
            owner_operator_id=self.ids["anna"],
            by_operator=self.ids["anna"],
        )
        self.node = Node(
            config,
            self.reactor,
            cast(Store, SimpleNamespace(**vars(self.store), sessions=None, url="memory:")),
            MemoryBus(self.reactor),
            clients={},
            pipelines={},
            pool=SyncPool(),
            pop_pool=SyncPool(),
        )
        for feature in load_features():
            feature.install(self.node)
        self.resource = self.node.http.resource()
        self.site = AccessLogSite(self.resource, reactor=self.reactor)
        self.protocols: dict[int, Any] = {}
        self._cooperator = Cooperator(
            scheduler=lambda work: self.reactor.callLater(0, work), started=True
        )

    # -- tokens ----------------------------------------------------------------------------

    def token(self, who: str, *, lifetime: float | None = None) -> str:
        return self.store.accounts.create_token(self.ids[who], lifetime)

    # -- requests ------------------------------------------------------------------------

    def send(self, raw: bytes) -> StringTransport:
        peer = IPv4Address("TCP", "127.0.0.1", 40000)
        protocol = self.site.buildProtocol(peer)
        assert protocol is not None
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        # A static file is written by a pull producer, which Twisted drives with the
        # global cooperator (the global reactor's): here a cooperator on this clock.
        with patch.object(_producer_helpers, "cooperate", self._cooperator.cooperate):
            protocol.dataReceived(raw)
            for _ in range(1000):
                if not self.reactor.getDelayedCalls():
                    break
                self.reactor.advance(0)
        self.protocols[id(transport)] = protocol
        return transport

    def ask(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        if body is not None:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(data)}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
        transport = self.send(raw)
        answer = parse_answer(transport.value())
        answer.transport = transport
        return answer

    def upgrade(self, token: str | None, *, origin: str | None = None) -> Answer:
        """``GET /ws?token=`` as a WebSocket client (wsproto's handshake), ``Origin``
        as a browser would send it, or none (a bench, a script)."""
        path = "/ws" if token is None else f"/ws?token={token}"
        extra = [(b"origin", origin.encode())] if origin is not None else []
        client = WSConnection(ConnectionType.CLIENT)
        raw = client.send(Request(host=HOST, target=path, extra_headers=extra))
        transport = self.send(raw)
        answer = parse_answer(transport.value())
        answer.transport = transport
        return answer


class ScreenClient:
    """The client end of one accepted socket: the server's frames, decoded."""

    def __init__(self, desk: Helpdesk, token: str, *, origin: str | None = None) -> None:
        self.client = WSConnection(ConnectionType.CLIENT)
        path = f"/ws?token={token}"
        extra = [(b"origin", origin.encode())] if origin is not None else []
        self.transport = desk.send(
            self.client.send(Request(host=HOST, target=path, extra_headers=extra))
        )
        self.protocol = desk.protocols[id(self.transport)]
        self._seen = 0
        self.accepted = False
        self.messages: list[dict[str, Any]] = []
        self.read()

    def read(self) -> list[dict[str, Any]]:
        """What arrived since the last read (text messages as JSON)."""
        data = self.transport.value()
        self.client.receive_data(data[self._seen :])
        self._seen = len(data)
        new: list[dict[str, Any]] = []
        for event in self.client.events():
            new += self._event(event)
        self.messages += new
        return new

    def _event(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, AcceptConnection):
            self.accepted = True
        elif isinstance(event, RejectConnection):
            self.accepted = False
        elif isinstance(event, TextMessage):
            return [json.loads(event.data)]
        return []

    def say(self, message: dict[str, Any]) -> None:
        self.protocol.dataReceived(self.client.send(TextMessage(json.dumps(message))))
