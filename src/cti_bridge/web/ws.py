"""The WebSocket (``/ws?token=``): pushes from the bus to the screens that may see them.

A browser's page must be of the daemon's own origin (or ``[web] allowed_origins``):
another site's page gets HTTP 403 before the token is even looked at; a client without
an ``Origin`` header is no browser and needs only the token (``origin_allowed``).

An operator's sockets listen on the bus topic ``operator.<id>`` only, so a pop for one
operator can never reach another operator's screen. The token is checked before the
upgrade: a bad token gets HTTP 401 and never a socket. After that the hub re-checks the
tokens of all its sockets together, one database query every ``ping_interval`` seconds,
and closes (4401) the sockets whose token has ended.

The hub is plumbing; what a role's screen adds is the feature's. A feature adds, through
``node.hub``, the topics a screen also listens on when it opens (``add_topic_rule``, a
``principal -> topics`` callable, or ``add_options_topic_rule``, ``(principal, options)
-> topics``, the options being the socket's query parameters but the token, e.g.
``/ws?token=...&agents=batched``) and the client messages it answers, by ``type``
(``add_message_handler``). The supervisors' part (the ``supervisors`` topic, ``{"type":
"watch", "username": ...}``) is the queues room's: ``cti_bridge/queues/screens.py``.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Protocol

import structlog
from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.internet.interfaces import IConsumer, IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from wsproto.utilities import LocalProtocolError
from zope.interface import implementer

from cti_bridge.bus import Bus
from cti_bridge.bus.topics import POP_REPLAY_TOPIC, operator_topic

from .auth import Principal
from .clients import normal_origin, origin_allowed

log = structlog.get_logger("cti_bridge.web.ws")

MAX_CLIENT_MESSAGE = 4096
#: A client message over this many characters closes its socket (1009, "message too
#: big") as soon as that many have arrived: what is read of it is dropped, never buffered
#: whole (Twisted's WebSocket keeps every fragment of a message until its end).
MAX_CLIENT_WIRE_MESSAGE = 16 * 1024
MESSAGE_TOO_BIG = 1009
#: A socket's options (its query parameters but the token): at most this many, each name
#: and value cut to ``MAX_OPTION_LENGTH`` characters.
MAX_OPTIONS = 8
MAX_OPTION_LENGTH = 64
#: WebSocket close code when the socket's token has ended (4000-4999: the application's).
SESSION_ENDED = 4401
#: A screen that does not read what it is sent (a stuck tab, a dead laptop on a live
#: TCP): once its transport said it is full (Twisted pauses a socket's producer past its
#: 64 KiB buffer), what it is sent more is counted, and past ``MAX_BEHIND_BYTES``, or
#: ``MAX_BEHIND_SECONDS`` behind, the socket is closed (``TOO_SLOW``) and, if it does not
#: go, cut. Memory stays bounded and nobody else waits: a write never blocks the reactor.
#: The console reconnects and is sent its pops again (``pop.replay``).
MAX_BEHIND_BYTES = 1024 * 1024
MAX_BEHIND_SECONDS = 30.0
TOO_SLOW = 4408
#: How long a closing too-slow socket may take to go before its TCP is cut.
CUT_AFTER_SECONDS = 5.0


class TokenResolver(Protocol):
    def __call__(self, token: str) -> Deferred[Principal | None]: ...


class TokenChecker(Protocol):
    """Which of ``tokens`` still work (not unknown, expired, revoked or deactivated)."""

    def __call__(self, tokens: Collection[str]) -> Deferred[set[str]]: ...


#: What a screen listens on when it opens, besides its operator's own topic: a feature's
#: rule, asked once per socket (``()`` for a principal it has nothing for).
TopicRule = Callable[[Principal], Iterable[str]]
#: As a ``TopicRule``, also given the socket's options (``ScreenSocket.options``).
OptionsTopicRule = Callable[[Principal, Mapping[str, str]], Iterable[str]]


class MessageHandler(Protocol):
    """A feature's answer to one ``type`` of client message (a JSON object): it answers
    on ``socket`` (``socket.send``) and may make the socket listen on more topics."""

    def __call__(self, socket: ScreenSocket, message: dict[str, Any]) -> None: ...


class ScreenSocket:
    """One browser tab's socket."""

    def __init__(
        self, hub: Hub, principal: Principal, token: str, options: Mapping[str, str] | None = None
    ):
        self.hub = hub
        self.principal = principal
        self._token = token
        #: The query parameters the screen opened the socket with, but the token.
        self.options: Mapping[str, str] = dict(options or {})
        self.transport: WebSocketTransport | None = None
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._ping: LoopingCall | None = None
        self._first_ping: IDelayedCall | None = None
        self._too_big = False
        #: Since when its transport is full (``None``: it reads), what it was sent since.
        self.behind_since: float | None = None
        self.behind_bytes = 0
        self._too_slow = False

    # WebSocketProtocol
    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport
        _bound_messages(transport, MAX_CLIENT_WIRE_MESSAGE, self._message_too_big)
        _watch_reading(transport, self)

    def negotiationFinished(self) -> None:
        self.hub.opened(self)
        self.send(
            {
                "type": "hello",
                "username": self.principal.username,
                "role": self.principal.role,
                "devices": list(self.principal.devices),
            }
        )
        self.listen(operator_topic(self.principal.operator_id))
        for topic in self.hub.topics_for(self.principal, self.options):
            self.listen(topic)
        self.hub.bus.publish(POP_REPLAY_TOPIC, {"operator_id": self.principal.operator_id})
        # Each socket keeps its own phase: screens that connected together (a node
        # restart, a shift starting) are not all pinged in the same moment.
        self._first_ping = self.hub.reactor.callLater(self.hub.first_ping_delay(), self._pinging)

    def _pinging(self) -> None:
        self._first_ping = None
        self._ping = LoopingCall(self._keepalive)
        self._ping.clock = self.hub.reactor
        self._ping.start(self.hub.ping_interval, now=True)

    def pongReceived(self, payload: bytes) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        if self._too_big:  # the end of the message that closed the socket
            return
        if len(message) > MAX_CLIENT_MESSAGE:
            self.send({"type": "error", "error": "message too long"})
            return
        try:
            data = json.loads(message)
        except ValueError:
            self.send({"type": "error", "error": "not JSON"})
            return
        if not isinstance(data, dict):
            self.send({"type": "error", "error": "expected an object"})
            return
        kind = data.get("type")
        if kind == "ping":
            self.send({"type": "pong"})
            return
        handler = self.hub.handler_for(kind)
        if handler is None:
            self.send({"type": "error", "error": "unknown message type"})
            return
        handler(self, data)

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        if self._too_big:
            return
        self.send({"type": "error", "error": "text messages only"})

    def connectionLost(self, reason: Failure) -> None:
        if self._first_ping is not None and self._first_ping.active():
            self._first_ping.cancel()
        self._first_ping = None
        if self._ping is not None and self._ping.running:
            self._ping.stop()
        for stop in self._unsubscribe.values():
            stop()
        self._unsubscribe.clear()
        self.hub.closed(self)
        self.transport = None

    # ours
    @property
    def token(self) -> str:
        return self._token

    def listen(self, topic: str) -> None:
        if topic not in self._unsubscribe:
            # As published: one message to many screens is not decoded and encoded per screen.
            self._unsubscribe[topic] = self.hub.bus.subscribe_text(topic, self.send_text)

    def send(self, message: dict[str, Any]) -> None:
        self.send_text(json.dumps(message, ensure_ascii=False))

    def send_text(self, text: str) -> None:
        if self.transport is None or self._too_slow:
            return
        if self.behind_since is not None:
            self.behind_bytes += len(text)
            late = self.hub.reactor.seconds() - self.behind_since
            if self.behind_bytes > MAX_BEHIND_BYTES or late > MAX_BEHIND_SECONDS:
                self._cut_off(late)
                return
        # Closing (the browser's close frame arrived, connectionLost has not yet): a push
        # in that moment is for nobody; it is not the bus handler failing.
        with contextlib.suppress(LocalProtocolError):
            self.transport.sendTextMessage(text)

    def reading(self, reads: bool) -> None:
        """Its transport is full (``False``) or has room again (``True``)."""
        if reads:
            self.behind_since, self.behind_bytes = None, 0
        elif self.behind_since is None:
            self.behind_since = self.hub.reactor.seconds()

    def _cut_off(self, late: float) -> None:
        transport = self.transport
        if transport is None:
            return
        self._too_slow = True
        self.hub.too_slow += 1
        log.warning(
            "screen socket closed: it does not read what it is sent",
            username=self.principal.username,
            behind_bytes=self.behind_bytes,
            behind_seconds=round(late, 1),
        )
        transport.loseConnection(TOO_SLOW)
        # A close frame waits behind all it did not read: if it does not go, cut the TCP.
        tcp = getattr(transport, "transport", None)
        abort = getattr(tcp, "abortConnection", None)
        if abort is not None:
            self.hub.reactor.callLater(CUT_AFTER_SECONDS, _abort_if_open, self, abort)

    def _keepalive(self) -> None:
        """Ping the browser (the hub re-checks the token, for all its sockets at once)."""
        if self.transport is not None:
            self.transport.ping(b"cti")

    def _message_too_big(self) -> None:
        if self._too_big or self.transport is None:
            return
        self._too_big = True
        log.warning(
            "screen socket closed: a message over the limit",
            username=self.principal.username,
            limit=MAX_CLIENT_WIRE_MESSAGE,
        )
        self.transport.loseConnection(MESSAGE_TOO_BIG)

    def session_ended(self) -> None:
        """The token is gone (logged out, expired, operator deactivated): a screen must
        not keep receiving pops then."""
        if self.transport is not None:
            log.info("screen token ended; closing its socket", username=self.principal.username)
            self.send({"type": "session_ended"})
            self.transport.loseConnection(SESSION_ENDED)


