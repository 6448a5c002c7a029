"""The routes and headers the console relies on, over real HTTP against a real daemon:
customer search and view, POST /api/agreements, the pages' security headers; and the
page's own rules (no markup sinks, no inline script) checked in its source."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest

from cti_bridge.vocabulary import vocabulary
from tests.browser.console_harness import ConsoleServer
from tests.support.paths import STATIC

JAN = ("+3250123456", "Jan Peeters")


def get_page(server: ConsoleServer, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_pages_carry_a_strict_content_security_policy(shared_server: ConsoleServer) -> None:
    server = shared_server
    for path in ("/", "/js/main.js", "/console.css"):
        status, headers, _ = get_page(server, path)
        assert status == 200, path
        policy = headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "require-trusted-types-for 'script'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
    _, headers, _ = get_page(server, "/js/main.js")
    assert headers["Content-Type"].startswith("text/javascript")
    status, _, body = get_page(server, "/js/")
    assert status == 404 and b"main.js" not in body  # no directory listings


def test_the_page_source_has_no_markup_sinks_or_inline_code() -> None:
    index = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", index) == []  # every script is a file
    assert not re.search(r"\son[a-z]+\s*=", index)  # no inline event handlers
    assert not re.search(r"\sstyle\s*=", index)
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(")
    for script in STATIC.glob("js/*.js"):
        code = re.sub(r"^\s*(//|\*|/\*).*$", "", script.read_text(), flags=re.MULTILINE)
        assert sinks.findall(code) == [], script.name
    assert not re.search(
        r"https?://", index + "".join(p.read_text() for p in STATIC.glob("js/*.js"))
    )  # nothing loads from the network


def test_customer_search_needs_a_token_and_finds_by_name_number_and_fragment(
    shared_server: ConsoleServer,
) -> None:
    server = shared_server
    assert server.api("GET", "/api/customers?q=peeters")[0] == 401
    token = server.login("bart")

    def names(q: str) -> list[str]:
        status, body = server.api("GET", f"/api/customers?q={quote(q)}", token=token)
        assert status == 200, body
        return [c["name"] for c in body["customers"]]

    assert names("PEETERS") == ["Jan Peeters"]
    assert names("Installaties") == ["Jan Peeters"]
    assert names("CUST-002") == ["Marie Dubois"]
    assert names("050 76 54 32") == ["Marie Dubois"]
    assert names("0032 50 76 54 32") == ["Marie Dubois"]
    assert names("765432") == ["Marie Dubois"]
    assert names("%%") == []  # LIKE wildcards are literal text
    assert names("__") == []
    assert names("' OR 1=1 --") == []
    status, body = server.api("GET", "/api/customers?q=x", token=token)
    assert status == 400 and "2 characters" in body["error"]


def test_customer_view(shared_server: ConsoleServer) -> None:
    server = shared_server
    token = server.login("bart")
    jan = server.ready["customers"]["covered"]
    status, body = server.api("GET", f"/api/customers/{jan}", token=token)
    assert status == 200
    assert body["customer"]["name"] == "Jan Peeters"
    assert body["in_contract"] is True
    assert [c["reference"] for c in body["contracts"]] == ["C-2026-0001"]
    assert body["upsell"]["days_left"] == 20
    assert [a["overdue"] for a in body["agreements"]] == [True]
    assert [s["title"] for s in body["scripts"]] == ["No internet"]
    for missing in ("999999", "abc", "0"):
        assert server.api("GET", f"/api/customers/{missing}", token=token)[0] == 404
    assert server.api("GET", f"/api/customers/{jan}")[0] == 401


def test_the_console_is_served_the_helpdesks_words(shared_server: ConsoleServer) -> None:
    server = shared_server
    assert server.api("GET", "/api/vocabulary")[0] == 401
    status, body = server.api("GET", "/api/vocabulary", token=server.login("bart"))
    assert status == 200
    assert body == json.loads(json.dumps(vocabulary()))
    solved = {"value": "solved", "label": "Solved", "planned": False}
    assert solved in body["dispositions"]
    assert {w["value"] for w in body["roles"]} == {"operator", "supervisor", "admin"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"kind": "party"}, "kind must be one of"),
        ({}, "kind is required"),
        ({"kind": "repair", "colour": "red"}, "unknown field colour"),
        ({"kind": "repair", "deadline": "tomorrow"}, "deadline must be an ISO 8601"),
        ({"kind": "repair", "window_start": "2031-01-01T10:00:00Z"}, "go together"),
        (
            {
                "kind": "callback",
                "callback_number": "+3250123456",
                "window_start": "2031-01-01T10:00:00Z",
                "window_end": "2031-01-01T09:00:00Z",
            },
            "must end after it starts",
        ),
        ({"kind": "callback"}, "needs a number"),
        ({"kind": "callback", "callback_number": "not a number"}, "is not a phone number"),
        ({"kind": "repair", "customer_id": 999999}, "no such customer"),
        ({"kind": "repair", "call_id": 999999}, "no such call"),
        ({"kind": "repair", "customer_id": "1"}, "positive whole number"),
    ],
)
def test_a_wrong_agreement_is_refused_with_the_reason(
    shared_server: ConsoleServer, body: dict[str, Any], error: str
) -> None:
    server = shared_server
    status, answer = server.api("POST", "/api/agreements", token=server.login("anna"), body=body)
    assert status == 400, answer
    assert error in answer["error"]


def test_agreements_on_a_call_belong_to_who_handled_it(server: ConsoleServer) -> None:
    assert server.api("POST", "/api/agreements", body={"kind": "repair"})[0] == 401
    anna, bart, sofie = (server.login(n) for n in ("anna", "bart", "sofie"))
    server.call("direct_answered", JAN, operator="PJSIP/1001", ring=1.0, talk=1.0)

    def ended() -> Any:
        status, body = server.api("GET", f"/api/calls?number={quote(JAN[0])}", token=anna)
        return status == 200 and [c for c in body["calls"] if c["ended_at"]]

    [call] = server.eventually(ended, 20, "the call to end")
    status, made = server.api(
        "POST",
        "/api/agreements",
        token=anna,
        body={"kind": "callback", "call_id": call["id"], "deadline": "2031-01-02T15:00:00Z"},
    )
    assert status == 201, made
    assert made["call_id"] == call["id"]
    assert made["customer_id"] == server.ready["customers"]["covered"]  # from the call
    assert made["callback_number"] == "+3250123456"  # the caller's number
    assert made["deadline"] == "2031-01-02T15:00:00.000Z"
    assert made["status"] == "open"
    # bart never rang on that call: he may not make its agreements; a supervisor may.
    status, answer = server.api(
        "POST", "/api/agreements", token=bart, body={"kind": "repair", "call_id": call["id"]}
    )
    assert status == 403, answer
    status, _ = server.api(
        "POST", "/api/agreements", token=sofie, body={"kind": "repair", "call_id": call["id"]}
    )
    assert status == 201


def test_agreements_are_listed_by_filter_and_belong_to_their_owner(
    shared_server: ConsoleServer,
) -> None:
    server = shared_server
    assert server.api("GET", "/api/agreements")[0] == 401
    bart, sofie = server.login("bart"), server.login("sofie")
    jan = server.ready["customers"]["covered"]

    def listed(query: str, token: str = sofie) -> list[dict[str, Any]]:
        status, body = server.api("GET", f"/api/agreements{query}", token=token)
        assert status == 200, body
        rows: list[dict[str, Any]] = body["agreements"]
        return rows

    [seeded] = listed(f"?customer_id={jan}&due=overdue")  # the seeded overdue callback
    assert seeded["kind"] == "callback" and seeded["owner"] is None
    assert seeded["status"] == "open" and seeded["deadline"].endswith("Z")
    assert seeded["id"] in [a["id"] for a in listed("?status=open")]
    assert listed(f"?customer_id={jan}&status=done") == []
    assert listed("?owner=sofie") == []
    assert listed("?due=overdue&limit=1") == [seeded]
    status, body = server.api("GET", f"/api/agreements/{seeded['id']}", token=sofie)
    assert status == 200 and body == seeded and body["attempts"] == []
    # An operator's list is their own; the ones nobody owns (a missed call's callback)
    # are the pool every operator may list and open; another's list is not theirs.
    assert seeded["id"] not in [a["id"] for a in listed("", token=bart)]
    assert seeded["id"] in [a["id"] for a in listed("?unowned=true", token=bart)]
    assert all(a["owner"] is None for a in listed("?unowned=true", token=bart))
    assert server.api("GET", "/api/agreements?owner=anna", token=bart)[0] == 403
    assert server.api("GET", f"/api/agreements/{seeded['id']}", token=bart) == (200, seeded)
    status, body = server.api("GET", "/api/agreements?owner=sofie&unowned=true", token=sofie)
    assert status == 400 and body["error"].startswith("owner and unowned"), body
    status, body = server.api("GET", "/api/agreements?unowned=yes", token=bart)
    assert status == 400 and body["error"] == "unowned must be true or false", body
    for query, field in [
        ("?due=someday", "due"),
        ("?status=forgotten", "status"),
        ("?customer_id=abc", "customer_id"),
        ("?owner=nobody", "owner"),
        ("?limit=0", "limit"),
    ]:
        status, body = server.api("GET", f"/api/agreements{query}", token=sofie)
        assert status == 400 and body["error"].startswith(field), (query, body)
    for missing in ("999999", "abc", "0"):
        status, body = server.api("GET", f"/api/agreements/{missing}", token=sofie)
        assert status == 404 and body["error"] == "no such agreement"
    assert server.api("GET", f"/api/agreements/{seeded['id']}")[0] == 401


def test_an_agreement_is_changed_and_closed_by_its_owner_or_a_supervisor(
    server: ConsoleServer,
) -> None:
    anna, bart, sofie = (server.login(n) for n in ("anna", "bart", "sofie"))
    status, made = server.api(
        "POST",
        "/api/agreements",
        token=anna,
        body={"kind": "callback", "callback_number": "050 12 34 56", "notes": "first"},
    )
    assert status == 201 and made["owner"] == "anna"
    path = f"/api/agreements/{made['id']}"
    assert server.api("PATCH", path, body={"notes": "x"})[0] == 401
    status, changed = server.api(
        "PATCH",
        path,
        token=anna,
        body={
            "deadline": "2031-01-02T15:00:00Z",
            "window_start": "2031-01-02T09:00:00Z",
            "window_end": "2031-01-02T12:00:00+01:00",
            "notes": "call after the meeting",
            "owner": "anna",  # keeping it is fine
        },
    )
    assert status == 200, changed
    assert changed["deadline"] == "2031-01-02T15:00:00.000Z"
    assert (changed["window_start"], changed["window_end"]) == (
        "2031-01-02T09:00:00.000Z",
        "2031-01-02T11:00:00.000Z",
    )
    assert changed["notes"] == "call after the meeting" and changed["owner"] == "anna"
    assert server.api("GET", path, token=anna) == (200, changed)
    assert [a["id"] for a in server.api("GET", "/api/agreements", token=anna)[1]["agreements"]] == [
        made["id"]
    ]
    # Only a supervisor hands it to someone else; bart may not touch anna's agreement.
    status, body = server.api("PATCH", path, token=anna, body={"owner": "bart"})
    assert status == 403, body
    assert server.api("PATCH", path, token=bart, body={"notes": "mine?"})[0] == 403
    for body, field in [
        ({"status": "open"}, "status"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"window_start": "2031-01-02T09:00:00Z"}, "window_start"),
        (
            {"window_start": "2031-01-02T10:00:00Z", "window_end": "2031-01-02T09:00:00Z"},
            "window_end",
        ),
        ({"owner": "nobody"}, "owner"),
        ({"kind": "repair"}, "unknown field kind"),
        ({"disposition": "shrugged"}, "disposition must be one of"),
        ({"status": "done"}, "disposition"),  # closing a callback asks for one
        ({"queue": 7}, "queue"),
        ({}, "nothing to change"),
    ]:
        status, answer = server.api("PATCH", path, token=sofie, body=body)
        assert status == 400 and answer["error"].startswith(field), (body, answer)
    status, handed = server.api("PATCH", path, token=sofie, body={"owner": None})
    assert status == 200 and handed["owner"] is None  # to the pool
    # From the pool an operator takes it for themselves, not for another.
    status, body = server.api("PATCH", path, token=anna, body={"owner": "bart"})
    assert status == 403, body
    status, handed = server.api("PATCH", path, token=bart, body={"owner": "bart"})
    assert status == 200 and handed["owner"] == "bart"
    assert handed["history"][-1]["operator"] == "bart"
    assert server.api("GET", path, token=anna)[0] == 403  # no longer hers, nor the pool's
    assert server.api("PATCH", path, token=anna, body={"owner": "anna"})[0] == 403
    status, closed = server.api(
        "PATCH", path, token=bart, body={"status": "done", "disposition": "solved"}
    )
    assert status == 200 and (closed["status"], closed["disposition"]) == ("done", "solved")
    assert closed["history"][-1]["kind"] == "closed" and closed["history"][-1]["operator"] == "bart"
    status, answer = server.api("PATCH", path, token=bart, body={"status": "cancelled"})
    assert status == 400 and "already done" in answer["error"]
    assert server.api("PATCH", "/api/agreements/999999", token=sofie, body={"notes": "x"}) == (
        404,
        {"error": "no such agreement"},
    )
    status, cleared = server.api(
        "PATCH", path, token=sofie, body={"window_start": None, "window_end": None, "owner": None}
    )
    assert status == 200 and cleared["window_start"] is None and cleared["owner"] is None
