"""Every error under ``/api`` is JSON (issue 13): an unknown path 404, a known path with
the wrong method 405 (with ``Allow``), a body over ``MAX_BODY`` 413 (refused as it
arrives, never stored whole), malformed or too deeply nested JSON 400, ids that are not
ASCII digits or beyond 64 bits 404, times out of range 400, and whatever a handler did
not expect a logged 500 ``internal error``: never an HTML page, never a traceback.

Through the daemon's whole web (``tests/support/helpdesk.py``: every feature, its
``AccessLogSite`` and so its ``BoundedRequest``) over a real HTTP channel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import BytesIO
from typing import cast

import pytest
from structlog.testing import capture_logs
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.test.requesthelper import DummyChannel

from cti_bridge.bus.memory import MemoryBus
from cti_bridge.web.access import AccessLogSite
from cti_bridge.web.api import WebApp
from cti_bridge.web.http import MAX_BODY, BoundedRequest
from cti_bridge.web.openapi import openapi_document
from cti_bridge.web.ws import Hub
from tests.support.helpdesk import Answer, Helpdesk, parse_answer
from tests.support.web_requests import Logins

BIG = MAX_BODY + 1


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    status: int
    who: str | None = "anna"  # whose token; None: none
    body: bytes | None = None
    allow: frozenset[str] | None = None
    chunked: bool = False


CASES = [
    Case("unknown path, no token", "GET", "/api/nope", 404, who=None),
    Case("unknown path", "GET", "/api/nope", 404),
    Case("the bare /api", "GET", "/api", 404),
    Case("a deeper unknown path", "GET", "/api/calls/1/nope", 404),
    Case("NUL in an API path", "GET", "/api/%00", 404),
    Case("HEAD of an unknown path", "HEAD", "/api/nope", 404),
    Case("DELETE a list", "DELETE", "/api/calls", 405, allow=frozenset({"GET", "HEAD"})),
    Case("POST on a call", "POST", "/api/calls/1", 405, allow=frozenset({"GET", "HEAD", "PATCH"})),
    Case("GET the login", "GET", "/api/login", 405, who=None, allow=frozenset({"POST"})),
    Case("PUT the login", "PUT", "/api/login", 405, who=None, allow=frozenset({"POST"})),
    Case("OPTIONS", "OPTIONS", "/api/me", 405, allow=frozenset({"GET", "HEAD"})),
    Case("a body over the limit", "POST", "/api/login", 413, who=None, body=b"{" * BIG),
    Case(
        "a chunked body over the limit",
        "POST",
        "/api/login",
        413,
        who=None,
        body=b" " * (4 * BIG),
        chunked=True,
    ),
    Case("a big body on an authorised route", "PATCH", "/api/calls/1", 413, body=b" " * BIG),
    Case("malformed JSON", "POST", "/api/login", 400, who=None, body=b"{bad}"),
    Case("not UTF-8", "POST", "/api/login", 400, who=None, body=b'{"username": "\xff"}'),
    Case("deeply nested JSON", "POST", "/api/login", 400, who=None, body=b"[" * 60000),
    Case("deeply nested objects", "POST", "/api/login", 400, who=None, body=b'{"a":' * 12000),
    Case("JSON that is no object", "PATCH", "/api/calls/1", 400, body=b"[1, 2]"),
    Case("no body where one is needed", "POST", "/api/agreements", 400, body=b""),
    Case("an id beyond 64 bits", "GET", "/api/calls/9223372036854775808", 404),
    Case("a huge id", "GET", "/api/calls/" + "9" * 400, 404),
    Case("an id in Arabic-Indic digits", "GET", "/api/calls/%D9%A1", 404),
    Case("an agreement id in other digits", "GET", "/api/agreements/%D9%A1", 404),
    Case("a customer id in other digits", "GET", "/api/customers/%DB%B1", 404),
    Case("a negative id", "GET", "/api/calls/-1", 404),
    Case("since past year 9999 in UTC", "GET", "/api/calls?since=9999-12-31T23:59:59-23:59", 400),
    Case("since before year 1 in UTC", "GET", "/api/calls?since=0001-01-01T00:00%2B23:59", 400),
    Case("since junk", "GET", "/api/calls?since=yesterday", 400),
    Case("kpis since out of range", "GET", "/api/kpis?since=9999-12-31T23:59-23:59", 400, "sofie"),
    Case(
        "a deadline out of range",
        "POST",
        "/api/agreements",
        400,
        body=json.dumps(
            {"kind": "documentation", "customer_id": 1, "deadline": "9999-12-31T23:59-23:59"}
        ).encode(),
    ),
    Case(
        "an id in a body beyond 64 bits",
        "POST",
        "/api/agreements",
        400,
        body=json.dumps({"kind": "documentation", "customer_id": 2**64}).encode(),
    ),
]


def request_bytes(desk: Helpdesk, case: Case) -> bytes:
    lines = [f"{case.method} {case.path} HTTP/1.1", "Host: cti.example:8080", "Connection: close"]
    if case.who is not None:
        lines.append(f"Authorization: Bearer {desk.token(case.who)}")
    body = case.body
    if body is not None:
        lines.append("Content-Type: application/json")
        if case.chunked:
            lines.append("Transfer-Encoding: chunked")
            step = 8192
            parts = [body[i : i + step] for i in range(0, len(body), step)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
    else:
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def assert_json_error(answer: Answer, status: int, *, head: bool = False) -> None:
    assert answer.status == status, answer.body[:200]
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.headers["x-content-type-options"] == "nosniff"
    if head:
        return
    assert b"<html" not in answer.body.lower() and b"Traceback" not in answer.body
    error = json.loads(answer.body)
    assert set(error) == {"error"} and isinstance(error["error"], str) and error["error"]


@pytest.fixture(scope="module")
def desk() -> Helpdesk:
    return Helpdesk()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_api_error_is_json(desk: Helpdesk, case: Case) -> None:
    answer = parse_answer(desk.send(request_bytes(desk, case)).value())
    assert_json_error(answer, case.status, head=case.method == "HEAD")
    if case.allow is not None:
        assert {m.strip() for m in answer.headers["allow"].split(",")} == case.allow


def test_a_page_path_with_nul_is_not_found_not_a_500(desk: Helpdesk) -> None:
    answer = desk.ask("GET", "/%00")
    assert answer.status == 404
    assert answer.headers["content-type"].startswith("text/html")


def test_429_carries_its_reason_phrase(desk: Helpdesk) -> None:
    for _ in range(5):
        assert (
            desk.ask("POST", "/api/login", body={"username": "bart", "password": "x"}).status == 401
        )
    raw = desk.send(
        request_bytes(
            desk,
            Case(
                "",
                "POST",
                "/api/login",
                429,
                None,
                json.dumps({"username": "bart", "password": "x"}).encode(),
            ),
        )
    ).value()
    assert raw.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert_json_error(parse_answer(raw), 429)


def test_a_body_over_the_limit_is_never_kept() -> None:
    """The request keeps no more than ``MAX_BODY`` bytes, however many arrive."""
    request = BoundedRequest(DummyChannel())
    request.gotLength(None)
    for _ in range(100):
        request.handleContentChunk(b"x" * 65536)
    assert cast(BytesIO, request.content).getvalue() == b""
    request = BoundedRequest(DummyChannel())
    request.gotLength(10**12)
    request.handleContentChunk(b"x" * 65536)
    assert cast(BytesIO, request.content).getvalue() == b""
    request = BoundedRequest(DummyChannel())
    request.gotLength(5)
    request.handleContentChunk(b"12345")
    assert cast(BytesIO, request.content).getvalue() == b"12345"


def test_an_unexpected_error_is_a_json_500_and_logged() -> None:
    reactor = MemoryReactorClock()
    logins = Logins()
    web = WebApp(
        logins,
        Hub(reactor, MemoryBus(reactor), logins.resolve_token),
        health=lambda: {"status": "ok"},
        metrics=lambda: b"",
    )

    @web.route("/api/broken", methods=["GET"])
    def broken(request: object) -> bytes:
        raise ZeroDivisionError("secret detail")

    site = AccessLogSite(web.resource(), reactor=reactor)
    peer = IPv4Address("TCP", "127.0.0.1", 40000)
    protocol = site.buildProtocol(peer)
    assert protocol is not None
    transport = StringTransport(peerAddress=peer)
    protocol.makeConnection(transport)
    with capture_logs() as log_output:
        protocol.dataReceived(b"GET /api/broken HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = parse_answer(transport.value())
    assert_json_error(answer, 500)
    assert answer.json() == {"error": "internal error"}
    assert b"secret detail" not in answer.body and b"ZeroDivision" not in answer.body
    logged = [e for e in log_output if e.get("event") == "unhandled error answering a request"]
    assert logged and logged[0]["path"] == "/api/broken"


def test_the_document_lists_400_and_413_wherever_a_body_is_read() -> None:
    for path, operations in openapi_document("test")["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert {"400", "413"} <= set(operation["responses"]), (method, path)