class Hub:
    """Every open screen socket of this node.

    A socket is pinged every ``ping_interval`` seconds, the first time after
    ``ping_interval * (0.5 + spread())``, ``spread`` giving a number in [0, 1): sockets
    opened together are pinged spread over a whole interval, not in one burst.

    The tokens are re-checked by the hub, not by each socket: every ``ping_interval``
    seconds while any socket is open, one ``valid_tokens`` call (one database job, one
    query) for the tokens of all the sockets, so a screen is closed within one interval
    of its token's end however many screens there are. Without ``valid_tokens`` the hub
    asks ``resolve_token`` for each token (tests, small wirings).

    ``ping`` is the hub's own message; every other ``type`` a screen may send, and every
    topic beyond the operator's own, is a feature's (``add_message_handler``,
    ``add_topic_rule``), added before the web serves.
    """

    #: The client message types the hub answers itself.
    OWN_MESSAGES = frozenset({"ping"})

    def __init__(
        self,
        reactor: IReactorTime,
        bus: Bus,
        resolve_token: TokenResolver,
        *,
        ping_interval: float = 25.0,
        spread: Callable[[], float] = random.random,
        valid_tokens: TokenChecker | None = None,
    ):
        self.reactor = reactor
        self.bus = bus
        self.resolve_token = resolve_token
        self.ping_interval = ping_interval
        self._spread = spread
        self._valid_tokens = valid_tokens or self._resolve_each
        self.sockets: set[ScreenSocket] = set()
        self._checker = LoopingCall(self._check_tokens)
        self._checker.clock = reactor
        self._checking = False
        self._stopped = False
        self.token_checks = 0
        #: Sockets closed because their screen did not read what it was sent.
        self.too_slow = 0
        self._topic_rules: list[OptionsTopicRule] = []
        self._handlers: dict[str, MessageHandler] = {}

    # -- where a feature adds ------------------------------------------------------------

    def add_topic_rule(self, rule: TopicRule) -> None:
        """``rule(principal)``: topics a screen also listens on when it opens (after its
        operator's own, in the order the rules were added)."""
        self._topic_rules.append(lambda principal, options: rule(principal))

    def add_options_topic_rule(self, rule: OptionsTopicRule) -> None:
        """As ``add_topic_rule``, ``rule(principal, options)`` also given the socket's
        options (a screen that asked for another form of the same pushes)."""
        self._topic_rules.append(rule)

    def add_message_handler(self, kind: str, handler: MessageHandler) -> None:
        """``handler(socket, message)`` for the client messages whose ``type`` is ``kind``."""
        if kind in self.OWN_MESSAGES or kind in self._handlers:
            raise ValueError(f"message type {kind!r} is taken")
        self._handlers[kind] = handler

    def topics_for(
        self, principal: Principal, options: Mapping[str, str] | None = None
    ) -> list[str]:
        given = options or {}
        return [topic for rule in self._topic_rules for topic in rule(principal, given)]

    def handler_for(self, kind: object) -> MessageHandler | None:
        return self._handlers.get(kind) if isinstance(kind, str) else None

    # -- the sockets ---------------------------------------------------------------------

    def first_ping_delay(self) -> float:
        return self.ping_interval * (0.5 + self._spread())

    def opened(self, socket: ScreenSocket) -> None:
        self.sockets.add(socket)
        log.info(
            "screen connected",
            username=socket.principal.username,
            role=socket.principal.role,
            sockets=len(self.sockets),
        )
        if not self._checker.running and not self._stopped:
            # The token was checked for the upgrade a moment ago: next after an interval.
            self._checker.start(self.ping_interval, now=False)

    def closed(self, socket: ScreenSocket) -> None:
        self.sockets.discard(socket)
        if not self.sockets and self._checker.running:
            self._checker.stop()

    def token_ended(self, token: str) -> int:
        """Close this node's sockets of ``token`` now (its owner logged out); other
        nodes' close at their next re-check. How many were closed."""
        ended = [socket for socket in self.sockets if socket.token == token]
        for socket in ended:
            socket.session_ended()
        return len(ended)

    def stop(self) -> None:
        """No more token checks (the daemon stops; its database pool goes)."""
        self._stopped = True
        if self._checker.running:
            self._checker.stop()

    # -- token re-checks -----------------------------------------------------------------

    def _check_tokens(self) -> None:
        if self._checking:  # the last check has not answered yet: no pile-up
            return
        tokens = {socket.token for socket in self.sockets}
        if not tokens:
            return
        self._checking = True
        self.token_checks += 1

        def checked(valid: set[str]) -> None:
            for socket in [s for s in self.sockets if s.token in tokens]:
                if socket.token not in valid:
                    socket.session_ended()

        def unknown(failure: Failure) -> None:
            # The database cannot say now: keep the sockets, ask again in an interval.
            log.warning("cannot re-check the screens' tokens", error=failure.getErrorMessage())

        def done(_: object) -> None:
            self._checking = False

        d = self._valid_tokens(tokens)
        d.addCallbacks(checked, unknown).addBoth(done)

    def _resolve_each(self, tokens: Collection[str]) -> Deferred[set[str]]:
        asked = list(tokens)
        answers = gatherResults([self.resolve_token(t) for t in asked], consumeErrors=True)

        def valid(principals: list[Principal | None]) -> set[str]:
            return {t for t, p in zip(asked, principals, strict=True) if p is not None}

        def first_error(failure: Failure) -> Failure:
            error = failure.value
            return error.subFailure if isinstance(error, FirstError) else failure

        return answers.addCallbacks(valid, first_error)

    def status(self) -> dict[str, Any]:
        return {
            "sockets": len(self.sockets),
            "token_checks": self.token_checks,
            "too_slow": self.too_slow,
        }


