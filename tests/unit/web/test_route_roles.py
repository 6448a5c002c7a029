"""Who gets in where (issue 13): every route the daemon registers, for every kind of caller,
from one table, through the daemon's whole web (every feature installed) on the memory
store and a memory clock (``tests/support/helpdesk.py``).

The table is checked against the routes the web actually has, both ways: a new route
without a row fails here until somebody says who may use it. For each row, seven
callers: no token, a forged token, an expired one, a logged-out one, and a fresh token
of an operator, a supervisor and an admin. Missing, forged, expired and logged-out
tokens get 401 wherever a token is needed (also the WebSocket, before any upgrade); an
operator gets 403 on the supervisors' endpoints; an allowed caller gets neither (nor a
500). Then the cases between two operators: Bart cannot read Anna's pops, change the call
Anna answered, or read or change Anna's agreement, nor pause her, nor see a live call
that rings Bart (nor, with ``[web] call_history = "own"``, Bart's ended calls).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from cti_bridge.bus.topics import operator_topic
from cti_bridge.calls.events import Outcome
from cti_bridge.testing.store import START, CallBuilder
from tests.support.helpdesk import AGI_TOKEN, BART, Helpdesk, ScreenClient

#: Who may use a route. ``open``: anybody, token or not (monitoring, logging in, the
#: pages: they ask for a token themselves); ``user``: any valid token; ``supervisor``:
#: supervisors and admins (operators 403); ``self``: the operator named in the path
#: (here Anna, the table's operator) and supervisors; ``service``: the AGI's service
#: token only (no person's token works there, whatever the role).
OPEN, USER, SUPERVISOR, SELF, SERVICE = "open", "user", "supervisor", "self", "service"
CALLERS = ("none", "forged", "expired", "logged_out", "operator", "supervisor", "admin")
PEOPLE = {"operator": "anna", "supervisor": "sofie", "admin": "alex"}


@dataclass(frozen=True)
class Case:
    who: str
    path: str
    body: Any = None


def table(desk: Helpdesk) -> dict[tuple[str, str], Case]:
    """(rule, method) → who may, and a request to ask with (``*``: a resource that takes
    any method, asked with GET)."""
    call, agreement, customer = desk.call_id, desk.agreement_id, desk.customer_id
    return {
        ("/healthz", "GET"): Case(OPEN, "/healthz"),
        ("/metrics", "GET"): Case(OPEN, "/metrics"),
        ("/api/login", "POST"): Case(
            OPEN, "/api/login", {"username": "bart", "password": "bart-secret"}
        ),
        ("/api/logout", "POST"): Case(USER, "/api/logout"),
        ("/api/me", "GET"): Case(USER, "/api/me"),
        ("/api/openapi.json", "GET"): Case(OPEN, "/api/openapi.json"),
        ("/api/calls", "GET"): Case(USER, "/api/calls?limit=5"),
        ("/api/calls/<string:call_id>", "GET"): Case(USER, f"/api/calls/{call}"),
        ("/api/calls/<string:call_id>", "PATCH"): Case(
            USER, f"/api/calls/{call}", {"notes": "router reset"}
        ),
        ("/api/customers", "GET"): Case(USER, "/api/customers?q=Peeters"),
        ("/api/customers/<string:customer_id>", "GET"): Case(USER, f"/api/customers/{customer}"),
        ("/api/contacts", "POST"): Case(
            USER,
            "/api/contacts",
            {"customer_id": customer, "channel": "mail", "subject": "manual", "notes": "sent"},
        ),
        ("/api/contacts", "GET"): Case(USER, f"/api/contacts?customer_id={customer}"),
        ("/api/agreements", "POST"): Case(
            USER, "/api/agreements", {"kind": "documentation", "customer_id": customer}
        ),
        ("/api/agreements", "GET"): Case(USER, "/api/agreements"),
        ("/api/agreements/<string:agreement_id>", "GET"): Case(
            USER, f"/api/agreements/{agreement}"
        ),
        ("/api/agreements/<string:agreement_id>", "PATCH"): Case(
            USER, f"/api/agreements/{agreement}", {"notes": "sent the manual"}
        ),
        ("/api/vocabulary", "GET"): Case(USER, "/api/vocabulary"),
        ("/api/agi/lookup", "*"): Case(SERVICE, "/api/agi/lookup?number=0470123456"),
        ("/api/queues", "GET"): Case(SUPERVISOR, "/api/queues"),
        ("/api/queues/pause-reasons", "GET"): Case(USER, "/api/queues/pause-reasons"),
        ("/api/agents", "GET"): Case(SUPERVISOR, "/api/agents"),
        ("/api/agents/<string:operator>", "GET"): Case(SELF, "/api/agents/anna"),
        ("/api/agents/<string:operator>/pause", "POST"): Case(
            SELF, "/api/agents/anna/pause", {"reason": "break"}
        ),
        ("/api/agents/<string:operator>/unpause", "POST"): Case(
            SELF, "/api/agents/anna/unpause", {}
        ),
        ("/api/kpis", "GET"): Case(SUPERVISOR, "/api/kpis"),
        ("/api/kpis/operators", "GET"): Case(SUPERVISOR, "/api/kpis/operators"),
        ("/wallboard", "GET"): Case(OPEN, "/wallboard"),
        ("/ws", "*"): Case(USER, "/ws"),
        ("/<path:__rest__>", "*"): Case(OPEN, "/js/main.js"),
        ("/", "*"): Case(OPEN, "/"),
    }


def registered(desk: Helpdesk) -> set[tuple[str, str]]:
    """The (rule, method) pairs of the web's routes (HEAD comes with GET)."""
    found: set[tuple[str, str]] = set()
    for rule in desk.node.http.app.url_map.iter_rules():
        methods = set(rule.methods or ()) - {"HEAD"}
        found |= {(rule.rule, m) for m in methods} if methods else {(rule.rule, "*")}
    return found


