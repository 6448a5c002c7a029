"""The HTTP JSON API (PRODUCT.md's public interface) and the pages, on Klein.

Handlers stay thin: they parse and check the request, ask the backend (which does its
database work in the thread pool and returns Deferreds) and shape the JSON. Every
``/api`` path but ``/api/login`` needs ``Authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import structlog
from klein import Klein
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from twisted.web.static import File

from .auth import AuthError, Forbidden, LoginRefused, LoginThrottled, Principal, bearer_token
from .ws import Hub, ScreenSocketResource

log = structlog.get_logger("cti_bridge.web")

MAX_BODY = 64 * 1024
MAX_LIMIT = 500


#: The console's pages run only their own scripts and styles and talk only to this
#: origin; Trusted Types make the browser refuse any string-to-markup sink, so caller IDs
#: and notes can never become markup even through a slip in the page's code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
PAGE_HEADERS = {
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"cache-control": b"no-cache",
}


class Pages(File):
    """The console's static files: explicit types for ES modules, no directory listings."""

    contentTypes = {
        **File.contentTypes,
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
    }

    def directoryListing(self) -> IResource:
        return notFound("Not Found", "No such page.")


class BadRequest(Exception):
    """The request itself is wrong: HTTP 400 with the reason."""


class NotFound(Exception):
    pass