class ScreenSocketResource(Resource):
    """``/ws?token=``: checks the page's origin and the token, then upgrades to a
    WebSocket. ``allowed_origins``: other origins whose pages may (normalised)."""

    isLeaf = True

    def __init__(self, hub: Hub, allowed_origins: Collection[str] = ()):
        super().__init__()
        self.hub = hub
        self.allowed_origins = frozenset(
            o for o in (normal_origin(origin) for origin in allowed_origins) if o is not None
        )

    def render_GET(self, request: Request) -> bytes | int:
        origin = request.getHeader(b"origin")
        host = request.getHeader(b"host")
        if not origin_allowed(
            None if origin is None else origin.decode("latin-1"),
            None if host is None else host.decode("latin-1"),
            self.allowed_origins,
        ):
            log.warning(
                "screen socket refused: a page of another origin",
                origin=(origin or b"").decode("latin-1")[:100],
            )
            return self._refuse(request, 403, "this page's origin may not open a screen socket")
        token = (request.args.get(b"token") or [b""])[0].decode("utf-8", "replace")
        if not token:
            return self._refuse(request, 401, "token required")

        def resolved(principal: Principal | None) -> None:
            if request.channel is None or request._disconnected:
                return
            if principal is None:
                request.write(self._refuse(request, 401, "invalid or expired token"))
                request.finish()
                return
            socket = ScreenSocket(self.hub, principal, token, socket_options(request))
            upgrade = WebSocketResource(_OneSocket(socket))
            result = upgrade.render_GET(request)
            if isinstance(result, bytes):  # the upgrade was refused (not a WebSocket request)
                request.write(result)
                request.finish()

        def failed(failure: Failure) -> None:
            log.error("token check failed", error=failure.getErrorMessage())
            if request.channel is not None and not request._disconnected:
                request.write(self._refuse(request, 503, "cannot check the token now"))
                request.finish()

        self.hub.resolve_token(token).addCallbacks(resolved, failed)
        return NOT_DONE_YET

    @staticmethod
    def _refuse(request: Request, code: int, message: str) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps({"error": message}).encode()


