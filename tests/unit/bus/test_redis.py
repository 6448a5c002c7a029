"""The Redis bus: its URL and its construction without a server; its leases' own
connection on the real one."""

from __future__ import annotations

import uuid

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.task import Clock

from cti_bridge.bus import make_bus
from cti_bridge.bus.redis import RedisBus, parse_redis_url
from tests.unit.bus.conftest import REDIS_URL


def test_redis_url_parsing() -> None:
    assert parse_redis_url("redis://:s%40cret@10.0.0.5:6380/2") == {
        "host": "10.0.0.5",
        "port": 6380,
        "dbid": 2,
        "password": "s@cret",
        "username": None,
    }
    with pytest.raises(ValueError, match="not a redis"):
        parse_redis_url("http://x")


def test_make_bus_redis_connects_only_when_started() -> None:
    clock = Clock()
    bus = make_bus("redis://127.0.0.1:1/0", clock)
    assert isinstance(bus, RedisBus)
    assert clock.getDelayedCalls() == []
    status = bus.status()
    assert (status["status"], status["kind"], status["address"]) == (
        "degraded",
        "redis",
        "127.0.0.1:1",
    )


@pytest.mark.redis
@pytest_twisted.ensureDeferred
async def test_a_lease_is_answered_while_the_message_connection_is_busy() -> None:
    """The leases have their own connection: with the messages' connection held (here by
    a blocking command for 3 s; in the benchmark by thousands of publishes while 3,000
    screens connected) a grant and a renewal are answered at once, not after it, which
    took longer than a quarter lease and made the owner give up its PBX."""
    prefix = f"cti-test-{uuid.uuid4().hex[:8]}"
    bus = RedisBus(reactor, REDIS_URL, prefix=prefix)
    await bus.start()
    try:
        await bus.grant("warm-up", "node-a", 5.0)  # both connections up
        busy = bus._pool.execute_command("BLPOP", f"{prefix}:nothing", 3)
        started = reactor.seconds()
        token = await bus.grant("pbx:main", "node-a", 5.0)
        renewed = await bus.renew("pbx:main", "node-a", 5.0)
        answered_after = reactor.seconds() - started
        assert token is not None and renewed is True
        assert answered_after < 1.0, answered_after  # the BLPOP holds the other for 3 s
        assert await busy is None  # the messages' connection was held all along
        bus.publish("t", {"after": True})
    finally:
        await bus.stop()
        cleanup = redis.Redis.from_url(REDIS_URL)
        for key in cleanup.scan_iter(f"{prefix}:*"):
            cleanup.delete(key)
        cleanup.close()
