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

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ..ami.parser import AMIParser, Message, format_action
from .server import AMISession
from .simulator import SimulatedPBX

__all__ = ["Link", "run"]


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
