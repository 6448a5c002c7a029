"""Drive the simulator without a network: an AMI session on a ``StringTransport``.

For tests (ours and other workstreams'): bytes go in through the real protocol and
come out as the real wire format, parsed by our own :class:`AMIParser`, while time
is a ``Clock``/``MemoryReactorClock`` the test advances::

    clock = MemoryReactorClock()
    sim = SimulatedPBX(clock, seed=1, secret="s")
    link = Link.open(sim)
    link.login("cti", "s")
    sim.place_call("queue_answered", operator="PJSIP/1001")
    run(clock, 120)
    hangups = link.events("Hangup")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from ..ami.parser import AMIParser, Message, format_action
from .server import AMISession
from .simulator import SimulatedPBX

__all__ = ["Link", "SimEndpoint", "run"]


def run(clock: Clock, seconds: float, step: float = 0.25) -> None:
    """Advance ``clock`` by ``seconds`` in steps, firing every timer on the way."""
    remaining = seconds
    while remaining > 1e-9:
        delta = min(step, remaining)
        clock.advance(delta)
        remaining -= delta


class _StampedTransport(StringTransport):
    """A ``StringTransport`` that also tells who wrote when (the arrival time)."""

    def __init__(self, clock: IReactorTime, sink: Callable[[bytes, float], None]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._clock = clock
        self._sink = sink

    def write(self, data: bytes) -> None:
        super().write(data)  # type: ignore[no-untyped-call]
        self._sink(data, self._clock.seconds())


class Link:
    """One AMI connection to a simulator, over a ``StringTransport``.

    Every message is parsed as it is written and stamped with the reactor time it
    was sent at: a client on loopback would see it then (``received_at``).
    """

    def __init__(self, session: AMISession, clock: IReactorTime) -> None:
        self.session = session
        self.parser = AMIParser()
        self.received: list[Message] = []
        self.arrivals: list[float] = []
        self._polled = 0
        self.transport = _StampedTransport(clock, self._arrived)

    @classmethod
    def open(cls, sim: SimulatedPBX) -> Link:
        session = sim.factory.buildProtocol(None)
        assert session is not None
        link = cls(session, sim.reactor)
        session.makeConnection(link.transport)  # type: ignore[no-untyped-call]
        return link

    def _arrived(self, data: bytes, at: float) -> None:
        fresh = self.parser.feed(data)
        self.received.extend(fresh)
        self.arrivals.extend([at] * len(fresh))

    def send(
        self,
        action: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        **more: str,
    ) -> None:
        """An action; pairs keep repeated headers (``Variable``) and their order."""
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        self.session.dataReceived(format_action(action, [*pairs, *more.items()]))

    def send_raw(self, data: bytes) -> None:
        self.session.dataReceived(data)

    def login(self, username: str, secret: str, **headers: str) -> Message:
        self.send("Login", {"Username": username, "Secret": secret, **headers})
        return self.poll()[0]

    def poll(self) -> list[Message]:
        """Messages that arrived since the last poll (everything stays in ``received``)."""
        fresh = self.received[self._polled :]
        self._polled = len(self.received)
        return fresh

    def all(self) -> list[Message]:
        return list(self.received)

    def timed(self) -> list[tuple[Message, float]]:
        """Every message with its arrival time on the reactor clock."""
        return list(zip(self.received, self.arrivals, strict=True))

    def events(self, name: str | None = None) -> list[Message]:
        return [m for m in self.received if "Event" in m and (name is None or m["Event"] == name)]

    def responses(self, action_id: str | None = None) -> list[Message]:
        return [
            m
            for m in self.received
            if "Response" in m and (action_id is None or m.get("ActionID") == action_id)
        ]

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)


@implementer(ITransport)
class _PipeEnd:
    """One end of an in-memory connection: bytes reach the peer on the next reactor
    turn (``callLater(0)``), in order, like a loopback socket would deliver them."""

    def __init__(self, clock: IReactorTime, host: IPv4Address, peer: IPv4Address) -> None:
        self.clock = clock
        self.host = host
        self.peer_address = peer
        self.protocol: IProtocol | None = None
        self.other: _PipeEnd | None = None
        self.disconnecting = False
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.disconnecting and self.other is not None:
            self.clock.callLater(0, self.other._deliver, data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def _deliver(self, data: bytes) -> None:
        if not self.closed and self.protocol is not None:
            self.protocol.dataReceived(data)

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.clock.callLater(0, self._close)

    abortConnection = loseConnection

    def _close(self) -> None:
        for end in (self, self.other):
            if end is not None and not end.closed:
                end.closed = end.disconnecting = True
                if end.protocol is not None:
                    end.protocol.connectionLost(connectionDone)

    def getPeer(self) -> IPv4Address:
        return self.peer_address

    def getHost(self) -> IPv4Address:
        return self.host


@implementer(IStreamClientEndpoint)
class SimEndpoint:
    """Connects a client factory (e.g. the AMI client's) to the simulator in memory.

    For tests that run the real client against the simulated PBX on a fake clock:
    ``AMIClient(clock, account, endpoint=SimEndpoint(sim))``. Set ``accepting`` to
    False to refuse connections, as a PBX that is down would.
    """

    def __init__(self, sim: SimulatedPBX) -> None:
        self.sim = sim
        self.accepting = True
        self.connections = 0
        self._port = 40000

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        if not self.accepting:
            return fail(ConnectionRefusedError("simulated PBX not accepting"))  # type: ignore[no-untyped-call]
        self._port += 1
        server_addr = IPv4Address("TCP", "127.0.0.1", 5038)
        client_addr = IPv4Address("TCP", "127.0.0.1", self._port)
        client = protocolFactory.buildProtocol(server_addr)
        server = self.sim.factory.buildProtocol(client_addr)
        if client is None or server is None:
            return fail(ConnectionRefusedError("no protocol"))  # type: ignore[no-untyped-call]
        clock = self.sim.reactor
        to_server = _PipeEnd(clock, client_addr, server_addr)
        to_client = _PipeEnd(clock, server_addr, client_addr)
        to_server.other, to_client.other = to_client, to_server
        to_server.protocol, to_client.protocol = client, server
        self.connections += 1
        server.makeConnection(to_client)  # type: ignore[no-untyped-call]
        client.makeConnection(to_server)
        return succeed(client)
