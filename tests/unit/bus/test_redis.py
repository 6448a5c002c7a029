"""The Redis bus without a server: its URL and its construction."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from cti_bridge.bus import make_bus
from cti_bridge.bus.redis import RedisBus, parse_redis_url


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
