"""The screens' sockets without a browser: a transport that keeps what was sent, tokens
that can end or fail, a hub on a clock, and the queues room's part of it (supervisors)."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from cti_bridge.bus import MemoryBus
from cti_bridge.queues.screens import add_supervisor_screens
from cti_bridge.web.auth import Principal
from cti_bridge.web.ws import Hub, ScreenSocket

ANNA = Principal(7, "anna", "operator", ("PJSIP/1001",))
SOFIE = Principal(9, "sofie", "supervisor")


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.pings = 0
        self.closed: int | None = None

    def sendTextMessage(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def ping(self, payload: bytes = b"") -> None:
        self.pings += 1

    def loseConnection(self, code: int = 1000) -> None:
        self.closed = code


class Tokens:
    """Which tokens are alive; ``broken`` makes the lookup fail like a database outage."""

    def __init__(self) -> None:
        self.alive: dict[str, Principal] = {"t-anna": ANNA, "t-sofie": SOFIE}
        self.broken = False

    def __call__(self, token: str) -> Deferred[Principal | None]:
        if self.broken:
            return fail(RuntimeError("database unreachable"))
        return succeed(self.alive.get(token))


def anna_only(username: str) -> Deferred[int | None]:
    """The operator directory: Anna (7) and nobody else."""
    return succeed(7 if username == "anna" else None)


def rig() -> tuple[Clock, MemoryBus, Tokens, Hub]:
    """A bare hub: the web's plumbing, no feature's topics or messages."""
    clock = Clock()
    bus = MemoryBus(clock)
    tokens = Tokens()
    hub = Hub(
        clock,
        bus,
        tokens,
        ping_interval=25,
        spread=lambda: 0.5,  # first ping after exactly one interval
    )
    return clock, bus, tokens, hub


def supervised_rig() -> tuple[Clock, MemoryBus, Tokens, Hub]:
    """The hub as the daemon wires it for supervisors: with the queues room's part."""
    clock, bus, tokens, hub = rig()
    add_supervisor_screens(hub, anna_only)
    return clock, bus, tokens, hub


def open_socket(
    hub: Hub, principal: Principal, token: str, options: dict[str, str] | None = None
) -> tuple[ScreenSocket, FakeTransport]:
    socket = ScreenSocket(hub, principal, token, options)
    transport = FakeTransport()
    socket.negotiationStarted(transport)  # type: ignore[arg-type]
    socket.negotiationFinished()
    return socket, transport
