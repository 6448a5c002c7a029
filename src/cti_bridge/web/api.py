"""The web's plumbing on Klein: errors, logins, health, metrics, push and pages.

The features add their own routes (``WebApp.route``, from their ``install(node)``); the
web keeps what every one of them relies on: the JSON error answers, the principal behind
a request's ``Authorization: Bearer TOKEN`` (every ``/api`` path but ``/api/login``
needs one), ``/healthz`` and ``/metrics`` (filled by what the features registered), the
WebSocket ``/ws`` and the console's pages, which are matched last.

Under ``/api`` every answer is JSON, errors too: an unknown path is 404, a known path
asked with a method it does not take is 405 (with ``Allow``), a body over ``MAX_BODY``
is 413 (``web/http.py`` ``BoundedRequest``), malformed JSON 400, and whatever a handler
did not expect is logged with its traceback and answered 500 ``internal error``, never
an HTML page or a traceback.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Sequence
from http import HTTPStatus
from importlib import resources
from typing import Any, Protocol, TypeVar

import structlog
from klein import Klein
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from twisted.web.static import File
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as NoRoute
from werkzeug.routing import Map, Rule

from cti_bridge import __version__

from .auth import AuthError, Forbidden, LoginRefused, LoginThrottled, Principal, bearer_token
from .clients import Network, client_host
from .http import (
    MAX_BODY,
    MAX_LIMIT,
    BadRequest,
    NotFound,
    PayloadTooLarge,
    json_body,
    respond,
)
from .openapi import openapi_document
from .ws import Hub, ScreenSocketResource

__all__ = [
    "MAX_BODY",
    "MAX_LIMIT",
    "PAGE_HEADERS",
    "BadRequest",
    "NotFound",
    "Pages",
    "WebApp",
]

log = structlog.get_logger("cti_bridge.web")
H = TypeVar("H", bound=Callable[..., Any])


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

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        # ``/%00``: no file has a NUL in its name (``stat`` would raise, a 500).
        if b"\x00" in path:
            return notFound("Not Found", "No such page.")
        return super().getChild(path, request)  # type: ignore[no-any-return]


class Logins(Protocol):
    """What the web needs to know who is asking (``web/accounts.py``)."""

    def login(self, username: str, password: str, source: str) -> Deferred[dict[str, Any]]: ...

    def resolve_token(self, token: str) -> Deferred[Principal | None]: ...

    def logout(self, token: str) -> Deferred[None]: ...


_ERROR_CODES: dict[object, int] = {
    BadRequest: 400,
    AuthError: 401,
    LoginRefused: 401,
    Forbidden: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    LoginThrottled: 429,
}
_DEFAULT_MESSAGES = {401: "unauthorized", 403: "forbidden", 404: "not found"}


def _is_api(request: IRequest) -> bool:
    path: bytes = request.path or b""
    return path == b"/api" or path.startswith(b"/api/")


class WebApp:
    """One node's HTTP: its own Klein, the web's routes, and the features' (``route``).

    The features add their routes while they are installed; ``resource()`` then adds
    ``/ws`` and the pages (``/``, a branch: whatever no other route took) last, once.
    """

    def __init__(
        self,
        logins: Logins,
        hub: Hub,
        *,
        health: Callable[[], dict[str, Any]],
        metrics: Callable[[], bytes],
        static_dir: str | None = None,
        trusted_proxies: Sequence[Network] = (),
        allowed_origins: Sequence[str] = (),
        status_token: str | None = None,
    ):
        self.logins = logins
        #: ``[web] status_token``: needed for ``/metrics`` and ``/healthz``'s detail.
        self._status_token = status_token
        #: ``[web] trusted_proxies``: whose ``X-Forwarded-For`` names the client.
        self.trusted_proxies = tuple(trusted_proxies)
        self.hub = hub
        self._health = health
        self._metrics = metrics
        #: ``[web] allowed_origins``: pages of these origins may open ``/ws`` too.
        self._ws = ScreenSocketResource(hub, allowed_origins)
        self._static = static_dir or str(resources.files("cti_bridge.web") / "static")
        self.app = Klein()
        self._resource: Resource | None = None
        #: The ``/api`` routes alone, to tell an unknown path (404) from a wrong method (405).
        self._api_routes = Map()
        self.app.handle_errors(
            BadRequest,
            AuthError,
            Forbidden,
            NotFound,
            PayloadTooLarge,
            LoginRefused,
            LoginThrottled,
        )(self._api_error)
        self.app.handle_errors(Exception)(self._unexpected_error)
        # -- health and metrics (open: for monitoring)
        self.route("/healthz", methods=["GET"])(self.healthz)
        self.route("/metrics", methods=["GET"])(self.metrics)
        # -- accounts
        self.route("/api/login", methods=["POST"])(self.login)
        self.route("/api/logout", methods=["POST"])(self.logout)
        self.route("/api/me", methods=["GET"])(self.me)
        self.route("/api/openapi.json", methods=["GET"])(self.openapi)

    def route(self, url: str, **kwargs: Any) -> Callable[[H], H]:
        """Klein's ``route`` for a handler ``f(request, **url_values)``.

        Raising ``BadRequest``, ``NotFound``, ``AuthError`` or ``Forbidden`` answers with
        the JSON error. Endpoint names (the handler's name unless ``endpoint=`` says
        otherwise) are unique: a second route of that name is refused, not shadowed.
        """
        if self._resource is not None:
            raise RuntimeError(f"route {url}: the web is already serving")

        def add(handler: H) -> H:
            endpoint = kwargs.setdefault("endpoint", handler.__name__)
            taken = {endpoint, endpoint + "_branch"} & set(self.app.endpoints)
            if taken:
                raise ValueError(f"route {url}: endpoint {endpoint!r} is taken")
            self.app.route(url, **kwargs)(handler)
            return handler

        return add

    def page(self, url: str, filename: str) -> None:
        """Serve the static page ``filename`` (a file of the pages' folder) at ``url``,
        with the pages' security headers: a feature's own screen (``/wallboard``)."""
        path = os.path.join(self._static, filename)
        if not os.path.isfile(path):
            raise ValueError(f"page {url}: no {filename} among the static files")

        def serve(request: Request) -> Resource:
            for name, value in PAGE_HEADERS.items():
                request.setHeader(name, value)
            return Pages(path)

        self.route(url, methods=["GET"], endpoint=f"page {url}")(serve)

    def resource(self) -> Resource:
        if self._resource is None:
            # -- push and pages: after every feature's routes
            self.route("/ws", branch=False)(self.ws)
            self.route("/", branch=True)(self.pages)
            self._api_routes = Map(
                [
                    Rule(rule.rule, methods=rule.methods, endpoint=rule.endpoint)
                    for rule in self.app.url_map.iter_rules()
                    if rule.rule == "/api" or rule.rule.startswith("/api/")
                ]
            )
            self._resource = self.app.resource()
        return self._resource

    # -- errors --------------------------------------------------------------------------

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
        return respond(request, code, {"error": message})

    def _unexpected_error(self, request: IRequest, failure: Failure) -> Any:
        """Whatever no handler expected: under ``/api`` a JSON 404/405 for a routing
        miss, else a logged traceback and a JSON 500 that says nothing of it."""
        error = failure.value
        if isinstance(error, HTTPException) and error.code is not None:
            if not _is_api(request):
                return failure  # Klein's own answer (a page's path)
            if isinstance(error, MethodNotAllowed):
                request.setHeader(b"allow", ", ".join(sorted(error.valid_methods or ())).encode())
            return respond(request, error.code, {"error": _reason(error.code)})
        log.error(
            "unhandled error answering a request",
            method=(request.method or b"").decode("latin-1")[:16],
            path=(request.path or b"").decode("utf-8", "replace")[:256],
            exc_info=(failure.type, failure.value, failure.getTracebackObject()),
        )
        return respond(request, 500, {"error": "internal error"})

    def _no_api_route(self, request: Request) -> bytes:
        """A path under ``/api`` that no route took: 405 if some route has the path
        with other methods, else 404; JSON either way."""
        adapter = self._api_routes.bind("localhost")
        path = (request.path or b"").decode("utf-8", "replace")
        method = (request.method or b"GET").decode("latin-1")
        try:
            adapter.match(path, method)
        except MethodNotAllowed as error:
            allowed = sorted(set(error.valid_methods or ()))
            request.setHeader(b"allow", ", ".join(allowed).encode())
            return respond(request, 405, {"error": f"{method} is not allowed here"})
        except (NoRoute, HTTPException):
            pass
        return respond(request, 404, {"error": "no such API path"})

    # -- who is asking -------------------------------------------------------------------

    def client_host(self, request: IRequest) -> str:
        """The client's address: the peer, or what a trusted proxy says (``web/clients.py``)."""
        return client_host(request, self.trusted_proxies)

    @inlineCallbacks
    def principal(self, request: Request) -> Any:
        """The principal of the request's bearer token; ``AuthError`` (401) without one."""
        token = bearer_token(request.getHeader(b"authorization"))
        if token is None:
            raise AuthError("Authorization: Bearer TOKEN required")
        principal = yield self.logins.resolve_token(token)
        if principal is None:
            raise AuthError("invalid or expired token")
        return principal

    # -- health and metrics (open: for monitoring) --------------------------------------

    def healthz(self, request: Request) -> bytes:
        health = self._health()
        code = 200 if health.get("status") == "ok" else 503
        if not self._status_allowed(request):
            # A load balancer still learns ok or not; the detail (hosts, users, the
            # PBX's banner, the nodes) is monitoring's, with the token.
            return respond(request, code, {"status": health.get("status")})
        return respond(request, code, health)

    def metrics(self, request: Request) -> bytes:
        if not self._status_allowed(request):
            raise AuthError("/metrics needs the status token ([web] status_token)")
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return self._metrics()

    def _status_allowed(self, request: Request) -> bool:
        if self._status_token is None:
            return True
        given = bearer_token(request.getHeader(b"authorization"))
        return given is not None and hmac.compare_digest(
            given.encode(), self._status_token.encode()
        )

    # -- accounts ------------------------------------------------------------------------

    @inlineCallbacks
    def login(self, request: Request) -> Any:
        body = json_body(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise BadRequest("username and password are required strings")
        if not username or len(username) > 128 or len(password) > 1024:
            raise BadRequest("username or password has an impossible length")
        result = yield self.logins.login(username, password, self.client_host(request))
        return respond(request, 200, result)

    @inlineCallbacks
    def logout(self, request: Request) -> Any:
        yield self.principal(request)
        token = bearer_token(request.getHeader(b"authorization"))
        assert token is not None
        yield self.logins.logout(token)
        # The screens of this token stop now, not at the hub's next re-check.
        self.hub.token_ended(token)
        return respond(request, 200, {"ok": True})

    @inlineCallbacks
    def me(self, request: Request) -> Any:
        principal: Principal = yield self.principal(request)
        return respond(
            request,
            200,
            {
                "username": principal.username,
                "name": principal.name,
                "role": principal.role,
                "devices": list(principal.devices),
            },
        )

    def openapi(self, request: Request) -> bytes:
        """The API's OpenAPI document (``web/openapi.py``): open, it holds no data."""
        return respond(request, 200, openapi_document(__version__))

    # -- push and pages ------------------------------------------------------------------

    def ws(self, request: Request) -> Resource:
        return self._ws

    def pages(self, request: Request) -> Resource | bytes:
        if _is_api(request):  # not a page: a path or method no API route takes
            return self._no_api_route(request)
        # Operator console: the pages' security headers.
        for name, value in PAGE_HEADERS.items():
            request.setHeader(name, value)
        return Pages(self._static)


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase.lower()
    except ValueError:
        return "error"
