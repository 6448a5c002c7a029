"""Pops in the demo set-up: the daemon on the simulated PBX with the demo's seed (operators
on PJSIP/1001..1006, customers with contracts), real WebSockets. What ``cti-bridge demo``
shows a reviewer: the ringing operators get the customer's card, the answerer keeps it,
the others see it withdrawn, the supervisor sees pops only of operators they watch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from cti_bridge.app.daemon import Daemon
from cti_bridge.app.demo import DEMO_PASSWORD, seed
from cti_bridge.sim import SimulatedPBX
from cti_bridge.store import Store
from tests.integration.integration_support import (
    daemon_config,
    eventually,
    prepared_store,
    started_daemon,
)
from tests.integration.pop_support import Screen, open_screen

SPEED = 4.0


class Demo:
    def __init__(self, sim: SimulatedPBX, daemon: Daemon, store: Store):
        self.sim, self.daemon, self.store = sim, daemon, store
        self.screens: list[Screen] = []

    async def screen(self, username: str) -> Screen:
        screen = await open_screen(self.daemon, username, DEMO_PASSWORD)
        self.screens.append(screen)
        return screen


#: What a pop is made of on an operator's screen (their own agent_update and phone_status
#: come beside it since the Team view).
POP_MESSAGES = frozenset({"screen_pop", "call_update", "pop_withdrawn"})


def pops(screen: Screen) -> list[dict[str, Any]]:
    return [m for m in screen.messages[1:] if m["type"] in POP_MESSAGES]


@pytest_twisted.async_yield_fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    sim = SimulatedPBX(reactor, seed=5, speed=SPEED)
    port = sim.listen(0)
    url, store = prepared_store(tmp_path)
    seed(store)
    daemon = await started_daemon(daemon_config(url, "127.0.0.1", port, sim.username, sim.secret))
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 10, "PBX link up")
    live = Demo(sim, daemon, store)
    yield live
    for screen in live.screens:
        screen.close()
    await daemon.stop()
    await sim.stop()
    store.close()


@pytest_twisted.ensureDeferred
async def test_the_demo_pops_the_customer_on_the_ringing_screens(demo: Demo) -> None:
    anna = await demo.screen("anna")
    bart = await demo.screen("bart")
    sofie = await demo.screen("sofie")  # supervisor, watching nobody yet
    demo.sim.place_call(
        "queue_answered", caller=("+3250123456", "Jan Peeters"), operator="PJSIP/1001", talk=4
    )
    await eventually(
        lambda: any(m["state"] == "ended" for m in anna.of("call_update")), 30, "the end"
    )
    pop = anna.of("screen_pop")[0]
    assert pop["customer"]["name"] == "Jan Peeters"
    assert pop["customer"]["company"] == "Peeters Installaties"
    assert pop["in_contract"] is True
    assert [c["reference"] for c in pop["contracts"]] == ["C-2026-0001"]
    assert pop["device"] == "PJSIP/1001" and pop["operator"] == "anna"
    assert [(m["type"], m.get("state")) for m in pops(anna)] == [
        ("screen_pop", "ringing"),
        ("call_update", "answered"),
        ("call_update", "ended"),
    ]
    # Beside the pops an operator's screen gets their own state (My state), nobody else's.
    assert {m["agent"]["operator"] for m in anna.of("agent_update")} == {"anna"}
    assert {m["agent"]["operator"] for m in bart.of("agent_update")} <= {"bart"}
    assert [m["type"] for m in pops(bart)] == ["screen_pop", "pop_withdrawn"]
    assert pops(bart)[-1]["reason"] == "answered_elsewhere"
    assert not sofie.of("screen_pop")

    # The supervisor watches Bart, and sees Bart's next pop (only Bart's).
    assert sofie.transport is not None
    sofie.transport.sendTextMessage('{"type": "watch", "username": "bart"}')
    await eventually(lambda: sofie.of("watching"), 10, "watching Bart")
    demo.sim.place_call(
        "queue_answered", caller=("050765432", "Marie Dubois"), operator="PJSIP/1002", talk=2
    )
    await eventually(lambda: sofie.of("screen_pop"), 20, "Bart's pop on Sofie's screen")
    assert {m["operator"] for m in sofie.of("screen_pop")} == {"bart"}
    assert sofie.of("screen_pop")[0]["customer"]["name"] == "Marie Dubois"
