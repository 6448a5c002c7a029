"""The members board of a running daemon against the demo PBX: the operators' states as
the dialer reads them (``operator_states``), through calls, a pause and a lost phone.
Real reactor, real TCP, real SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from cti_bridge.app.daemon import Daemon
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.sim import SimulatedPBX
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    eventually,
    prepared_store,
    started_daemon,
)

SPEED = 4.0  # simulated seconds per real second
OPERATORS = [("PJSIP/1001", "Anna"), ("PJSIP/1002", "Bart")]


class Setup:
    def __init__(self, sim: SimulatedPBX, daemon: Daemon):
        self.sim, self.daemon = sim, daemon
        self.board = daemon.node.part("members", MembersBoard)

    def states(self) -> dict[str, str]:
        return {s.operator: s.state for s in self.board.operator_states("main")}

    async def until(self, expected: dict[str, str], what: str) -> None:
        await eventually(lambda: self.states() == expected, 10, f"{what}: {expected}")


@pytest_twisted.async_yield_fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    sim = SimulatedPBX(reactor, seed=11, speed=SPEED, operators=OPERATORS)
    port = sim.listen(0)
    url, store = prepared_store(tmp_path)
    for username, device in (("anna", "PJSIP/1001"), ("bart", "PJSIP/1002")):
        store.accounts.add_operator(username, role="operator", password=PASSWORD, devices=[device])
    daemon = await started_daemon(daemon_config(url, "127.0.0.1", port, sim.username, sim.secret))
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 10, "PBX link up")
    yield Setup(sim, daemon)
    await daemon.stop()
    await sim.stop()
    store.close()


@pytest_twisted.ensureDeferred
async def test_the_board_follows_a_call_a_pause_and_a_lost_phone(setup: Setup) -> None:
    await setup.until({"anna": "available", "bart": "available"}, "after the snapshot")
    setup.sim.place_call(
        "queue_answered", caller=("050123456", "Marie"), operator="PJSIP/1001", ring=2.0, talk=6.0
    )
    await eventually(lambda: setup.states().get("anna") == "on_call", 10, "Anna on the call")
    await setup.until({"anna": "available", "bart": "available"}, "after the call")

    setup.sim.pause("PJSIP/1002", "Lunch")
    await setup.until({"anna": "available", "bart": "paused"}, "Bart paused")
    bart = setup.board.operator("main", "bart")
    assert bart is not None and bart.paused_reason == "Lunch"
    assert setup.board.free_device("main", "anna") == "PJSIP/1001"
    assert setup.board.free_device("main", "bart") is None

    setup.sim.unpause("PJSIP/1002")
    setup.sim.set_reachable("PJSIP/1002", False)
    await setup.until({"anna": "available", "bart": "unavailable"}, "Bart's phone gone")
    health = setup.daemon.health()["members"]
    assert health["pbx"]["main"]["errors"] == 0
    assert health["pbx"]["main"]["device_lists"]["failed"] == 1  # the demo PBX has none