def test_the_table_names_every_route_the_web_has() -> None:
    desk = Helpdesk()
    rows = set(table(desk))
    have = registered(desk)
    assert have - rows == set(), "routes without a row: say who may use them"
    assert rows - have == set(), "rows for routes that are gone"


def expected(who: str, caller: str) -> str:
    """``401``, ``403`` or ``ok`` (see ``outcome``)."""
    if who == OPEN:
        return "ok"
    if who == SERVICE or caller in ("none", "forged", "expired", "logged_out"):
        return "401"
    if who == SUPERVISOR and caller == "operator":
        return "403"
    return "ok"


def token_for(desk: Helpdesk, caller: str) -> str | None:
    if caller == "none":
        return None
    if caller == "forged":
        return secrets.token_urlsafe(32)
    if caller == "expired":
        token = desk.token("anna", lifetime=60)
        desk.reactor.advance(61)
        return token
    if caller == "logged_out":
        token = desk.token("sofie")
        assert desk.ask("POST", "/api/logout", token=token).status == 200
        return token
    return desk.token(PEOPLE[caller])


def outcome(status: int) -> str:
    """``ok`` for an answer that went through: 2xx, 101 (a socket), or 503 (this rig has
    no PBX: ``/healthz`` is degraded, a pause cannot reach the queues)."""
    return "ok" if 200 <= status < 300 or status in (101, 503) else str(status)


@pytest.mark.parametrize("route", sorted(table(Helpdesk())), ids=" ".join)
def test_who_gets_in(route: tuple[str, str]) -> None:
    desk = Helpdesk()
    case = table(desk)[route]
    method = "GET" if route[1] == "*" else route[1]
    got: dict[str, str] = {}
    for caller in CALLERS:
        token = token_for(desk, caller)
        if route[0] == "/ws":
            status = desk.upgrade(token).status
        else:
            status = desk.ask(method, case.path, token=token, body=case.body).status
        got[caller] = outcome(status)
    assert got == {caller: expected(case.who, caller) for caller in CALLERS}


def test_the_agi_lookup_takes_the_service_token_only() -> None:
    desk = Helpdesk()
    path = "/api/agi/lookup?number=0470123456"
    assert desk.ask("GET", path, token=AGI_TOKEN).status == 200
    assert desk.ask("GET", path, token=desk.token("alex")).status == 401


# -- between two operators --------------------------------------------------------------


def test_an_operator_never_gets_another_operators_pops() -> None:
    desk = Helpdesk()
    anna = ScreenClient(desk, desk.token("anna"))
    bart = ScreenClient(desk, desk.token("bart"))
    sofie = ScreenClient(desk, desk.token("sofie"))
    assert anna.accepted and bart.accepted and sofie.accepted
    anna.say({"type": "watch", "username": "bart"})
    assert anna.read() == [{"type": "error", "error": "only supervisors may watch"}]
    sofie.say({"type": "watch", "username": "bart"})
    assert sofie.read() == [{"type": "watching", "username": "bart"}]
    desk.node.bus.publish(
        operator_topic(desk.ids["bart"]), {"type": "screen_pop", "call_id": desk.call_id}
    )
    desk.reactor.advance(0)
    assert [m["type"] for m in bart.read()] == ["screen_pop"]
    assert [m["type"] for m in sofie.read()] == ["screen_pop"]  # she watches Bart
    assert anna.read() == []


