"""``POST /api/contacts`` and ``GET /api/contacts``, through the console's real routes on the
web's Klein app, with the memory store and a clock: any operator logs a contact, as
themselves; bad input is a 400 naming the field; the contact shows in the customer's
history beside the calls. Requests are fed to the resource in-process, nothing listens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any, TypeVar, cast

import pytest
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyChannel

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
from tests.support.web_requests import Logins, RecordingRequest, at_once

NOW = datetime.fromtimestamp(START, UTC)
JAN_NUMBER = "050123456"
T = TypeVar("T")


@dataclass
class Rig:
    clock: Clock
    store: MemoryStore
    resource: Resource
    jan: int
    anna: int

    def ask(
        self, method: str, path: str, body: Any = None, *, token: str | None = "t-anna"
    ) -> tuple[int, Any]:
        channel = DummyChannel()
        channel.site = Site(self.resource, reactor=self.clock)
        request = RecordingRequest(channel)
        raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body)
        request.content = BytesIO(raw.encode() if isinstance(raw, str) else raw)
        if token is not None:
            request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
        request.requestReceived(method.encode(), path.encode(), b"HTTP/1.1")
        assert request.finished, "the answer is not synchronous"
        return request.code, json.loads(request.body)


@pytest.fixture
def rig() -> Rig:
    clock = Clock()
    clock.advance(START)
    store = open_memory_store(clock=clock.seconds, accounts={"hasher": cheap_hasher()})
    anna = store.accounts.add_operator("anna", role="operator", password="anna-secret")
    sofie = store.accounts.add_operator("sofie", role="supervisor", password="sofie-secret")
    jan = store.customers.add_customer("Jan Peeters", numbers=[JAN_NUMBER])
    logins = Logins()
    logins.tokens["t-anna"] = Principal(anna.id, "anna", "operator")
    logins.tokens["t-sofie"] = Principal(sofie.id, "sofie", "supervisor")
    web = WebApp(
        logins,
        Hub(clock, MemoryBus(clock), logins.resolve_token),
        health=lambda: {"status": "ok"},
        metrics=lambda: b"",
    )
    console = Console(cast(Store, store), at_once, clock=clock.seconds)
    add_routes(web, console)
    return Rig(clock, store, web.resource(), jan, anna.id)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_an_operator_logs_a_contact_as_themselves(rig: Rig) -> None:
    code, contact = rig.ask(
        "POST",
        "/api/contacts",
        {
            "customer_id": rig.jan,
            "channel": "mail",
            "subject": "Manual RTR-200",
            "notes": "Sent the PDF.",
            "category": "documentation",
            "disposition": "solved",
        },
    )
    assert code == 201
    assert contact == {
        "id": contact["id"],
        "type": "contact",
        "customer_id": rig.jan,
        "channel": "mail",
        "at": iso(NOW),
        "subject": "Manual RTR-200",
        "notes": "Sent the PDF.",
        "category": "documentation",
        "disposition": "solved",
        "operator": "anna",
        "operator_id": rig.anna,
        "created_at": iso(NOW),
    }
    assert rig.store.contacts.list_contacts(rig.jan) == [contact]
    # Only the two that are required; the operator is never the body's to say.
    code, minimal = rig.ask("POST", "/api/contacts", {"customer_id": rig.jan, "channel": "visit"})
    assert code == 201 and minimal["subject"] is None and minimal["operator"] == "anna"
    code, error = rig.ask(
        "POST", "/api/contacts", {"customer_id": rig.jan, "channel": "chat", "operator": "sofie"}
    )
    assert (code, error) == (400, {"error": "unknown field operator"})


def test_a_contact_may_be_back_dated_and_a_time_without_zone_is_utc(rig: Rig) -> None:
    body = {"customer_id": rig.jan, "channel": "visit", "at": "2026-11-20T14:00:00"}
    code, naive = rig.ask("POST", "/api/contacts", body)
    assert code == 201 and naive["at"] == "2026-11-20T14:00:00.000Z"
    body["at"] = "2026-11-20T14:00:00+01:00"
    code, offset = rig.ask("POST", "/api/contacts", body)
    assert code == 201 and offset["at"] == "2026-11-20T13:00:00.000Z"
    assert offset["created_at"] == iso(NOW)


def test_a_supervisor_logs_them_too_and_without_a_token_nobody_does(rig: Rig) -> None:
    body = {"customer_id": rig.jan, "channel": "letter"}
    code, contact = rig.ask("POST", "/api/contacts", body, token="t-sofie")
    assert code == 201 and contact["operator"] == "sofie"
    assert rig.ask("POST", "/api/contacts", body, token=None)[0] == 401
    assert rig.ask("POST", "/api/contacts", body, token="t-expired")[0] == 401
    assert rig.ask("GET", f"/api/contacts?customer_id={rig.jan}", token=None)[0] == 401
    assert len(rig.store.contacts.list_contacts(rig.jan)) == 1


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"channel": "mail"}, "customer_id is required"),
        ({"customer_id": "1", "channel": "mail"}, "customer_id must be"),
        ({"customer_id": True, "channel": "mail"}, "customer_id must be"),
        ({"customer_id": 0, "channel": "mail"}, "customer_id must be"),
        ({"customer_id": 10**30, "channel": "mail"}, "customer_id: no such customer"),
        ({"customer_id": 4242, "channel": "mail"}, "customer_id: no such customer"),
        ({}, "channel is required"),
        ({"channel": None}, "channel is required"),
        ({"channel": 3}, "channel is required"),
        ({"channel": "phone"}, "channel must be one of mail, chat, visit, letter, other"),
        ({"disposition": "maybe"}, "disposition must be one of"),
        ({"disposition": 1}, "disposition must be a string or null"),
        ({"subject": "s" * 257}, "subject is longer than 256 characters"),
        ({"subject": ["a"]}, "subject must be a string or null"),
        ({"category": "c" * 101}, "category is longer than 100 characters"),
        ({"notes": "n" * 20_001}, "notes is longer than 20000 characters"),
        ({"notes": {"html": "<b>"}}, "notes must be a string or null"),
        ({"at": "yesterday"}, "at must be an ISO 8601 date and time"),
        ({"at": 1795735383}, "at must be an ISO 8601 date and time"),
        ({"at": "2027-01-01T00:00:00Z"}, "at is in the future"),
        ({"type": "call"}, "unknown field type"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(rig: Rig, body: dict[str, Any], error: str) -> None:
    full = {"customer_id": rig.jan, "channel": "mail", **body}
    for name in ("customer_id", "channel"):
        if name not in body and error.startswith(name):
            del full[name]  # the case is its absence
    code, answer = rig.ask("POST", "/api/contacts", full)
    assert code == 400
    assert answer["error"].startswith(error), answer
    assert rig.store.contacts.list_contacts(rig.jan) == []


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "the body must be a JSON object"),
        (b"[1]", "the body must be a JSON object"),
        (b"{", "the body is not valid JSON"),
    ],
)
def test_a_body_that_is_not_an_object_is_a_400(rig: Rig, raw: bytes, error: str) -> None:
    assert rig.ask("POST", "/api/contacts", raw) == (400, {"error": error})


def test_the_customers_contacts_newest_first(rig: Rig) -> None:
    other = rig.store.customers.add_customer("Piet")
    days = [3, 1, 2]
    for day in days:
        at = iso(NOW - timedelta(days=day))
        body = {"customer_id": rig.jan, "channel": "chat", "at": at, "subject": f"day {day}"}
        assert rig.ask("POST", "/api/contacts", body)[0] == 201
    rig.ask("POST", "/api/contacts", {"customer_id": other, "channel": "mail"})
    code, answer = rig.ask("GET", f"/api/contacts?customer_id={rig.jan}")
    assert code == 200
    assert [c["subject"] for c in answer["contacts"]] == ["day 1", "day 2", "day 3"]
    code, answer = rig.ask("GET", f"/api/contacts?customer_id={rig.jan}&limit=1")
    assert [c["subject"] for c in answer["contacts"]] == ["day 1"]
    assert rig.ask("GET", "/api/contacts?customer_id=999999") == (200, {"contacts": []})
    for query, error in [
        ("", "customer_id is required"),
        ("?customer_id=", "customer_id is required"),
        ("?customer_id=jan", "customer_id must be a positive whole number"),
        ("?customer_id=0", "customer_id must be a positive whole number"),
        ("?customer_id=99999999999999", "customer_id must be a positive whole number"),
        (f"?customer_id={rig.jan}&limit=0", "limit must be between 1 and 500"),
    ]:
        assert rig.ask("GET", "/api/contacts" + query) == (400, {"error": error}), query


def test_the_customer_view_shows_contacts_beside_calls_as_text(rig: Rig) -> None:
    at = START - 7200
    call = CallBuilder("old.1", at=at, number=JAN_NUMBER).end(at + 60, Outcome.ANSWERED)
    rig.store.calls.apply(call.events)
    hostile = '<img src=x onerror="alert(1)">'
    code, contact = rig.ask(
        "POST",
        "/api/contacts",
        {"customer_id": rig.jan, "channel": "chat", "subject": hostile, "notes": hostile},
    )
    assert code == 201
    code, card = rig.ask("GET", f"/api/customers/{rig.jan}")
    assert code == 200
    assert [item["type"] for item in card["history"]] == ["contact", "call"]
    shown = card["history"][0]
    assert shown["id"] == contact["id"]
    assert (shown["subject"], shown["notes"], shown["operator"]) == (hostile, hostile, "anna")
