"""The screen socket's bounds (issue 13): a client message over
``MAX_CLIENT_WIRE_MESSAGE`` characters closes the socket with 1009 as soon as that much
has arrived, in one huge frame or in many fragments, and the server never holds more of
it than the limit; and a logout closes the token's sockets at once (4401), not at the
hub's next re-check, while the logged-out token cannot open a new one.

Through the daemon's whole web over a real HTTP channel and Twisted's own WebSocket
(``tests/support/helpdesk.py``), the client end being wsproto.
"""

from __future__ import annotations

from typing import Any

from wsproto.events import CloseConnection, Event, TextMessage

from cti_bridge.web.ws import MAX_CLIENT_WIRE_MESSAGE, MESSAGE_TOO_BIG, SESSION_ENDED, ScreenSocket
from tests.support.helpdesk import Helpdesk, ScreenClient

CHUNK = 64 * 1024


class Screen(ScreenClient):
    """A screen client that also notes the server's close code."""

    closed: int | None = None

    def _event(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, CloseConnection):
            self.closed = event.code
        return super()._event(event)


def server_socket(desk: Helpdesk, screen: Screen) -> ScreenSocket:
    """The server's socket of ``screen`` (its wire protocol writes to the screen's TCP)."""
    (socket,) = [
        s
        for s in desk.node.http.hub.sockets
        if getattr(s.transport, "transport", None) is screen.transport
    ]
    return socket


def feed(screen: Screen, data: bytes, watch: Any) -> int:
    """``data`` to the server in TCP-sized pieces; the most the server buffered."""
    most = 0
    for start in range(0, len(data), CHUNK):
        screen.protocol.dataReceived(data[start : start + CHUNK])
        most = max(most, len(watch._textBuffer.data))
    return most


def test_a_huge_message_closes_the_socket_with_1009_and_is_never_buffered_whole() -> None:
    desk = Helpdesk()
    screen = Screen(desk, desk.token("anna"))
    assert screen.accepted
    wire = server_socket(desk, screen).transport
    frame = screen.client.send(TextMessage("x" * (4 * 1024 * 1024)))  # one 4 MiB frame
    most = feed(screen, frame, wire)
    assert most <= MAX_CLIENT_WIRE_MESSAGE
    screen.read()
    assert screen.closed == MESSAGE_TOO_BIG
    assert screen.transport.disconnecting
    assert [m["type"] for m in screen.messages] == ["hello"]  # no answer to the message


def test_a_message_in_many_fragments_is_bounded_too() -> None:
    desk = Helpdesk()
    screen = Screen(desk, desk.token("anna"))
    wire = server_socket(desk, screen).transport
    piece = "y" * 1000
    data = b"".join(
        screen.client.send(TextMessage(piece, message_finished=False)) for _ in range(200)
    ) + screen.client.send(TextMessage("", message_finished=True))
    most = feed(screen, data, wire)
    assert most <= MAX_CLIENT_WIRE_MESSAGE
    screen.read()
    assert screen.closed == MESSAGE_TOO_BIG


def test_a_message_under_the_limit_is_answered_not_closed() -> None:
    desk = Helpdesk()
    screen = Screen(desk, desk.token("anna"))
    screen.say({"type": "ping"})
    screen.protocol.dataReceived(screen.client.send(TextMessage("z" * 5000)))
    screen.read()
    assert screen.closed is None
    assert [m["type"] for m in screen.messages] == ["hello", "pong", "error"]
    assert screen.messages[-1]["error"] == "message too long"


def test_logout_closes_the_tokens_sockets_at_once_and_no_others() -> None:
    desk = Helpdesk()
    token, other = desk.token("anna"), desk.token("anna")
    first, second, kept = Screen(desk, token), Screen(desk, token), Screen(desk, other)
    bart = Screen(desk, desk.token("bart"))
    assert desk.ask("POST", "/api/logout", token=token).status == 200
    # No clock advance: not the hub's re-check (every ping interval), the logout itself.
    for screen in (first, second):
        screen.read()
        assert screen.closed == SESSION_ENDED
        assert screen.messages[-1] == {"type": "session_ended"}
    for screen in (kept, bart):
        screen.read()
        assert screen.closed is None and not screen.transport.disconnecting
    kept.say({"type": "ping"})
    assert kept.read() == [{"type": "pong"}]


def test_a_logged_out_token_cannot_open_a_socket_again() -> None:
    desk = Helpdesk()
    token = desk.token("anna")
    assert desk.ask("POST", "/api/logout", token=token).status == 200
    answer = desk.upgrade(token)
    assert answer.status == 401
    assert answer.json() == {"error": "invalid or expired token"}