@implementer(IPushProducer)
class _Reading:
    """What the socket's TCP transport says of its client: full (pause), room again
    (resume); the socket sends on and counts (``ScreenSocket.reading``)."""

    def __init__(self, socket: ScreenSocket) -> None:
        self._socket = socket

    def pauseProducing(self) -> None:
        self._socket.reading(False)

    def resumeProducing(self) -> None:
        self._socket.reading(True)

    def stopProducing(self) -> None:
        pass


def _watch_reading(transport: WebSocketTransport, socket: ScreenSocket) -> None:
    """Be told when the socket's TCP transport is full. Its producer is still the HTTP
    channel the upgrade came through (so ``attachProducer`` would fail): that one has
    nothing left to do on a WebSocket, and gives its place to ``_Reading``."""
    consumer: Any = IConsumer(getattr(transport, "transport", None), None)
    if consumer is None:
        return
    if getattr(consumer, "producer", None) is not None:
        consumer.unregisterProducer()
    consumer.registerProducer(_Reading(socket), True)


def _abort_if_open(socket: ScreenSocket, abort: Callable[[], None]) -> None:
    if socket.transport is not None:
        abort()


class _BoundedBuffer:
    """Stands in for the Twisted WebSocket's message buffer (``data``, ``add``,
    ``done``): past ``limit`` it keeps nothing and says so, once per message."""

    def __init__(self, empty: Any, limit: int, too_big: Callable[[], None]):
        self.data = empty
        self._empty = empty
        self._limit = limit
        self._too_big = too_big

    def add(self, new: Any) -> None:
        if len(self.data) + len(new) > self._limit:
            self.data = self._empty
            self._too_big()
        else:
            self.data += new

    def done(self) -> Any:
        result, self.data = self.data, self._empty
        return result


def _bound_messages(transport: WebSocketTransport, limit: int, too_big: Callable[[], None]) -> None:
    """Bound what Twisted's wire protocol buffers of one client message (its private
    ``_textBuffer``/``_bytesBuffer``; a transport without them, a test's, is left)."""
    for name, empty in (("_textBuffer", ""), ("_bytesBuffer", b"")):
        if hasattr(transport, name):
            setattr(transport, name, _BoundedBuffer(empty, limit, too_big))


def socket_options(request: Request) -> dict[str, str]:
    """The query parameters but the token (the first value of each), bounded: a socket's
    options are small words (``agents=batched``), not a place to store anything."""
    options: dict[str, str] = {}
    for name, values in (request.args or {}).items():
        if name == b"token" or not values or len(options) >= MAX_OPTIONS:
            continue
        key = name.decode("utf-8", "replace")[:MAX_OPTION_LENGTH]
        options[key] = values[0].decode("utf-8", "replace")[:MAX_OPTION_LENGTH]
    return options


class _OneSocket:
    """A WebSocketServerFactory that hands out the socket built for this request."""

    def __init__(self, socket: ScreenSocket):
        self.socket = socket

    def buildProtocol(self, request: Request) -> ScreenSocket:
        return self.socket
