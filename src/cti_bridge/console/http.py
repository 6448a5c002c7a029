"""The console's endpoints: call history, customers, agreements, contacts (docs/console.md).

Handlers stay thin: they check the request, ask ``Console`` (database work in the pool)
and shape the JSON. Every one needs an operator's bearer token (``web.principal``).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.web.server import Request

from cti_bridge.vocabulary import CALL_OUTCOMES, vocabulary
from cti_bridge.web.api import WebApp
from cti_bridge.web.http import (
    BadRequest,
    NotFound,
    arg,
    json_body,
    parse_id,
    parse_limit,
    parse_since,
)
from cti_bridge.web.http import respond as _respond

from .rules import unowned_filter
from .service import Console

__all__ = ["add_contact_routes", "add_routes"]


def _call_id(value: str) -> int:
    return parse_id(value, "call")


def _agreement_id(value: str) -> int:
    return parse_id(value, "agreement")


def add_routes(web: WebApp, console: Console) -> None:
    """The console's routes on ``web``, in the order they always had."""

    # -- calls ---------------------------------------------------------------------------

    @web.route("/api/calls", methods=["GET"])
    @inlineCallbacks
    def calls(request: Request) -> Any:
        principal = yield web.principal(request)
        number = arg(request, "number")
        if number is not None and len(number) > 64:
            raise BadRequest("number is too long")
        since = parse_since(arg(request, "since"))
        limit = parse_limit(arg(request, "limit"))
        outcome = arg(request, "outcome") or None
        if outcome is not None and outcome not in CALL_OUTCOMES:
            raise BadRequest(f"outcome must be one of {', '.join(CALL_OUTCOMES)}")
        rows = yield console.list_calls(
            principal, number=number or None, since=since, limit=limit, outcome=outcome
        )
        return _respond(request, 200, {"calls": rows})

    @web.route("/api/calls/<string:call_id>", methods=["GET"])
    @inlineCallbacks
    def call(request: Request, call_id: str) -> Any:
        principal = yield web.principal(request)
        row = yield console.get_call(principal, _call_id(call_id))
        if row is None:
            raise NotFound("no such call")
        return _respond(request, 200, row)

    @web.route("/api/calls/<string:call_id>", methods=["PATCH"])
    @inlineCallbacks
    def patch_call(request: Request, call_id: str) -> Any:
        principal = yield web.principal(request)
        body = json_body(request)
        row = yield console.patch_call(principal, _call_id(call_id), body)
        if row is None:
            raise NotFound("no such call")
        return _respond(request, 200, row)

    # -- customers and agreements ---------------------------------------------------------

    @web.route("/api/customers", methods=["GET"])
    @inlineCallbacks
    def customers(request: Request) -> Any:
        principal = yield web.principal(request)
        text = (arg(request, "q") or "").strip()
        if len(text) < 2:
            raise BadRequest("q: give at least 2 characters to search for")
        if len(text) > 100:
            raise BadRequest("q is too long")
        limit = min(parse_limit(arg(request, "limit"), default=20), 100)
        rows = yield console.search_customers(principal, text, limit)
        return _respond(request, 200, {"customers": rows})

    @web.route("/api/customers/<string:customer_id>", methods=["GET"])
    @inlineCallbacks
    def customer(request: Request, customer_id: str) -> Any:
        principal = yield web.principal(request)
        context = yield console.customer_context(principal, parse_id(customer_id, "customer"))
        if context is None:
            raise NotFound("no such customer")
        return _respond(request, 200, context)

    add_contact_routes(web, console)

    @web.route("/api/agreements", methods=["POST"])
    @inlineCallbacks
    def create_agreement(request: Request) -> Any:
        principal = yield web.principal(request)
        body = json_body(request)
        created = yield console.create_agreement(principal, body)
        return _respond(request, 201, created)

    @web.route("/api/agreements", methods=["GET"])
    @inlineCallbacks
    def agreements(request: Request) -> Any:
        principal = yield web.principal(request)
        customer_id = arg(request, "customer_id")
        if customer_id is not None and (
            not (customer_id.isascii() and customer_id.isdigit())
            or len(customer_id) > 18
            or int(customer_id) < 1
        ):
            raise BadRequest("customer_id must be a positive whole number")
        owner = arg(request, "owner")
        if owner is not None and len(owner) > 64:
            raise BadRequest("owner is too long")
        rows = yield console.list_agreements(
            principal,
            status=arg(request, "status") or None,
            owner=owner or None,
            due=arg(request, "due") or None,
            customer_id=None if not customer_id else int(customer_id),
            limit=parse_limit(arg(request, "limit"), default=100),
            flagged=arg(request, "flagged"),
            kind=arg(request, "kind") or None,
            unowned=unowned_filter(arg(request, "unowned")),
        )
        return _respond(request, 200, {"agreements": rows})

    @web.route("/api/agreements/<string:agreement_id>", methods=["GET"])
    @inlineCallbacks
    def agreement(request: Request, agreement_id: str) -> Any:
        principal = yield web.principal(request)
        found = yield console.get_agreement(principal, _agreement_id(agreement_id))
        return _respond(request, 200, found)

    @web.route("/api/agreements/<string:agreement_id>", methods=["PATCH"])
    @inlineCallbacks
    def patch_agreement(request: Request, agreement_id: str) -> Any:
        principal = yield web.principal(request)
        body = json_body(request)
        updated = yield console.patch_agreement(principal, _agreement_id(agreement_id), body)
        return _respond(request, 200, updated)

    # -- the helpdesk's words ------------------------------------------------------------

    @web.route("/api/vocabulary", methods=["GET"])
    @inlineCallbacks
    def words(request: Request) -> Any:
        """Dispositions, agreement kinds and statuses, attempt outcomes, roles, call
        outcomes and directions, each with the console's label (``cti_bridge.vocabulary``)."""
        yield web.principal(request)
        return _respond(request, 200, vocabulary())


def add_contact_routes(web: WebApp, console: Console) -> None:
    """``POST /api/contacts`` (201 with the contact) and ``GET /api/contacts?customer_id=
    &limit=`` (a customer's contacts, newest first): contacts that are not calls."""

    @web.route("/api/contacts", methods=["POST"])
    @inlineCallbacks
    def create_contact(request: Request) -> Any:
        principal = yield web.principal(request)
        body = json_body(request)
        created = yield console.create_contact(principal, body)
        return _respond(request, 201, created)

    @web.route("/api/contacts", methods=["GET"])
    @inlineCallbacks
    def contacts(request: Request) -> Any:
        principal = yield web.principal(request)
        customer_id = arg(request, "customer_id")
        if not customer_id:
            raise BadRequest("customer_id is required")
        if not (customer_id.isascii() and customer_id.isdigit()) or len(customer_id) > 9:
            raise BadRequest("customer_id must be a positive whole number")
        if int(customer_id) < 1:
            raise BadRequest("customer_id must be a positive whole number")
        limit = parse_limit(arg(request, "limit"), default=50)
        rows = yield console.list_contacts(principal, int(customer_id), limit)
        return _respond(request, 200, {"contacts": rows})
