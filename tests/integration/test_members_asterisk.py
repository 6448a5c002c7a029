"""The members board of a running daemon on a real Asterisk 22: the QueueStatus snapshot,
the DeviceStateList after it, pauses from the CLI and a queue call, as the dialer reads
them (``operator_states``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_twisted

from cti_bridge.app.daemon import Daemon
from cti_bridge.queues.operators import MembersBoard
from cti_bridge.testing.asterisk import AsteriskInstance
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    eventually,
    in_thread,
    prepared_store,
    started_daemon,
)


class Live:
    def __init__(self, pbx: AsteriskInstance, daemon: Daemon):
        self.pbx, self.daemon = pbx, daemon
        self.board = daemon.node.part("members", MembersBoard)

    def states(self) -> dict[str, str]:
        return {s.operator: s.state for s in self.board.operator_states("main")}

    async def until(self, username: str, state: str, timeout: float = 20) -> None:
        await eventually(
            lambda: self.states().get(username) == state, timeout, f"{username} {state}"
        )


@pytest_twisted.async_yield_fixture
async def live(asterisk: AsteriskInstance, tmp_path: Path) -> AsyncIterator[Live]:
    url, store = prepared_store(tmp_path)
    for username, device in (("anna", "1001"), ("bart", "1002")):
        store.accounts.add_operator(
            username, role="operator", password=PASSWORD, devices=[f"Local/{device}@agents"]
        )
    config = daemon_config(
        url, asterisk.ami_host, asterisk.ami_port, asterisk.username, asterisk.secret, auth="plain"
    )
    daemon = await started_daemon(config)
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 20, "AMI link up")
    yield Live(asterisk, daemon)
    await in_thread(asterisk.cli, "queue unpause member Local/1002@agents/n")
    await daemon.stop()
    store.close()
    await in_thread(asterisk.wait_idle, 30, 5)


@pytest_twisted.ensureDeferred
async def test_the_board_follows_pauses_and_a_queue_call_on_asterisk(live: Live) -> None:
    await live.until("anna", "available")
    await live.until("bart", "available")

    def lists() -> dict[str, int]:
        found: dict[str, int] = live.daemon.health()["members"]["pbx"]["main"]["device_lists"]
        return found

    # Asterisk 22 has the action; its answer may come after the members' states (the
    # link asks for the PJSIP endpoints too since the phones' health).
    await eventually(
        lambda: lists() == {"asked": 1, "answered": 1, "failed": 0}, 10, "the device list"
    )

    await in_thread(
        live.pbx.cli, "queue pause member Local/1002@agents/n queue support reason Coaching"
    )
    await live.until("bart", "available")  # still free for sales
    bart = live.board.operator("main", "bart")
    assert bart is not None and bart.queues == frozenset({"sales"})
    await in_thread(
        live.pbx.cli, "queue pause member Local/1002@agents/n queue sales reason Coaching"
    )
    await live.until("bart", "paused")
    bart = live.board.operator("main", "bart")
    assert bart is not None and bart.paused_reason == "Coaching"

    await in_thread(live.pbx.set_operator, "1001", ring=2, talk=4)
    await in_thread(live.pbx.place_call, "3200", "+3250123456", "Jan Peeters", hold=30)
    await live.until("anna", "on_call")
    assert live.states()["bart"] == "paused"  # a paused member is not rung
    await live.until("anna", "available", timeout=30)
