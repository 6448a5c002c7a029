"""Screen-pops end to end on a real Asterisk 22: the real daemon follows the PBX over AMI,
operators watch real WebSockets (``/ws?token=``, Twisted's WebSocket client).

A queue call rings two operators: both get the pop, the one who answers keeps it (and
gets the updates), the other sees it withdrawn; a third operator's screen stays silent;
an operator who connects while the phone rings gets the pop at connect. Runs on the real
reactor through pytest-twisted, like the other integration tests; the Asterisk harness is
blocking and runs in threads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest_twisted

from cti_bridge.app.daemon import Daemon
from cti_bridge.pop import PopService
from cti_bridge.store import Store
from cti_bridge.testing.asterisk import AsteriskInstance
from tests.integration.integration_support import (
    PASSWORD,
    daemon_config,
    eventually,
    in_thread,
    prepared_store,
    started_daemon,
)
from tests.integration.pop_support import Screen, open_screen


class Desk:
    def __init__(self, pbx: AsteriskInstance, daemon: Daemon, store: Store, ids: dict[str, int]):
        self.pbx, self.daemon, self.store, self.ids = pbx, daemon, store, ids
        self.screens: list[Screen] = []

    async def screen(self, username: str) -> Screen:
        screen = await open_screen(self.daemon, username)
        self.screens.append(screen)
        return screen


@pytest_twisted.async_yield_fixture
async def desk(asterisk: AsteriskInstance, tmp_path: Path) -> AsyncIterator[Desk]:
    url, store = prepared_store(tmp_path)
    ids = {}
    for username, ext in (("anna", "1001"), ("bart", "1002"), ("chris", "1003")):
        info = store.accounts.add_operator(
            username, role="operator", password=PASSWORD, devices=[f"Local/{ext}@agents"]
        )
        ids[username] = info["id"]
    jan = store.customers.add_customer(
        "Jan Peeters",
        numbers=["050123456"],
        company="Peeters Installaties",
        language="nl",
        tier="premium",
        external_ref="CRM-1",
    )
    today = datetime.now(UTC).date()
    store.customers.add_contract(
        jan,
        valid_from=today - timedelta(days=30),
        valid_until=today + timedelta(days=10),
        covered=["phone", "repair"],
        reference="C-1",
    )
    store.agreements.add_agreement(
        "callback", customer_id=jan, deadline=datetime.now(UTC) + timedelta(days=1)
    )
    config = daemon_config(
        url, asterisk.ami_host, asterisk.ami_port, asterisk.username, asterisk.secret, auth="plain"
    )
    daemon = await started_daemon(config)
    await eventually(lambda: daemon.health()["ami"]["status"] == "ok", 20, "AMI link up")
    live = Desk(asterisk, daemon, store, ids)
    yield live
    for screen in live.screens:
        screen.close()
    await daemon.stop()
    store.close()
    await in_thread(asterisk.wait_idle, 30, 5)


@pytest_twisted.ensureDeferred
async def test_queue_call_pops_both_the_answerer_keeps_it_the_other_sees_it_withdrawn(
    desk: Desk,
) -> None:
    anna = await desk.screen("anna")
    bart = await desk.screen("bart")
    chris = await desk.screen("chris")
    await in_thread(desk.pbx.set_operator, "1001", ring=2, talk=3)
    await in_thread(desk.pbx.set_operator, "1002", ring=30, talk=3)
    await in_thread(desk.pbx.place_call, "3200", "+3250123456", "Jan Peeters", hold=30)

    await eventually(
        lambda: any(m["state"] == "ended" for m in anna.of("call_update")), 40, "the call's end"
    )
    await eventually(lambda: bart.of("pop_withdrawn"), 10, "Bart's withdrawal")

    pop = anna.of("screen_pop")[0]
    assert pop["caller"] == {
        "number": "+3250123456",
        "number_raw": "+3250123456",
        "name": "Jan Peeters",
        "withheld": False,
    }
    assert pop["customer"]["name"] == "Jan Peeters"
    assert pop["customer"]["company"] == "Peeters Installaties"
    assert pop["in_contract"] is True
    assert pop["upsell"]["contract"] == "C-1"
    assert [a["kind"] for a in pop["agreements"]] == ["callback"]
    assert pop["queue"] == "support" and pop["device"] == "Local/1001@agents"
    assert isinstance(pop["call_id"], int)

    assert [(m["type"], m.get("state")) for m in anna.about("+3250123456")] == [
        ("screen_pop", "ringing"),
        ("call_update", "answered"),
        ("call_update", "ended"),
    ]
    assert anna.of("call_update")[0]["answered_by"] == "anna"
    assert anna.of("call_update")[-1]["outcome"] == "answered"

    bart_messages = bart.about("+3250123456")
    assert [m["type"] for m in bart_messages] == ["screen_pop", "pop_withdrawn"]
    assert bart_messages[0]["call_id"] == pop["call_id"]
    assert bart_messages[1]["reason"] == "answered_elsewhere"
    assert bart_messages[1]["answered_by"] == "anna"

    # Chris was not rung: no pop; only his own state (My state) besides the hello.
    own = {"agent_update", "phone_status"}
    assert [m["type"] for m in chris.messages if m["type"] not in own] == ["hello"]
    assert {m["agent"]["operator"] for m in chris.of("agent_update")} <= {"chris"}
    assert {m["operator"] for m in chris.of("phone_status")} <= {"chris"}
    # The pop's call id is the call's record: the console PATCHes notes onto it.
    record = await in_thread(desk.store.queries.get_call, pop["call_id"])
    assert record["caller_number"] == "+3250123456"
    figures = desk.daemon.node.part("pop", PopService).status()
    assert figures["pops"] >= 2 and figures["build_failures"] == 0
    print(
        "pop figures:",
        json.dumps(figures["ring_to_pop_ms"]),
        json.dumps(figures["context_build_ms"]),
    )


@pytest_twisted.ensureDeferred
async def test_an_operator_who_connects_while_ringing_gets_the_pop(desk: Desk) -> None:
    anna = await desk.screen("anna")
    hostile = "<img src=x onerror=alert(1)>"
    await in_thread(desk.pbx.set_operator, "1001", ring=60, talk=3)
    await in_thread(desk.pbx.set_operator, "1002", ring=60, talk=3)
    await in_thread(desk.pbx.place_call, "3200", "092345678", hostile, hold=6)
    await eventually(lambda: anna.of("screen_pop"), 20, "Anna's pop (the context is there)")
    await eventually(
        lambda: desk.daemon.node.part("pop", PopService).core.pops_of(desk.ids["bart"]),
        20,
        "Bart's phone ringing",
    )
    bart = await desk.screen("bart")
    await eventually(lambda: bart.of("screen_pop"), 10, "Bart's pop at connect")
    pop = bart.of("screen_pop")[0]
    assert pop["replay"] is True and pop["state"] == "ringing"
    assert pop["caller"]["name"] == hostile  # text, exactly as the caller sent it
    assert pop["caller"]["number"] == "+3292345678"
    assert pop["customer"] is None  # unknown number: pops anyway
    # The caller gives up after 6 s (the queue rings 8 s): both pops are withdrawn.
    for screen in (anna, bart):
        await eventually(partial(screen.of, "pop_withdrawn"), 30, "withdrawal")
        assert screen.of("pop_withdrawn")[0]["reason"] == "caller_left"
    assert anna.of("screen_pop")[0].get("replay") is None
