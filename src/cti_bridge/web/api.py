"""The web's plumbing on Klein: errors, logins, health, metrics, push and pages.

The features add their own routes (``WebApp.route``, from their ``install(node)``); the
web keeps what every one of them relies on: the JSON error answers, the principal behind
a request's ``Authorization: Bearer TOKEN`` (every ``/api`` path but ``/api/login``
needs one), ``/healthz`` and ``/metrics`` (filled by what the features registered), the
WebSocket ``/ws`` and the console's pages, which are matched last.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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

from cti_bridge import __version__

from .auth import AuthError, Forbidden, LoginRefused, LoginThrottled, Principal, bearer_token
from .clients import Network, client_host
from .http import MAX_BODY, MAX_LIMIT, BadRequest, NotFound, json_body, respond
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
    LoginThrottled: 429,
}
_DEFAULT_MESSAGES = {401: "unauthorized", 403: "forbidden", 404: "not found"}


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
    ):
        self.logins = logins
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
        self.app.handle_errors(
            BadRequest, AuthError, Forbidden, NotFound, LoginRefused, LoginThrottled
        )(self._api_error)
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
        return respond(request, 200 if health.get("status") == "ok" else 503, health)

    def metrics(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return self._metrics()

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

    def pages(self, request: Request) -> Resource:
        # Operator console: the pages' security headers.
        for name, value in PAGE_HEADERS.items():
            request.setHeader(name, value)
        return Pages(self._static)
