"""Operators' screens for the pop integration tests: a real WebSocket client (Twisted's
``twisted.web.websocket``) logged in through the real API, recording what it receives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import reactor
from twisted.web.websocket import WebSocketClientEndpoint, WebSocketTransport

from cti_bridge.app.daemon import Daemon
from tests.integration.integration_support import eventually, login


@dataclass
class Screen:
    """One operator's console, as far as the WebSocket goes."""

    username: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    transport: WebSocketTransport | None = None
    lost: bool = False

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.messages.append(json.loads(message))

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        self.lost = True

    def buildProtocol(self, url: str) -> Screen:
        return self

    def of(self, kind: str, linkedid: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m["type"] == kind and (linkedid is None or m.get("linkedid") == linkedid)
        ]

    def about(self, number: str) -> list[dict[str, Any]]:
        """Every message about the call from ``number`` (once its pop said which call)."""
        linkedids = {
            m["linkedid"] for m in self.of("screen_pop") if m["caller"]["number_raw"] == number
        }
        return [m for m in self.messages if m.get("linkedid") in linkedids]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()


async def open_screen(daemon: Daemon, username: str, password: str | None = None) -> Screen:
    """Log ``username`` in and open their WebSocket; returns once the hello arrived."""
    token = await (
        login(daemon, username) if password is None else login(daemon, username, password)
    )
    url = daemon.url.replace("http://", "ws://") + f"ws?token={token}"
    screen = Screen(username)
    await WebSocketClientEndpoint.new(reactor, url).connect(screen)
    await eventually(lambda: screen.of("hello"), 10, f"{username}'s hello")
    return screen
