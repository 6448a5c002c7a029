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

from collections.abc import Mapping

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


class Link:
    """One AMI connection to a simulator, over a ``StringTransport``."""

    def __init__(self, session: AMISession, transport: StringTransport) -> None:
        self.session = session
        self.transport = transport
        self.parser = AMIParser()
        self.received: list[Message] = []
        self._read = 0

    @classmethod
    def open(cls, sim: SimulatedPBX) -> Link:
        session = sim.factory.buildProtocol(None)
        assert session is not None
        transport = StringTransport()  # type: ignore[no-untyped-call]  # Twisted's test double
        session.makeConnection(transport)  # type: ignore[no-untyped-call]
        return cls(session, transport)

    def send(self, action: str, headers: Mapping[str, str] | None = None, **more: str) -> None:
        self.session.dataReceived(format_action(action, {**(headers or {}), **more}))

    def send_raw(self, data: bytes) -> None:
        self.session.dataReceived(data)

    def login(self, username: str, secret: str, **headers: str) -> Message:
        self.send("Login", {"Username": username, "Secret": secret, **headers})
        return self.poll()[0]

    def poll(self) -> list[Message]:
        """Messages that arrived since the last poll (everything is kept in ``received``)."""
        data: bytes = self.transport.value()  # type: ignore[no-untyped-call]
        fresh = self.parser.feed(data[self._read :])
        self._read = len(data)
        self.received.extend(fresh)
        return fresh

    def all(self) -> list[Message]:
        self.poll()
        return list(self.received)

    def events(self, name: str | None = None) -> list[Message]:
        return [m for m in self.all() if "Event" in m and (name is None or m["Event"] == name)]

    def responses(self, action_id: str | None = None) -> list[Message]:
        return [
            m
            for m in self.all()
            if "Response" in m and (action_id is None or m.get("ActionID") == action_id)
        ]

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)