class Backend(Protocol):
    """What the web needs from the rest of cti-bridge (see ``app/backend.py``)."""

    def login(self, username: str, password: str, source: str) -> Deferred[dict[str, Any]]: ...

    def resolve_token(self, token: str) -> Deferred[Principal | None]: ...

    def logout(self, token: str) -> Deferred[None]: ...

    def list_calls(
        self, principal: Principal, *, number: str | None, since: datetime | None, limit: int
    ) -> Deferred[list[dict[str, Any]]]: ...

    def get_call(self, principal: Principal, call_id: int) -> Deferred[dict[str, Any] | None]: ...

    def patch_call(
        self, principal: Principal, call_id: int, changes: Mapping[str, Any]
    ) -> Deferred[dict[str, Any] | None]: ...

    def health(self) -> dict[str, Any]: ...

    def metrics(self) -> bytes: ...

    # -- operator console (issue 4): customer search and view, agreements -----------------

    def search_customers(
        self, principal: Principal, text: str, limit: int
    ) -> Deferred[list[dict[str, Any]]]: ...

    def customer_context(
        self, principal: Principal, customer_id: int
    ) -> Deferred[dict[str, Any] | None]: ...

    def create_agreement(
        self, principal: Principal, body: Mapping[str, Any]
    ) -> Deferred[dict[str, Any]]: ...


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("since must be an ISO 8601 date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_limit(value: str | None, default: int = 50) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _arg(request: Request, name: str) -> str | None:
    values = request.args.get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def _json_body(request: Request) -> dict[str, Any]:
    if request.content is None:
        raise BadRequest("a JSON body is required")
    raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BadRequest("request body too large")
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _respond(request: IRequest, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


_ERROR_CODES: dict[object, int] = {
    BadRequest: 400,
    AuthError: 401,
    LoginRefused: 401,
    Forbidden: 403,
    NotFound: 404,
    LoginThrottled: 429,
}
_DEFAULT_MESSAGES = {401: "unauthorized", 403: "forbidden", 404: "not found"}


class WebApp:
    app = Klein()

    def __init__(self, backend: Backend, hub: Hub, *, static_dir: str | None = None):
        self.backend = backend
        self.hub = hub
        self._ws = ScreenSocketResource(hub)
        self._static = static_dir or str(resources.files("cti_bridge.web") / "static")

    def resource(self) -> Resource:
        resource: Resource = self.app.resource()
        return resource

    # -- errors --------------------------------------------------------------------------

    @app.handle_errors(BadRequest, AuthError, Forbidden, NotFound, LoginRefused, LoginThrottled)
    def _api_error(self, request: IRequest, failure: Failure) -> bytes:
        error = failure.value
        code = _ERROR_CODES.get(type(error), 500)
        message = str(error) or _DEFAULT_MESSAGES.get(code, "error")
        if isinstance(error, AuthError):
            request.setHeader(b"www-authenticate", b'Bearer realm="cti-bridge"')
        elif isinstance(error, LoginRefused):
            message = "wrong username or password"
        elif isinstance(error, LoginThrottled):
            request.setHeader(b"retry-after", str(int(error.retry_after) + 1).encode())
        return _respond(request, code, {"error": message})

    # -- helpers -------------------------------------------------------------------------

    @inlineCallbacks
    def _principal(self, request: Request) -> Any:
        token = bearer_token(request.getHeader(b"authorization"))
        if token is None:
            raise AuthError("Authorization: Bearer TOKEN required")
        principal = yield self.backend.resolve_token(token)
        if principal is None:
            raise AuthError("invalid or expired token")
        return principal

    @staticmethod
    def _call_id(value: str) -> int:
        try:
            call_id = int(value)
        except ValueError:
            raise NotFound("no such call") from None
        if call_id < 1:
            raise NotFound("no such call")
        return call_id

    # -- health and metrics (open: for monitoring) --------------------------------------

    @app.route("/healthz", methods=["GET"])
    def healthz(self, request: Request) -> bytes:
        health = self.backend.health()
        return _respond(request, 200 if health.get("status") == "ok" else 503, health)

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return self.backend.metrics()

    # -- accounts ------------------------------------------------------------------------

    @app.route("/api/login", methods=["POST"])
    @inlineCallbacks
    def login(self, request: Request) -> Any:
        body = _json_body(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise BadRequest("username and password are required strings")
        if not username or len(username) > 128 or len(password) > 1024:
            raise BadRequest("username or password has an impossible length")
        source = request.getClientAddress()
        result = yield self.backend.login(username, password, getattr(source, "host", "?"))
        return _respond(request, 200, result)

    @app.route("/api/logout", methods=["POST"])
    @inlineCallbacks
    def logout(self, request: Request) -> Any:
        yield self._principal(request)
        token = bearer_token(request.getHeader(b"authorization"))
        assert token is not None
        yield self.backend.logout(token)
        return _respond(request, 200, {"ok": True})

    @app.route("/api/me", methods=["GET"])
    @inlineCallbacks
    def me(self, request: Request) -> Any:
        principal: Principal = yield self._principal(request)
        return _respond(
            request,
            200,
            {
                "username": principal.username,
                "name": principal.name,
                "role": principal.role,
                "devices": list(principal.devices),
            },
        )

    # -- calls ---------------------------------------------------------------------------

    @app.route("/api/calls", methods=["GET"])
    @inlineCallbacks
    def calls(self, request: Request) -> Any:
        principal = yield self._principal(request)
        number = _arg(request, "number")
        if number is not None and len(number) > 64:
            raise BadRequest("number is too long")
        since = parse_since(_arg(request, "since"))
        limit = parse_limit(_arg(request, "limit"))
        rows = yield self.backend.list_calls(
            principal, number=number or None, since=since, limit=limit
        )
        return _respond(request, 200, {"calls": rows})

    @app.route("/api/calls/<string:call_id>", methods=["GET"])
    @inlineCallbacks
    def call(self, request: Request, call_id: str) -> Any:
        principal = yield self._principal(request)
        row = yield self.backend.get_call(principal, self._call_id(call_id))
        if row is None:
            raise NotFound("no such call")
        return _respond(request, 200, row)

    @app.route("/api/calls/<string:call_id>", methods=["PATCH"])
    @inlineCallbacks
    def patch_call(self, request: Request, call_id: str) -> Any:
        principal = yield self._principal(request)
        body = _json_body(request)
        row = yield self.backend.patch_call(principal, self._call_id(call_id), body)
        if row is None:
            raise NotFound("no such call")
        return _respond(request, 200, row)

    # == operator console (issue 4, console workstream): customers and agreements ======

    @app.route("/api/customers", methods=["GET"])
    @inlineCallbacks
    def customers(self, request: Request) -> Any:
        principal = yield self._principal(request)
        text = (_arg(request, "q") or "").strip()
        if len(text) < 2:
            raise BadRequest("q: give at least 2 characters to search for")
        if len(text) > 100:
            raise BadRequest("q is too long")
        limit = min(parse_limit(_arg(request, "limit"), default=20), 100)
        rows = yield self.backend.search_customers(principal, text, limit)
        return _respond(request, 200, {"customers": rows})

    @app.route("/api/customers/<string:customer_id>", methods=["GET"])
    @inlineCallbacks
    def customer(self, request: Request, customer_id: str) -> Any:
        principal = yield self._principal(request)
        if not customer_id.isdigit() or len(customer_id) > 18 or int(customer_id) < 1:
            raise NotFound("no such customer")
        context = yield self.backend.customer_context(principal, int(customer_id))
        if context is None:
            raise NotFound("no such customer")
        return _respond(request, 200, context)

    @app.route("/api/agreements", methods=["POST"])
    @inlineCallbacks
    def create_agreement(self, request: Request) -> Any:
        principal = yield self._principal(request)
        body = _json_body(request)
        created = yield self.backend.create_agreement(principal, body)
        return _respond(request, 201, created)

    # == end of the operator console block ============================================

    # == AGI caller lookup (pop workstream, docs/screen-pop.md) =========================
    #: Set by the daemon (``pop.agi.agi_lookup_resource``) when a service token is
    #: configured; without one the lookup is off and the AGI script goes on without it.
    agi_lookup: Resource | None = None

    @app.route("/api/agi/lookup", branch=False)
    def agi(self, request: Request) -> Resource:
        if self.agi_lookup is None:
            raise NotFound("the AGI caller lookup is not enabled")
        return self.agi_lookup

    # == end of the AGI block ===========================================================

    # -- push and pages ------------------------------------------------------------------

    @app.route("/ws", branch=False)
    def ws(self, request: Request) -> Resource:
        return self._ws

    @app.route("/", branch=True)
    def pages(self, request: Request) -> Resource:
        # Operator console: the pages' security headers (console workstream).
        for name, value in PAGE_HEADERS.items():
            request.setHeader(name, value)
        return Pages(self._static)
