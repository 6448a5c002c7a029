"""Who may change a call (issue 13), through the console's real routes on the web's Klein
app with the memory store and a Clock: ``PATCH /api/calls/{id}`` and ``POST
/api/agreements`` with a ``call_id`` are for the operator who answered it (or a part of
it, after a transfer) and supervisors; being rung for a call somebody else answered is
not enough (403), being rung for one nobody answered is. ``GET /api/calls/{id}`` shows
every change to the notes, category and disposition (``notes_history``)."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any, TypeVar, cast

import pytest
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyChannel

from cti_bridge.bus import MemoryBus
from cti_bridge.calls.events import Outcome, RingResult, TransferKind
from cti_bridge.console.http import add_routes
from cti_bridge.console.service import Console
from cti_bridge.store import Store
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.testing.store import START, CallBuilder, cheap_hasher, queue_call_answered
from cti_bridge.web.api import WebApp
from cti_bridge.web.auth import Principal
from cti_bridge.web.ws import Hub
from tests.support.web_requests import Logins, RecordingRequest, at_once

T = TypeVar("T")
ANNA, BART, CHRIS = "Local/1001@agents", "Local/1002@agents", "Local/1003@agents"


class Desk:
    """Anna, Bart and Chris (operators, one phone each) and Sofie (supervisor)."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store: MemoryStore = open_memory_store(
            clock=self.clock.seconds, accounts={"hasher": cheap_hasher()}
        )
        logins = Logins()
        for name, role, device in (
            ("anna", "operator", ANNA),
            ("bart", "operator", BART),
            ("chris", "operator", CHRIS),
            ("sofie", "supervisor", None),
        ):
            info = self.store.accounts.add_operator(
                name, role=role, password=f"{name}-secret", devices=[device] if device else []
            )
            logins.tokens[name] = Principal(info.id, name, role)
        web = WebApp(
            logins,
            Hub(self.clock, MemoryBus(self.clock), logins.resolve_token),
            health=lambda: {"status": "ok"},
            metrics=lambda: b"",
        )
        add_routes(web, Console(cast(Store, self.store), at_once, clock=self.clock.seconds))
        self.resource: Resource = web.resource()

    def ask(self, who: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        channel = DummyChannel()
        channel.site = Site(self.resource, reactor=self.clock)
        request = RecordingRequest(channel)
        request.content = BytesIO(b"" if body is None else json.dumps(body).encode())
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {who}".encode()])
        request.requestReceived(method.encode(), path.encode(), b"HTTP/1.1")
        assert request.finished, "the answer is not synchronous"
        return request.code, json.loads(request.body)

    def record(self, built: CallBuilder) -> int:
        self.store.calls.apply(built.events)
        found = self.store.queries.find_call("main", built.call.linkedid)
        assert found is not None
        call_id: int = found["id"]
        return call_id

    def patch(self, who: str, call_id: int, **changes: Any) -> int:
        code, _answer = self.ask(who, "PATCH", f"/api/calls/{call_id}", changes)
        return code

    def agree(self, who: str, call_id: int) -> int:
        code, _ = self.ask(who, "POST", "/api/agreements", {"kind": "repair", "call_id": call_id})
        return code


@pytest.fixture
def desk() -> Desk:
    return Desk()


def test_an_operator_only_rung_may_not_change_a_call_another_answered(desk: Desk) -> None:
    call_id = desk.record(queue_call_answered())  # Bart and Anna rang, Anna answered
    code, answer = desk.ask("bart", "PATCH", f"/api/calls/{call_id}", {"notes": "bart's"})
    assert code == 403
    assert answer["error"].startswith("only the operator who answered this call")
    assert desk.patch("bart", call_id, disposition="complaint") == 403
    code, answer = desk.ask(
        "bart", "POST", "/api/agreements", {"kind": "callback", "call_id": call_id}
    )
    assert code == 403 and answer["error"].startswith("call_id: only the operator"), answer
    assert desk.patch("chris", call_id, notes="never rang") == 403
    call = desk.store.queries.get_call(call_id)
    assert (call["notes"], call["disposition"], call["notes_history"]) == (None, None, [])
    assert desk.store.agreements.list_agreements(limit=10) == []
    # Anna answered it: hers; Sofie supervises: every call.
    assert desk.patch("anna", call_id, notes="Router reset", disposition="solved") == 200
    assert desk.agree("anna", call_id) == 201
    assert desk.patch("sofie", call_id, category="router") == 200
    assert desk.agree("sofie", call_id) == 201


def test_the_operator_a_call_was_transferred_to_may_change_it(desk: Desk) -> None:
    built = (
        CallBuilder("transferred.1", at=START)
        .ring(ANNA, START + 0.5)
        .answer(ANNA, START + 2)
        .transfer(TransferKind.BLIND, START + 30, ANNA, "1002")
        .leave(ANNA, START + 30)
        .ring(BART, START + 30.5)
        .ring(CHRIS, START + 30.5)
        .answer(BART, START + 33)
        .ring_end(CHRIS, START + 33, RingResult.CANCELLED)
        .end(START + 90, Outcome.TRANSFERRED)
    )
    call_id = desk.record(built)
    assert desk.patch("bart", call_id, notes="Escalated to second line") == 200
    assert desk.agree("bart", call_id) == 201
    assert desk.patch("anna", call_id, category="firmware") == 200  # she answered first
    assert desk.patch("chris", call_id, notes="rang, never talked") == 403


def test_while_nobody_answered_the_operators_rung_may_note_it(desk: Desk) -> None:
    ringing = CallBuilder("ringing.1", at=START).ring(ANNA, START + 0.5)
    call_id = desk.record(ringing)
    assert desk.patch("anna", call_id, notes="Jan again, about the router") == 200
    # A live call ringing Anna alone is not Bart's to see, so not his to find either.
    assert desk.patch("bart", call_id, notes="not my phone") == 404
    # Bart's phone rings too and he picks up: from then on the call is his, not Anna's.
    desk.record(ringing.ring(BART, START + 5).answer(BART, START + 7))
    assert desk.patch("anna", call_id, notes="still mine?") == 403
    assert desk.patch("bart", call_id, notes="Bart took it") == 200
    missed = desk.record(
        CallBuilder("missed.1", at=START).ring(CHRIS, START + 0.5).end(START + 20, Outcome.MISSED)
    )
    assert desk.patch("chris", missed, notes="hung up before I could answer") == 200
    assert desk.patch("anna", missed, notes="x") == 403


def test_every_change_to_the_notes_shows_on_the_call(desk: Desk) -> None:
    call_id = desk.record(queue_call_answered())
    assert desk.patch("anna", call_id, notes="Router reset", category="router") == 200
    desk.clock.advance(90)
    code, patched = desk.ask(
        "sofie",
        "PATCH",
        f"/api/calls/{call_id}",
        {"notes": "Router replaced", "category": "router"},
    )
    assert code == 200
    code, call = desk.ask("bart", "GET", f"/api/calls/{call_id}")  # every operator reads it
    assert code == 200 and call["notes"] == "Router replaced"
    assert (
        call["notes_history"]
        == patched["notes_history"]
        == [
            {
                "at": "2026-11-26T23:23:03.000Z",
                "operator": "anna",
                "field": "notes",
                "old": None,
                "new": "Router reset",
            },
            {
                "at": "2026-11-26T23:23:03.000Z",
                "operator": "anna",
                "field": "category",
                "old": None,
                "new": "router",
            },
            {
                "at": "2026-11-26T23:24:33.000Z",
                "operator": "sofie",
                "field": "notes",
                "old": "Router reset",
                "new": "Router replaced",
            },
        ]
    )
