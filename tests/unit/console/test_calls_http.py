"""``GET /api/calls?outcome=``: through the console's real routes (memory store, a clock,
no threads): only calls of that outcome, newest first; a word that is no call outcome is
a 400 naming the ones there are (it is never passed on to the store)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from twisted.internet.task import Clock

from cti_bridge.bus import MemoryBus
from cti_bridge.calls.events import Outcome
from cti_bridge.console.http import add_routes
from cti_bridge.console.service import Console
from cti_bridge.store import Store
from cti_bridge.store.memory import open_memory_store
from cti_bridge.testing.store import START, CallBuilder, cheap_hasher
from cti_bridge.web.api import WebApp
from cti_bridge.web.auth import Principal
from cti_bridge.web.ws import Hub
from tests.support.web_requests import Logins, at_once
from tests.unit.console.test_contacts_http import Rig


@pytest.fixture
def rig() -> Rig:
    clock = Clock()
    clock.advance(START + 3600)
    store = open_memory_store(clock=clock.seconds, accounts={"hasher": cheap_hasher()})
    anna = store.accounts.add_operator(
        "anna", role="operator", password="anna-secret", devices=["PJSIP/1001"]
    )
    logins = Logins()
    logins.tokens["t-anna"] = Principal(anna.id, "anna", "operator")
    web = WebApp(
        logins,
        Hub(clock, MemoryBus(clock), logins.resolve_token),
        health=lambda: {"status": "ok"},
        metrics=lambda: b"",
    )
    add_routes(web, Console(cast(Store, store), at_once, clock=clock.seconds))
    answered = (
        CallBuilder("1.1", at=START, number="050123456")
        .join_queue("support", START + 1)
        .ring("PJSIP/1001", START + 2, queue="support")
        .answer("PJSIP/1001", START + 4)
        .end(START + 60, Outcome.ANSWERED)
    )
    abandoned = (
        CallBuilder("2.2", at=START + 100, number="092345678")
        .join_queue("support", START + 101)
        .end(START + 130, Outcome.ABANDONED, wait_ended_at=START + 130)
    )
    for call in (answered, abandoned):
        store.calls.apply(call.events)
    return Rig(clock, store, web.resource(), 0, anna.id)


def numbers(body: dict[str, Any]) -> list[str]:
    return [c["caller_number"] for c in body["calls"]]


def test_calls_of_one_outcome(rig: Rig) -> None:
    code, body = rig.ask("GET", "/api/calls?outcome=abandoned")
    assert code == 200 and numbers(body) == ["+3292345678"]
    (call,) = body["calls"]
    assert (call["queue"], call["outcome"], call["wait_seconds"]) == ("support", "abandoned", 29.0)
    assert numbers(rig.ask("GET", "/api/calls?outcome=answered")[1]) == ["+3250123456"]
    assert numbers(rig.ask("GET", "/api/calls")[1]) == ["+3292345678", "+3250123456"]
    assert numbers(rig.ask("GET", "/api/calls?outcome=")[1]) == ["+3292345678", "+3250123456"]


@pytest.mark.parametrize("word", ["gone", "ABANDONED", "abandoned ", "answered,abandoned"])
def test_an_unknown_outcome_is_a_400_naming_the_outcomes(rig: Rig, word: str) -> None:
    code, body = rig.ask("GET", f"/api/calls?outcome={word}")
    assert code == 400
    assert body["error"] == (
        "outcome must be one of answered, abandoned, missed, transferred, failed"
    )
