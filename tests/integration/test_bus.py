"""The Redis bus against Redis servers that fail: down from the start, restarted under it.

What the memory and Redis buses share is one contract suite, run on both:
``tests/unit/bus/test_contract.py``. These tests run on the real reactor (pytest-twisted).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import pytest_twisted
import redis
from twisted.internet import reactor

from cti_bridge.bus import BusUnreachable
from cti_bridge.bus.redis import RedisBus
from tests.integration.integration_support import eventually, sleep
from tests.support.private_redis import PrivateRedis

REDIS_URL = os.environ.get("CTI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.mark.redis
@pytest_twisted.ensureDeferred
async def test_lease_is_a_key_with_its_ttl_on_the_server() -> None:
    prefix = f"cti-test-{uuid.uuid4().hex[:12]}"
    bus = RedisBus(reactor, REDIS_URL, prefix=prefix)
    server = redis.Redis.from_url(REDIS_URL)
    await bus.start()
    try:
        assert await bus.acquire("agreement-1", "node-a", ttl=30) is True
        key = f"{prefix}:lock:agreement-1"
        assert server.get(key) == b"node-a"
        assert 29_000 < int(server.pttl(key)) <= 30_000
        assert await bus.renew("agreement-1", "node-a", ttl=60) is True
        assert 59_000 < int(server.pttl(key)) <= 60_000
        assert await bus.release("agreement-1", "node-a") is True
        assert server.exists(key) == 0
    finally:
        await bus.stop()
        keys = list(server.scan_iter(match=f"{prefix}:*"))
        if keys:
            server.delete(*keys)
        server.close()


@pytest.mark.redis
@pytest_twisted.ensureDeferred
async def test_redis_down_keeps_local_delivery_and_reports_degraded() -> None:
    bus = RedisBus(reactor, "redis://127.0.0.1:1/0", prefix="cti-test-down")
    await bus.start()
    got: list[dict[str, Any]] = []
    bus.subscribe("operator.3", got.append)
    bus.publish("operator.3", {"type": "screen_pop"})
    await eventually(lambda: len(got) == 1)
    assert bus.status()["status"] == "degraded"
    await bus.stop()


@pytest.mark.redis
@pytest_twisted.ensureDeferred
async def test_redis_restart_degrades_then_recovers(tmp_path: Any) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    a, b = RedisBus(reactor, url, prefix="restart"), RedisBus(reactor, url, prefix="restart")
    try:
        await a.start()
        await b.start()
        await eventually(lambda: a.status()["subscribed"] and b.status()["subscribed"], 10)
        got_a: list[Any] = []
        got_b: list[Any] = []
        a.subscribe("operator.1", got_a.append)
        b.subscribe("operator.1", got_b.append)

        server.stop()
        await eventually(lambda: a.status()["status"] == "degraded", 10, "degraded")
        a.publish("operator.1", {"n": 1})  # this node's own screens still get it
        await eventually(lambda: got_a == [{"n": 1}], 5)

        server.start()
        await eventually(
            lambda: a.status()["subscribed"] and b.status()["subscribed"],
            30,
            "both nodes resubscribed",
        )
        a.publish("operator.1", {"n": 2})
        await eventually(lambda: {"n": 2} in got_b, 10, "delivery across nodes again")
        assert a.status()["status"] == "ok"
    finally:
        await a.stop()
        await b.stop()
        server.stop()


@pytest.mark.redis
@pytest_twisted.ensureDeferred
async def test_a_lease_request_to_a_redis_that_is_away_fails_within_a_quarter_lease(
    tmp_path: Any,
) -> None:
    """The pool would wait for Redis as long as it is away; the lease keeper must hear
    that the bus is unreachable while its lease still runs (to ask the database)."""
    server = PrivateRedis(tmp_path)
    server.start()
    bus = RedisBus(reactor, f"redis://127.0.0.1:{server.port}/0", prefix="away")
    try:
        await bus.start()
        token = await eventually_granted(bus)
        server.stop()
        started = reactor.seconds()
        with pytest.raises(BusUnreachable):
            await bus.renew("pbx:main", "node-a", ttl=4)
        assert reactor.seconds() - started < 4 / 4 + 0.5  # a quarter of the lease, not more
        server.start()
        await eventually(lambda: bus.status()["subscribed"], 30, "back")
        again = await eventually_granted(bus)  # the restarted server lost lease and counter
        assert again == token == 1
    finally:
        await bus.stop()
        server.stop()


async def eventually_granted(bus: RedisBus) -> int:
    """The first token granted once the server answers."""
    deadline = reactor.seconds() + 20
    while True:
        try:
            token = await bus.grant("pbx:main", "node-a", ttl=4)
        except BusUnreachable:
            token = None
        if token is not None:
            return token
        assert reactor.seconds() < deadline, "no grant from redis"
        await sleep(0.1)
