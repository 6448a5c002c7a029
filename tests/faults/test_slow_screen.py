"""A screen that stops reading does not hold up anyone's pops, and is cut off.

Injects: Bart's console stops reading its WebSocket (the client's TCP no longer reads:
a frozen tab, a laptop asleep on a live connection) while 3 MiB of messages are
published to him, and a call rings Anna meanwhile, on the daemon with the simulated
PBX and real sockets on loopback. Survives: Anna gets her pop while Bart's messages pile
up; Bart's socket is closed (4408) once ``MAX_BEHIND_BYTES`` are waiting and cut when
its close cannot get through; the daemon's hub drops it and counts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from cti_bridge.app.daemon import Daemon
from cti_bridge.app.demo import DEMO_PASSWORD, seed
from cti_bridge.bus.topics import operator_topic
from cti_bridge.sim import SimulatedPBX
from cti_bridge.store import Store
from cti_bridge.web.ws import CUT_AFTER_SECONDS, MAX_BEHIND_BYTES
from tests.integration.integration_support import (
    daemon_config,
    eventually,
    prepared_store,
    sleep,
    started_daemon,
)
from tests.integration.pop_support import Screen, open_screen
from tests.support.reliability import record


@pytest_twisted.async_yield_fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[SimulatedPBX, Daemon, Store]]:
    sim = SimulatedPBX(reactor, seed=5, speed=4.0)
    port = sim.listen(0)
    url, store = prepared_store(tmp_path)
    seed(store)
    daemon = await started_daemon(daemon_config(url, "127.0.0.1", port, sim.username, sim.secret))
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 10, "PBX link up")
    yield sim, daemon, store
    await daemon.stop()
    await sim.stop()
    store.close()


@pytest_twisted.ensureDeferred
async def test_a_screen_that_stops_reading_is_cut_off_and_nobody_waits_for_it(
    demo: tuple[SimulatedPBX, Daemon, Store],
) -> None:
    sim, daemon, store = demo
    anna = await open_screen(daemon, "anna", DEMO_PASSWORD)
    bart: Screen = await open_screen(daemon, "bart", DEMO_PASSWORD)
    hub = daemon.node.http.hub
    assert len(hub.sockets) == 2
    found = store.accounts.get_operator("bart")
    assert found is not None
    bart_id = found.id
    assert bart.transport is not None
    bart.transport.transport.pauseProducing()  # type: ignore[attr-defined]  # stops reading

    sim.place_call(
        "queue_answered", caller=("+3250123456", "Jan Peeters"), operator="PJSIP/1001", talk=4
    )
    payload = "x" * 4000
    for n in range(3 * 1024 * 1024 // len(payload)):  # 3 MiB, a reactor turn per 64 of them
        daemon.node.bus.publish(operator_topic(bart_id), {"type": "flood", "n": n, "p": payload})
        if n % 64 == 0:
            await sleep(0)
    await eventually(lambda: anna.of("screen_pop"), 20, "Anna's pop, while Bart's piles up")
    await eventually(lambda: hub.status()["too_slow"] == 1, 10, "Bart's socket given up")
    closed_at = reactor.seconds()
    await eventually(lambda: len(hub.sockets) == 1, CUT_AFTER_SECONDS + 5, "Bart's TCP cut")
    cut_after = reactor.seconds() - closed_at
    assert cut_after <= CUT_AFTER_SECONDS + 1
    received = [m for m in bart.messages if m["type"] == "flood"]
    assert len(received) * len(payload) < MAX_BEHIND_BYTES + 512 * 1024  # only the buffered
    bart.transport.transport.resumeProducing()  # type: ignore[attr-defined]  # the tab wakes
    await eventually(lambda: bart.lost, 10, "Bart's client finds its connection gone")
    assert not anna.lost and anna.of("screen_pop")[0]["customer"]["name"] == "Jan Peeters"
    anna.close()
    record(
        "A screen that stops reading",
        injected="an operator's WebSocket client stops reading while 3 MiB are published to"
        " it and a call rings another operator",
        expected="the other pop arrives; the stuck socket closed past 1 MiB (4408) and cut",
        other_pop="arrived",
        stuck_socket="closed 4408, cut",
        published_kib=3 * 1024,
        cut_after_close_s=round(cut_after, 1),
    )
