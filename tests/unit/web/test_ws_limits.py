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

from cti_bridge.bus.topics import operator_topic
from cti_bridge.web.ws import (
    CUT_AFTER_SECONDS,
    MAX_BEHIND_BYTES,
    MAX_BEHIND_SECONDS,
    MAX_CLIENT_WIRE_MESSAGE,
    MESSAGE_TOO_BIG,
    SESSION_ENDED,
    TOO_SLOW,
    ScreenSocket,
)
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


def _tcp_full(screen: Screen) -> None:
    """What Twisted's TCP transport does past its 64 KiB buffer: pause its producer."""
    producer = screen.transport.producer
    assert producer is not None
    producer.pauseProducing()


def _tcp_room(screen: Screen) -> None:
    producer = screen.transport.producer
    assert producer is not None
    producer.resumeProducing()


def _flood(desk: Helpdesk, who: str, count: int, size: int = 1000) -> None:
    for n in range(count):
        desk.node.bus.publish(
            operator_topic(desk.ids[who]), {"type": "flood", "n": n, "pad": "x" * size}
        )
    desk.reactor.advance(0)


def test_a_screen_that_does_not_read_is_closed_past_its_bound_and_nobody_else_waits() -> None:
    """Its transport says it is full (the TCP buffer, and the kernel's, hold what it did
    not read): what it is sent more is counted; past ``MAX_BEHIND_BYTES`` its socket is
    closed with 4408 and then cut, while another screen gets every message."""
    desk = Helpdesk()
    stuck, other = Screen(desk, desk.token("anna")), Screen(desk, desk.token("bart"))
    socket = server_socket(desk, stuck)
    _tcp_full(stuck)  # Twisted: its buffer is over 64 KiB
    count = MAX_BEHIND_BYTES // 1000 + 50
    _flood(desk, "anna", count)
    _flood(desk, "bart", count)
    stuck.read()
    floods = [m for m in stuck.messages if m["type"] == "flood"]
    assert 0 < len(floods) < count  # sent up to the bound, then no more
    assert len(floods) <= MAX_BEHIND_BYTES // 1000  # each over 1,000 characters
    assert stuck.closed == TOO_SLOW
    assert desk.node.http.hub.status()["too_slow"] == 1
    other.read()
    assert len([m for m in other.messages if m["type"] == "flood"]) == count  # unaffected
    assert not stuck.transport.disconnected  # the close frame waits behind the rest ...
    desk.reactor.advance(CUT_AFTER_SECONDS)
    assert stuck.transport.disconnected  # ... not for ever: the TCP is cut
    assert socket.behind_bytes > MAX_BEHIND_BYTES


def test_a_screen_that_catches_up_is_counted_afresh() -> None:
    desk = Helpdesk()
    slow = Screen(desk, desk.token("anna"))
    socket = server_socket(desk, slow)
    half = MAX_BEHIND_BYTES // 1000 // 2 + 10
    for _ in range(3):  # three times behind by more than half the bound, reading between
        _tcp_full(slow)
        _flood(desk, "anna", half)
        _tcp_room(slow)
        assert socket.behind_since is None and socket.behind_bytes == 0
    slow.read()
    assert slow.closed is None
    assert len([m for m in slow.messages if m["type"] == "flood"]) == 3 * half


def test_a_screen_behind_for_too_long_is_closed_at_its_next_message() -> None:
    desk = Helpdesk()
    stuck = Screen(desk, desk.token("anna"))
    _tcp_full(stuck)
    _flood(desk, "anna", 3)
    desk.reactor.advance(MAX_BEHIND_SECONDS + 1)
    _flood(desk, "anna", 1)
    stuck.read()
    assert [m["n"] for m in stuck.messages if m["type"] == "flood"] == [0, 1, 2]
    assert stuck.closed == TOO_SLOW