def test_an_operator_cannot_change_a_call_another_answered() -> None:
    desk = Helpdesk()  # Bart and Anna were rung; Anna answered
    path = f"/api/calls/{desk.call_id}"
    refused = desk.ask("PATCH", path, token=desk.token("bart"), body={"notes": "mine now"})
    assert refused.status == 403
    assert refused.json()["error"].startswith("only the operator who answered this call")
    made = desk.ask(
        "POST",
        "/api/agreements",
        token=desk.token("bart"),
        body={"kind": "repair", "call_id": desk.call_id},
    )
    assert made.status == 403
    call = desk.ask("GET", path, token=desk.token("bart")).json()  # history is shared
    assert (call["notes"], call["notes_history"]) == (None, [])
    assert desk.ask("PATCH", path, token=desk.token("anna"), body={"notes": "ok"}).status == 200


def test_an_operator_cannot_read_or_change_another_operators_agreement() -> None:
    desk = Helpdesk()
    bart = desk.token("bart")
    path = f"/api/agreements/{desk.agreement_id}"
    assert desk.ask("GET", path, token=bart).status == 403
    changes: list[dict[str, Any]] = [
        {"notes": "bart's"},
        {"status": "cancelled"},
        {"owner": "bart"},
    ]
    for change in changes:
        assert desk.ask("PATCH", path, token=bart, body=change).status == 403, change
    assert desk.ask("GET", "/api/agreements?owner=anna", token=bart).status == 403
    listed = desk.ask("GET", "/api/agreements", token=bart).json()["agreements"]
    assert desk.agreement_id not in [a["id"] for a in listed]
    kept = desk.ask("GET", path, token=desk.token("anna")).json()
    assert (kept["status"], kept["notes"], kept["owner"]) == ("open", None, "anna")


def test_an_operator_cannot_see_or_pause_another_operator() -> None:
    desk = Helpdesk()
    bart = desk.token("bart")
    assert desk.ask("GET", "/api/agents/anna", token=bart).status == 403
    pause = desk.ask("POST", "/api/agents/anna/pause", token=bart, body={"reason": "break"})
    assert pause.status == 403
    assert desk.ask("POST", "/api/agents/anna/unpause", token=bart, body={}).status == 403


def ringing_bart(desk: Helpdesk, linkedid: str = "live.bart") -> CallBuilder:
    built = CallBuilder(linkedid, at=START + 200, number="0470123456")
    built = built.join_queue("support", START + 201).ring(BART, START + 202, queue="support")
    desk.store.calls.apply(built.events)
    return built


def listed(desk: Helpdesk, who: str, query: str = "") -> list[str]:
    answer = desk.ask("GET", f"/api/calls{query}", token=desk.token(who))
    assert answer.status == 200
    return [c["linkedid"] for c in answer.json()["calls"]]


def test_an_operator_never_sees_a_live_call_ringing_another() -> None:
    desk = Helpdesk()  # the daemon's own wiring: [web] call_history is "shared"
    built = ringing_bart(desk)
    found = desk.store.queries.find_call("main", built.call.linkedid)
    assert found is not None
    path = f"/api/calls/{found['id']}"
    assert "live.bart" not in listed(desk, "anna")
    assert "live.bart" in listed(desk, "bart") and "live.bart" in listed(desk, "sofie")
    missing = desk.ask("GET", "/api/calls/999999", token=desk.token("anna"))
    hidden = desk.ask("GET", path, token=desk.token("anna"))
    assert (
        (hidden.status, hidden.json())
        == (missing.status, missing.json())
        == (
            404,
            {"error": "no such call"},
        )
    )
    assert desk.ask("PATCH", path, token=desk.token("anna"), body={"notes": "x"}).status == 404
    for who in ("bart", "sofie", "alex"):
        assert desk.ask("GET", path, token=desk.token(who)).status == 200, who
    desk.store.calls.apply(built.end(START + 230, Outcome.ABANDONED).events)
    assert "live.bart" in listed(desk, "anna")  # ended: the helpdesk's shared history
    assert desk.ask("GET", path, token=desk.token("anna")).status == 200


def test_with_own_history_an_operator_reads_only_their_calls() -> None:
    desk = Helpdesk(web={"host": "127.0.0.1", "port": 0, "call_history": "own"})
    built = ringing_bart(desk)
    desk.store.calls.apply(built.end(START + 230, Outcome.ABANDONED).events)
    assert "live.bart" not in listed(desk, "anna")  # ended, but never hers
    assert "live.bart" in listed(desk, "bart")
    assert "live.bart" in listed(desk, "sofie")
    assert listed(desk, "anna", "?outcome=abandoned") == []
    assert listed(desk, "bart", "?outcome=abandoned") == ["live.bart"]
    assert desk.ask("GET", f"/api/calls/{desk.call_id}", token=desk.token("anna")).status == 200
