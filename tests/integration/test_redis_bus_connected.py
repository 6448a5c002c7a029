"""``RedisBus.connected``: called after the first subscription and again after every new
one (a restarted Redis), the moment a subscriber that keeps state must ask for a
snapshot (``queues/relay.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from cti_bridge.bus.redis import RedisBus
from tests.integration.integration_support import eventually
from tests.support.private_redis import PrivateRedis


@pytest_twisted.ensureDeferred
async def test_connected_is_called_on_each_new_subscription(tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path)
    redis.start()
    bus = RedisBus(reactor, redis.url)
    calls: list[None] = []
    bus.connected.append(lambda: calls.append(None))
    try:
        await bus.start()
        await eventually(lambda: len(calls) == 1, 10, "the first subscription")
        redis.stop()
        await eventually(lambda: not bus.status()["subscribed"], 10, "the subscription lost")
        redis.start()
        await eventually(lambda: len(calls) == 2, 30, "subscribed again")
    finally:
        await bus.stop()
        redis.stop()
