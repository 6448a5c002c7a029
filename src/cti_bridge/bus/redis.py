"""The Redis bus: fan-out and locks across several cti-bridge nodes.

A node delivers its own messages to its own subscribers directly (one reactor turn, as
the in-process bus does) and sends them to Redis for the other nodes; what comes back from
Redis with this node's id is skipped. So an operator whose WebSocket sits on the node that
saw the ring gets the pop even while Redis is down: the bus then reports itself degraded
and other nodes miss those messages until Redis is back (txredisapi reconnects, and the
subscriber subscribes again on every new connection).

Locks are ``SET name owner NX PX ttl`` and compare-and-delete / compare-and-pexpire
scripts, the pattern Redis documents for a single instance; a fenced lease (``grant``)
is the same ``SET`` and an ``INCR`` of the name's counter (``<prefix>:fence:<name>``,
never expiring) in one Lua script. The memory twin copies these
semantics (``base.py`` says what both promise; one contract suite checks both).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
import txredisapi
from twisted.internet.defer import CancelledError, Deferred, fail, inlineCallbacks, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from .base import BusNotRunning, BusUnreachable, Handler, TextHandler, encode, lease_ms
from .fanout import LocalFanout

log = structlog.get_logger("cti_bridge.bus.redis")

#: The longest a lock request waits for Redis's answer (shorter for short leases).
LOCK_REPLY_SECONDS = 2.0

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""

#: SET NX PX and, only if it was set, INCR of the name's fencing counter (a key without
#: expiry), first raised to the floor the caller knows of (ARGV[3]: a counter lost with
#: a restarted server starts again from there): one script, so no grant is ever seen
#: without its token or with another's.
_GRANT = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local floor = tonumber(ARGV[3])
  if floor > (tonumber(redis.call('get', KEYS[2])) or 0) then
    redis.call('set', KEYS[2], floor)
  end
  return redis.call('incr', KEYS[2])
end
return false
"""
_HOLDERS_FENCE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('get', KEYS[2]) end
return false
"""


def parse_redis_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// URL: {url!r}")
    db = parts.path.lstrip("/")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "dbid": int(db) if db else None,
        "password": unquote(parts.password) if parts.password else None,
        "username": unquote(parts.username) if parts.username else None,
    }


class _Subscriber(txredisapi.SubscriberProtocol):  # type: ignore[misc]
    bus: RedisBus

    def connectionMade(self) -> Deferred[Any]:
        d: Deferred[Any] = super().connectionMade()
        self.whenConnected().addCallback(lambda _: self.bus._subscribed(self))
        return d

    def connectionLost(self, reason: Any) -> None:
        self.bus._unsubscribed(self)
        super().connectionLost(reason)

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.bus._received(message)


class RedisBus:
    def __init__(
        self,
        reactor: IReactorTime,
        url: str,
        *,
        prefix: str = "cti-bridge",
        node_id: str | None = None,
    ):
        self._reactor = reactor
        self._url = url
        self._options = parse_redis_url(url)
        self._channel = f"{prefix}:bus"
        self._lock_prefix = f"{prefix}:lock:"
        self._fence_prefix = f"{prefix}:fence:"
        self.node_id = node_id or uuid.uuid4().hex
        self._fanout = LocalFanout(reactor)
        self._pool: Any = None
        self._locks: Any = None
        self._subscriber_factory: Any = None
        self._subscriber: _Subscriber | None = None
        self._running = False
        self.published = 0
        self.publish_failures = 0
        self.last_error: str | None = None
        #: Called after every new subscription (the first and each reconnection): what
        #: was published meanwhile is lost (pub/sub keeps nothing), so a subscriber that
        #: keeps state asks for a snapshot here (``queues/relay.py``).
        self.connected: list[Callable[[], None]] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        opts = self._options

        def connection() -> Any:
            return txredisapi.lazyConnectionPool(
                host=opts["host"],
                port=opts["port"],
                dbid=opts["dbid"],
                password=opts["password"],
                username=opts["username"],
                poolsize=1,
                reconnect=True,
                connectTimeout=5,
                replyTimeout=5,
            )

        # One connection for the messages, so that a node's arrive in order; the leases
        # on their own: a renewal behind thousands of publishes (3,000 screens
        # connecting) went unanswered within a quarter lease and the owner gave up a
        # PBX that nobody else could have taken.
        self._pool = connection()
        self._locks = connection()
        factory = txredisapi.SubscriberFactory(isLazy=True)
        factory.password = opts["password"]
        factory.username = opts["username"]
        bus = self

        class Subscriber(_Subscriber):
            pass

        Subscriber.bus = bus
        factory.protocol = Subscriber
        factory.startConnecting(HostnameEndpoint(self._reactor, opts["host"], opts["port"], 5))
        self._subscriber_factory = factory
        self._running = True
        return succeed(None)

    @inlineCallbacks
    def stop(self) -> Any:
        self._running = False
        if self._subscriber_factory is not None:
            yield self._subscriber_factory.disconnect()
        for pool in (self._pool, self._locks):
            if pool is not None:
                yield pool.disconnect()

    def _subscribed(self, protocol: _Subscriber) -> None:
        self._subscriber = protocol
        subscribing = protocol.subscribe(self._channel)
        subscribing.addCallback(self._resubscribed)
        subscribing.addErrback(self._failed, "subscribe")
        log.info("bus connected to redis", channel=self._channel)

    def _resubscribed(self, _: object) -> None:
        for callback in list(self.connected):
            try:
                callback()
            except Exception:
                log.exception("a bus connection callback failed")

    def _unsubscribed(self, protocol: _Subscriber) -> None:
        if self._subscriber is protocol:
            self._subscriber = None
            if self._running:  # not when stop() let go of it
                log.warning("bus lost its redis subscription; reconnecting")

    # -- messages ----------------------------------------------------------------------

    def publish(self, topic: str, message: Mapping[str, Any]) -> None:
        payload = encode(message)
        self.published += 1
        self._fanout.deliver(topic, payload)
        envelope = encode({"node": self.node_id, "topic": topic, "payload": payload})
        if self._pool is None:
            return
        d = self._pool.publish(self._channel, envelope)
        d.addCallbacks(self._sent, self._failed, errbackArgs=("publish",))

    def _sent(self, _: object) -> None:
        self.last_error = None

    def _failed(self, failure: Any, what: str) -> None:
        self.publish_failures += 1
        self.last_error = f"{what}: {failure.getErrorMessage()}"
        log.warning("bus redis operation failed", operation=what, error=self.last_error)

    def _received(self, raw: Any) -> None:
        try:
            envelope = json.loads(raw)
        except (ValueError, TypeError):
            envelope = None
        if not isinstance(envelope, dict):
            log.warning("bus dropped a malformed message from redis", size=len(str(raw)))
            return
        if envelope.get("node") == self.node_id:
            return
        topic, payload = envelope.get("topic"), envelope.get("payload")
        if not isinstance(topic, str) or not isinstance(payload, str):
            log.warning("bus dropped a malformed message from redis", size=len(str(raw)))
            return
        self._fanout.deliver(topic, payload)

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        return self._fanout.subscribe(topic, handler)

    def subscribe_text(self, topic: str, handler: TextHandler) -> Callable[[], None]:
        return self._fanout.subscribe_text(topic, handler)

    def may_reach(self, topic: str) -> bool:
        return True  # another node may have one; PUBSUB NUMSUB would be a round trip

    # -- locks -------------------------------------------------------------------------

    def _not_running(self, what: str, name: str) -> Deferred[Any] | None:
        if self._running:
            return None
        return fail(BusNotRunning(f"{what} {name!r}: the bus is not running"))

    def _answer(self, d: Deferred[Any], what: str, ttl: float) -> Deferred[Any]:
        """A lock request that fails (``BusUnreachable``) when the connection is lost or
        Redis does not answer within a quarter of the lease (the pool waits for a
        connection as long as Redis is away): the lease keeper must learn that the bus
        is unreachable while its lease still runs."""
        seconds = max(0.05, min(ttl / 4, LOCK_REPLY_SECONDS))

        def timed_out(failure: Failure) -> Failure:
            if isinstance(failure.value, CancelledError | DeferredTimeoutError):
                raise BusUnreachable(f"{what}: no answer from redis within {seconds:g} s")
            if isinstance(failure.value, txredisapi.ConnectionError):
                raise BusUnreachable(f"{what}: {failure.getErrorMessage()}")
            return failure

        return d.addTimeout(seconds, self._reactor).addErrback(timed_out)

    def acquire(self, name: str, owner: str, ttl: float) -> Deferred[bool]:
        refused = self._not_running("acquire", name)
        if refused is not None:
            return refused
        d: Deferred[Any] = self._locks.execute_command(
            "SET", self._lock_prefix + name, owner, "NX", "PX", lease_ms(ttl)
        )
        return self._answer(d, "acquire", ttl).addCallback(lambda result: result == "OK")

    def renew(self, name: str, owner: str, ttl: float) -> Deferred[bool]:
        refused = self._not_running("renew", name)
        if refused is not None:
            return refused
        d: Deferred[Any] = self._locks.eval(
            _RENEW, keys=[self._lock_prefix + name], args=[owner, lease_ms(ttl)]
        )
        return self._answer(d, "renew", ttl).addCallback(bool)

    def release(self, name: str, owner: str) -> Deferred[bool]:
        refused = self._not_running("release", name)
        if refused is not None:
            return refused
        d: Deferred[Any] = self._locks.eval(_RELEASE, keys=[self._lock_prefix + name], args=[owner])
        return self._answer(d, "release", LOCK_REPLY_SECONDS * 4).addCallback(bool)

    def grant(self, name: str, owner: str, ttl: float, floor: int = 0) -> Deferred[int | None]:
        refused = self._not_running("grant", name)
        if refused is not None:
            return refused
        keys = [self._lock_prefix + name, self._fence_prefix + name]
        args = [owner, lease_ms(ttl), int(floor)]
        d: Deferred[Any] = self._locks.eval(_GRANT, keys=keys, args=args)
        return self._answer(d, "grant", ttl).addCallback(_token)

    def token(self, name: str, owner: str) -> Deferred[int | None]:
        refused = self._not_running("token", name)
        if refused is not None:
            return refused
        keys = [self._lock_prefix + name, self._fence_prefix + name]
        d: Deferred[Any] = self._locks.eval(_HOLDERS_FENCE, keys=keys, args=[owner])
        return self._answer(d, "token", LOCK_REPLY_SECONDS * 4).addCallback(_token)

    def status(self) -> dict[str, Any]:
        up = self._subscriber is not None and self.last_error is None
        opts = self._options
        return {
            "status": "ok" if up else "degraded",
            "kind": "redis",
            "address": f"{opts['host']}:{opts['port']}",
            "subscribed": self._subscriber is not None,
            "published": self.published,
            "publish_failures": self.publish_failures,
            "last_error": self.last_error,
        }


def _token(reply: Any) -> int | None:
    """A script's answer: the token (an integer, or a counter's text), or nil."""
    if reply is None or reply is False:
        return None
    return int(reply)
