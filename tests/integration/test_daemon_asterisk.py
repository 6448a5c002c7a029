"""The daemon on a real Asterisk 22: calls placed on the PBX end up as the right records.

Customers are call files (``Local/hold<N>@sim-caller``) and operators are Local channels
whose ring/talk times come from AstDB, as in the recorded traces. The harness is
synchronous (CLI, sockets), so it runs in a thread while the reactor keeps reading AMI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_twisted

from cti_bridge.app.daemon import Daemon
from cti_bridge.store import Store
from cti_bridge.testing.asterisk import AsteriskInstance
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    eventually,
    in_thread,
    poll_in_thread,
    prepared_store,
    started_daemon,
)


class Live:
    def __init__(self, pbx: AsteriskInstance, daemon: Daemon, store: Store):
        self.pbx, self.daemon, self.store = pbx, daemon, store

    def calls_from(self, number: str) -> list[dict[str, Any]]:
        return self.store.queries.list_calls(number=number, limit=10)

    async def ended_record(self, number: str, timeout: float = 60) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            done = [c for c in self.calls_from(number) if c["ended_at"]]
            return done[0] if done else None

        return await poll_in_thread(find, timeout, f"an ended record for {number}")


@pytest_twisted.async_yield_fixture
async def live(asterisk: AsteriskInstance, tmp_path: Path) -> AsyncIterator[Live]:
    url, store = prepared_store(tmp_path)
    for username, device in (("anna", "1001"), ("bart", "1002"), ("second", "2001")):
        store.accounts.add_operator(
            username, role="operator", password=PASSWORD, devices=[f"Local/{device}@agents"]
        )
    config = daemon_config(
        url, asterisk.ami_host, asterisk.ami_port, asterisk.username, asterisk.secret, auth="plain"
    )
    daemon = await started_daemon(config)
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 20, "AMI link up")
    yield Live(asterisk, daemon, store)
    await daemon.stop()
    store.close()
    await in_thread(asterisk.wait_idle, 30, 5)


@pytest_twisted.ensureDeferred
async def test_queue_call_answered_by_an_operator(live: Live) -> None:
    await in_thread(live.pbx.set_operator, "1001", ring=2, talk=3)
    await in_thread(live.pbx.set_operator, "1002", ring=30, talk=3)
    await in_thread(live.pbx.place_call, "3200", "+3250123456", "Jan Peeters", hold=30)
    call = await live.ended_record("+3250123456")
    assert call["outcome"] == "answered"
    assert (call["queue"], call["answered_by"], call["direction"]) == ("support", "anna", "inbound")
    assert set(call["rang"]) == {"anna", "bart"}
    assert {r["operator"]: r["result"] for r in call["rings"]} == {
        "anna": "answered",
        "bart": "cancelled",
    }
    assert call["caller_name"] == "Jan Peeters" and call["caller_number"] == "+3250123456"
    assert 1.0 <= call["wait_seconds"] <= 5.0  # 2 s of ringing, local arrival times
    assert 1.5 <= call["talk_seconds"] <= 6.0  # Anna talks 3 s and hangs up
    assert call["hung_up_by"] == "operator"
    assert len(live.calls_from("+3250123456")) == 1


@pytest_twisted.ensureDeferred
async def test_abandoned_queue_call(live: Live) -> None:
    await in_thread(live.pbx.set_operator, "1001", ring=30, talk=3)
    await in_thread(live.pbx.set_operator, "1002", ring=30, talk=3)
    await in_thread(live.pbx.place_call, "3200", "050987654", "Marie Dubois", hold=3)
    call = await live.ended_record("050987654")
    assert (call["outcome"], call["answered_by"], call["queue"]) == ("abandoned", None, "support")
    assert set(call["rang"]) == {"anna", "bart"}
    assert call["talk_seconds"] is None
    assert 2.0 <= call["wait_seconds"] <= 6.0
    assert call["hung_up_by"] == "caller"


@pytest_twisted.ensureDeferred
async def test_blind_transfer_to_the_second_line(live: Live) -> None:
    await in_thread(live.pbx.set_operator, "1001", ring=1, talk=60)
    await in_thread(live.pbx.set_operator, "1002", ring=60, talk=3)
    await in_thread(live.pbx.set_operator, "2001", ring=1, talk=3)
    await in_thread(live.pbx.place_call, "3200", "+3250987654", "Sophie Maes", hold=40)
    client = live.daemon.clients["main"]
    model = live.daemon.pipelines["main"].model

    def anna_talking() -> Any:
        for call in model.live_calls:
            if call.caller_number_raw == "+3250987654" and call.current_devices:
                return next(s.channel for s in call.segments if s.ended_at is None)
        return None

    channel = await eventually(anna_talking, 20, "Anna talking")
    await client.send_action(
        "BlindTransfer", {"Channel": channel, "Context": "internal", "Exten": "2001"}
    )
    call = await live.ended_record("+3250987654")
    assert call["outcome"] == "transferred"
    assert call["answered_by"] == "anna"
    assert call["ended_with"] == "second"
    assert [(t["kind"], t["from"], t["to"]) for t in call["transfers"]] == [
        ("blind", "anna", "second")
    ]
    assert [s["operator"] for s in call["segments"]] == ["anna", "second"]


@pytest_twisted.ensureDeferred
async def test_pbx_restart_mid_call_loses_and_duplicates_nothing(
    asterisk_factory: Any, tmp_path: Path
) -> None:
    pbx: AsteriskInstance = await in_thread(asterisk_factory)
    url, store = prepared_store(tmp_path)
    store.accounts.add_operator(
        "anna", role="operator", password=PASSWORD, devices=["Local/1001@agents"]
    )
    daemon = await started_daemon(
        daemon_config(url, pbx.ami_host, pbx.ami_port, pbx.username, pbx.secret, auth="plain")
    )
    live = Live(pbx, daemon, store)
    try:
        await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 20, "link up")
        await in_thread(pbx.set_operator, "1001", ring=1, talk=120)
        await in_thread(pbx.set_operator, "1002", ring=120, talk=3)
        await in_thread(pbx.place_call, "3200", "0485667788", "Wim Peeters", hold=120)

        def talking() -> Any:
            calls = live.calls_from("0485667788")
            return calls[0] if calls and calls[0]["answered_at"] else None

        await poll_in_thread(talking, 30, "the call answered")
        await in_thread(pbx.restart)
        cut = await live.ended_record("0485667788")
        # The call died with the PBX: closed, known to be incomplete, one record only.
        assert cut["answered_by"] == "anna"
        assert cut["hung_up_by"] == "system"
        assert len(live.calls_from("0485667788")) == 1

        await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 30, "reconnected")
        assert daemon.pipelines["main"].resyncs >= 2
        await in_thread(pbx.set_operator, "1001", ring=1, talk=2)
        await in_thread(pbx.place_call, "3200", "0485667788", "Wim Peeters", hold=30)

        def second() -> Any:
            done = [c for c in live.calls_from("0485667788") if c["ended_at"]]
            return done if len(done) == 2 else None

        both = await poll_in_thread(second, 60, "the call after the restart")
        assert both[0]["linkedid"] != both[1]["linkedid"]
        assert both[0]["outcome"] == "answered" and both[0]["complete"] is True
    finally:
        await daemon.stop()
        store.close()
