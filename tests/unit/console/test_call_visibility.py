"""Which calls an operator sees (issue 13; docs/security.md, "Which calls an operator
sees"), through the console's real routes (memory store, a clock, no threads): a live
call ringing Bart is not Anna's to list, read or change (404, as for no call at all);
Bart and Sofie (a supervisor) see it. Once it ended it is the helpdesk's shared history
(``[web] call_history = "shared"``, the default) or stays Bart's (``"own"``). The
filters (``number=``, ``outcome=``, ``limit=``) work within what the operator sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest
from twisted.internet.task import Clock

from cti_bridge.app.config import CallHistory
from cti_bridge.bus import MemoryBus
from cti_bridge.calls.events import Outcome
from cti_bridge.console.http import add_routes
from cti_bridge.console.service import Console
from cti_bridge.store import Store
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.testing.store import START, CallBuilder, cheap_hasher
from cti_bridge.web.api import WebApp
from cti_bridge.web.auth import Principal
from cti_bridge.web.ws import Hub
from tests.support.web_requests import Logins, at_once
from tests.unit.console.test_contacts_http import Rig

ANNA, BART = "PJSIP/1001", "PJSIP/1002"
OLD, LIVE = "050123456", "092345678"  # Anna's ended call, the call ringing Bart


@dataclass
class Desk:
    rig: Rig
    store: MemoryStore
    live: CallBuilder
    live_id: int
    old_id: int
    logins: Logins
    shared: bool

    def calls(self, who: str, query: str = "") -> list[int]:
        code, body = self.rig.ask("GET", f"/api/calls{query}", token=f"t-{who}")
        assert code == 200, body
        return [c["id"] for c in body["calls"]]

    def get(self, who: str, call_id: int) -> tuple[int, Any]:
        return self.rig.ask("GET", f"/api/calls/{call_id}", token=f"t-{who}")

    def end_live(self) -> None:
        self.store.calls.apply(self.live.end(START + 330, Outcome.ABANDONED).events)


def make_desk(history: CallHistory, popped: dict[str, set[tuple[str, str]]] | None = None) -> Desk:
    clock = Clock()
    clock.advance(START + 3600)
    store = open_memory_store(clock=clock.seconds, accounts={"hasher": cheap_hasher()})
    logins = Logins()
    ids = {}
    names: dict[int, str] = {}
    for name, role, devices in (
        ("anna", "operator", (ANNA,)),
        ("bart", "operator", (BART,)),
        ("sofie", "supervisor", ()),
    ):
        info = store.accounts.add_operator(
            name, role=role, password=f"{name}-secret", devices=list(devices)
        )
        ids[name] = info.id
        names[info.id] = name
        logins.tokens[f"t-{name}"] = Principal(info.id, name, role, devices)
    web = WebApp(
        logins,
        Hub(clock, MemoryBus(clock), logins.resolve_token),
        health=lambda: {"status": "ok"},
        metrics=lambda: b"",
    )
    shown = popped or {}

    def ringing(operator_id: int) -> set[tuple[str, str]]:
        return shown.get(names.get(operator_id, ""), set())

    console = Console(
        cast(Store, store), at_once, clock=clock.seconds, call_history=history, ringing=ringing
    )
    add_routes(web, console)
    old = (
        CallBuilder("old.1", at=START, number=OLD)
        .join_queue("support", START + 1)
        .ring(ANNA, START + 2, queue="support")
        .answer(ANNA, START + 4)
        .end(START + 60, Outcome.ANSWERED)
    )
    live = (
        CallBuilder("live.1", at=START + 300, number=LIVE)
        .join_queue("support", START + 301)
        .ring(BART, START + 302, queue="support")
    )
    for call in (old, live):
        store.calls.apply(call.events)
    old_found = store.queries.find_call("main", "old.1")
    live_found = store.queries.find_call("main", "live.1")
    assert old_found is not None and live_found is not None
    store.queries.patch_call(old_found["id"], notes="router reset", by_operator=ids["anna"])
    store.queries.patch_call(
        live_found["id"], notes="Jan, about the router", by_operator=ids["bart"]
    )
    rig = Rig(clock, store, web.resource(), 0, ids["anna"])
    return Desk(rig, store, live, live_found["id"], old_found["id"], logins, history == "shared")


@pytest.fixture(params=["shared", "own"])
def desk(request: pytest.FixtureRequest) -> Desk:
    return make_desk(request.param)


def test_a_live_call_ringing_bart_is_invisible_to_anna(desk: Desk) -> None:
    assert desk.calls("anna") == [desk.old_id]
    assert desk.calls("bart") == [desk.live_id] + ([desk.old_id] if desk.shared else [])
    assert desk.calls("sofie") == [desk.live_id, desk.old_id]
    code, body = desk.get("anna", desk.live_id)
    assert (code, body) == desk.get("anna", 999_999) == (404, {"error": "no such call"})
    patched = desk.rig.ask("PATCH", f"/api/calls/{desk.live_id}", {"notes": "mine"}, token="t-anna")
    assert patched == (404, {"error": "no such call"})
    agreed = desk.rig.ask(
        "POST", "/api/agreements", {"kind": "repair", "call_id": desk.live_id}, token="t-anna"
    )
    assert agreed == (400, {"error": "call_id: no such call"})
    for who in ("bart", "sofie"):
        code, call = desk.get(who, desk.live_id)
        assert code == 200 and call["ended_at"] is None and call["rang"] == ["bart"]
        assert call["notes"] == "Jan, about the router"


def test_after_it_ends_anna_reads_it_in_shared_history_only(desk: Desk) -> None:
    shared = desk.shared
    desk.end_live()
    code, call = desk.get("anna", desk.live_id)
    if shared:
        assert code == 200 and call["notes"] == "Jan, about the router"
        assert call["notes_history"][0]["operator"] == "bart"
        assert desk.calls("anna") == [desk.live_id, desk.old_id]
    else:
        assert (code, call) == (404, {"error": "no such call"})
        assert desk.calls("anna") == [desk.old_id]
    assert desk.calls("bart") == [desk.live_id] + ([desk.old_id] if shared else [])
    assert desk.calls("sofie") == [desk.live_id, desk.old_id]
    code, mine = desk.get("anna", desk.old_id)
    assert code == 200 and mine["notes"] == "router reset"  # her own, either way


def test_the_filters_work_within_what_the_operator_sees(desk: Desk) -> None:
    shared = desk.shared
    assert desk.calls("anna", f"?number={LIVE}") == []
    assert desk.calls("bart", f"?number={LIVE}") == [desk.live_id]
    assert desk.calls("sofie", f"?number={LIVE}") == [desk.live_id]
    assert desk.calls("anna", f"?number={OLD}") == [desk.old_id]
    assert desk.calls("bart", f"?number={OLD}") == ([desk.old_id] if shared else [])
    assert desk.calls("anna", "?outcome=answered") == [desk.old_id]
    desk.end_live()
    assert desk.calls("anna", "?outcome=abandoned") == ([desk.live_id] if shared else [])
    assert desk.calls("anna", f"?number={LIVE}") == ([desk.live_id] if shared else [])
    assert desk.calls("bart", "?outcome=abandoned") == [desk.live_id]
    assert desk.calls("sofie", "?outcome=abandoned&limit=1") == [desk.live_id]


def test_a_page_is_never_short_for_calls_anna_may_not_see() -> None:
    """The policy is in the query: live calls of Bart's newer than Anna's calls do not
    eat her page (``limit=1`` still brings her newest visible call)."""
    desk = make_desk("shared")
    for n in range(5):
        call = CallBuilder(f"bart.{n}", at=START + 400 + n, number=LIVE).ring(BART, START + 401 + n)
        desk.store.calls.apply(call.events)
    assert desk.calls("anna", "?limit=1") == [desk.old_id]
    assert len(desk.calls("bart", "?limit=3")) == 3
    assert len(desk.calls("sofie")) == 7


def test_a_device_with_nobody_bound_counts_as_the_operators_own() -> None:
    """A ring on a device no operator was bound to names the device, not a username:
    an operator whose login carries that device sees the call while it rings."""
    desk = make_desk("own")
    call = CallBuilder("spare.1", at=START + 500, number=LIVE).ring("PJSIP/1009", START + 501)
    desk.store.calls.apply(call.events)
    spare = desk.store.queries.find_call("main", "spare.1")
    assert spare is not None and spare["rang"] == ["PJSIP/1009"]
    assert desk.calls("anna") == [desk.old_id]
    assert desk.get("anna", spare["id"])[0] == 404
    anna = desk.logins.tokens["t-anna"]
    desk.logins.tokens["t-anna"] = Principal(
        anna.operator_id, "anna", "operator", (ANNA, "PJSIP/1009")
    )
    assert desk.calls("anna") == [spare["id"], desk.old_id]
    assert desk.get("anna", spare["id"])[0] == 200
    assert desk.calls("bart") == [desk.live_id]


def test_the_customer_view_lists_the_calls_the_operator_may_read(desk: Desk) -> None:
    """The customer view's history follows the same rule: a live call is nobody's
    history; an ended one everybody's with "shared", its operators' with "own"."""
    shared = desk.shared
    jan = desk.store.customers.add_customer("Jan Peeters", numbers=[OLD, LIVE])

    def history(who: str) -> list[int]:
        code, body = desk.rig.ask("GET", f"/api/customers/{jan}", token=f"t-{who}")
        assert code == 200, body
        return [item["id"] for item in body["history"] if item["type"] == "call"]

    assert history("anna") == [desk.old_id]
    assert history("bart") == ([desk.old_id] if shared else [])
    assert history("sofie") == [desk.old_id]  # the live call is history for nobody yet
    desk.end_live()
    assert history("anna") == ([desk.live_id, desk.old_id] if shared else [desk.old_id])
    assert history("bart") == ([desk.live_id, desk.old_id] if shared else [desk.live_id])
    assert history("sofie") == [desk.live_id, desk.old_id]


def test_a_call_popped_on_her_screen_is_hers_before_its_record_names_the_ring() -> None:
    """The pop makes the call's row before the record writer writes the ring: the call
    popped on Anna's screen now is hers to read (her wrap-up form loads it), though the
    record does not name her yet; a colleague it does not pop for still gets 404."""
    desk = make_desk("shared", popped={"anna": {("main", "live.1")}})
    code, call = desk.get("anna", desk.live_id)
    assert code == 200 and call["rang"] == ["bart"]  # the record names only Bart so far
    assert desk.get("sofie", desk.live_id)[0] == 200
    other = make_desk("shared", popped={"anna": {("main", "other.call")}})
    assert other.get("anna", other.live_id) == (404, {"error": "no such call"})
