"""One suite for both buses: the in-process twin and Redis (the real server on :6379).

Runs on the real reactor (pytest-twisted), because the Redis bus talks to a real Redis.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred

from cti_bridge.bus import Bus, MemoryBus
from cti_bridge.bus.redis import RedisBus, parse_redis_url
from tests.integration.integration_support import eventually, sleep

REDIS_URL = os.environ.get("CTI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def started_redis_bus(prefix: str) -> RedisBus:
    bus = RedisBus(reactor, REDIS_URL, prefix=prefix)
    await bus.start()
    await eventually(lambda: bus.status()["subscribed"])
    return bus


@pytest_twisted.async_yield_fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.redis)]
)
async def buses(request: Any) -> AsyncIterator[tuple[Bus, Bus]]:
    """Two nodes on one bus (for memory: the same in-process bus twice)."""
    if request.param == "memory":
        bus = MemoryBus(reactor)
        yield bus, bus
        return
    prefix = f"cti-test-{uuid.uuid4().hex[:8]}"
    a = await started_redis_bus(prefix)
    b = await started_redis_bus(prefix)
    yield a, b
    await ensureDeferred(_stop(a, b))


async def _stop(*buses: RedisBus) -> None:
    for bus in buses:
        await bus.stop()


@pytest_twisted.ensureDeferred
async def test_message_reaches_subscribers_on_every_node(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    got_a: list[dict[str, Any]] = []
    got_b: list[dict[str, Any]] = []
    a.subscribe("operator.7", got_a.append)
    b.subscribe("operator.7", got_b.append)
    a.publish("operator.7", {"type": "screen_pop", "caller": {"name": "<b>Zoë</b>"}})
    assert got_a == []  # eventual: never inside publish()
    await eventually(lambda: len(got_a) == 1 and len(got_b) == 1)
    assert got_a[0] == got_b[0] == {"type": "screen_pop", "caller": {"name": "<b>Zoë</b>"}}


@pytest_twisted.ensureDeferred
async def test_topics_are_separate_and_order_is_kept(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    got: list[int] = []
    other: list[int] = []
    b.subscribe("operator.1", lambda m: got.append(m["n"]))
    b.subscribe("operator.2", lambda m: other.append(m["n"]))
    for n in range(50):
        a.publish("operator.1", {"n": n})
    await eventually(lambda: len(got) == 50)
    assert got == list(range(50))
    assert other == []


@pytest_twisted.ensureDeferred
async def test_failing_handler_does_not_stop_the_others(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    got: list[dict[str, Any]] = []

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    b.subscribe("supervisors", broken)
    b.subscribe("supervisors", got.append)
    a.publish("supervisors", {"type": "queue_update"})
    await eventually(lambda: len(got) == 1)


@pytest_twisted.ensureDeferred
async def test_unsubscribe_stops_delivery(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    got: list[dict[str, Any]] = []
    witness: list[dict[str, Any]] = []
    stop = b.subscribe("t", got.append)
    b.subscribe("t", witness.append)
    stop()
    a.publish("t", {"x": 1})
    await eventually(lambda: len(witness) == 1)
    assert got == []


@pytest_twisted.ensureDeferred
async def test_lock_has_one_owner_until_released_or_expired(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    name = f"agreement-{uuid.uuid4().hex[:6]}"
    assert await a.acquire(name, "node-a", ttl=0.3) is True
    assert await b.acquire(name, "node-b", ttl=0.3) is False
    assert await b.release(name, "node-b") is False  # not the owner
    assert await a.release(name, "node-a") is True
    assert await b.acquire(name, "node-b", ttl=0.2) is True
    await sleep(0.35)  # the lock expires by itself (a crashed node cannot hold it forever)
    assert await a.acquire(name, "node-a", ttl=1) is True


def test_payload_must_be_json() -> None:
    bus = MemoryBus(reactor)
    with pytest.raises(TypeError):
        bus.publish("t", {"when": object()})


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


class PrivateRedis:
    """A redis-server of this test's own, so that it can be killed and restarted."""

    def __init__(self, folder: Any) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.process: Any = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


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
