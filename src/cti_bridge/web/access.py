"""The access log: one structlog line per request, without what a request may carry.

Twisted's own access log writes the whole URI: ``/ws?token=...`` (a live token, when a
screen's upgrade fails) and ``/api/calls?number=...`` or ``/api/customers?q=...`` (the
caller's phone number, a customer's name: personal data). This one writes the path and
only the *names* of the query's parameters, never their values, never a header but the
method (so no ``Authorization``, no ``Cookie``, no ``Referer`` with somebody's URL),
and the client as ``web/clients.py`` finds it (a trusted proxy's ``X-Forwarded-For``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from twisted.web.http import Request
from twisted.web.server import Site

from .clients import Network, client_host
from .http import BoundedRequest

__all__ = ["AccessLogSite", "access_entry"]

log = structlog.get_logger("cti_bridge.web.access")

MAX_PATH = 256
MAX_PARAMETERS = 16


def access_entry(request: Request, trusted: Sequence[Network] = ()) -> dict[str, Any]:
    """What the access log says about ``request``: method, path, the query's parameter
    names (sorted, at most ``MAX_PARAMETERS``), status, bytes sent and the client."""
    path = (request.path or b"").decode("utf-8", "replace")[:MAX_PATH]
    names = sorted({name.decode("utf-8", "replace")[:32] for name in (request.args or {})})
    return {
        "method": (request.method or b"-").decode("latin-1")[:16],
        "path": path,
        "query": names[:MAX_PARAMETERS],
        "status": request.code,
        "bytes": request.sentLength,
        "client": client_host(request, trusted),
    }


class AccessLogSite(Site):
    """A ``Site`` whose access log is ``access_entry``, at ``info``, through structlog,
    and whose requests keep at most ``MAX_BODY`` bytes of a body (``BoundedRequest``)."""

    requestFactory = BoundedRequest

    def __init__(
        self, resource: Any, *, trusted_proxies: Sequence[Network] = (), **kwargs: Any
    ) -> None:
        super().__init__(resource, **kwargs)
        self.trusted_proxies = tuple(trusted_proxies)

    def log(self, request: Request) -> None:
        log.info("http request", **access_entry(request, self.trusted_proxies))
