"""The dialplan's caller lookup: ``GET /api/agi/lookup?number=`` for the AGI script.

Before a call enters the queue, ``dialplans/agi/caller_lookup.py`` asks this endpoint who
is calling and sets channel variables from the answer (language, tier, queue priority).
The answer is small and decided here, so routing policy lives in cti-bridge and the PBX
only copies values: a valid contract on a premium tier is served first.

The endpoint is for the PBX, not for people: it takes a service token (``Authorization:
Bearer``, compared in constant time), not an operator's login token, and answers only
what routing needs (no history, no notes). A number that is not a phone number is simply
unknown. What it reads of storage is its port (``ports.CallerDirectory``: the number's
customer and their contracts' validity periods); the decision is made here, on those
rows. The read runs in the pool; the script gives up after half a second, so a slow
database costs the caller at most that.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Collection
from datetime import date
from typing import Any, Protocol

import structlog
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from cti_bridge.pop.context import local_today, valid_on
from cti_bridge.store.numbers import normalize_number

from .ports import CallerDirectory

__all__ = ["PRIORITY", "AgiLookupResource", "CallerProfiles", "agi_lookup_resource"]

log = structlog.get_logger("cti_bridge.pop.agi")  # the name its log lines always had

#: QUEUE_PRIO values: higher is answered first.
PRIORITY = {"premium_contract": 10, "contract": 5, "known": 1, "unknown": 0}
PREMIUM_TIERS = ("premium", "gold", "platinum")
MIN_TOKEN = 16


class CallerProfiles:
    """What routing needs to know about a caller's number (blocking: run it in the pool)."""

    def __init__(
        self,
        callers: CallerDirectory,
        *,
        default_region: str = "BE",
        today: Callable[[], date] | None = None,
        premium_tiers: Collection[str] = PREMIUM_TIERS,
    ):
        self._callers = callers
        self._region = default_region
        self._today = today or local_today(time.time)
        self._premium = {t.lower() for t in premium_tiers}

    def lookup(self, number: str) -> dict[str, Any]:
        e164 = normalize_number(number, self._region)
        unknown = {"known": False, "number": e164, "priority": PRIORITY["unknown"]}
        if e164 is None:
            return unknown
        today = self._today()
        customer = self._callers.caller(e164)
        if customer is None:
            return unknown
        contract = any(valid_on(start, until, today) for start, until in customer.contracts)
        premium = (customer.tier or "").lower() in self._premium
        level = "premium_contract" if contract and premium else "contract" if contract else "known"
        return {
            "known": True,
            "number": e164,
            "customer_id": customer.customer_id,
            "name": customer.name,
            "language": customer.language,
            "tier": customer.tier,
            "valid_contract": contract,
            "priority": PRIORITY[level],
        }


class AgiLookupResource(Resource):
    """``GET ?number=``: the profile as JSON, for a holder of the service token."""

    isLeaf = True

    def __init__(self, lookup: Callable[[str], Deferred[dict[str, Any]]], token: str):
        super().__init__()  # type: ignore[no-untyped-call]
        if len(token) < MIN_TOKEN:
            raise ValueError(f"the AGI service token needs at least {MIN_TOKEN} characters")
        self._lookup = lookup
        self._token = token.encode()

    def render_GET(self, request: Any) -> bytes | int:  # twisted.web's Request is untyped
        header = request.getHeader(b"authorization") or b""
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            request.setHeader(b"www-authenticate", b'Bearer realm="cti-bridge-agi"')
            return _json(request, 401, {"error": "service token required"})
        values = request.args.get(b"number") or [b""]
        number = values[0].decode("utf-8", "replace").strip()
        if not number or len(number) > 64:
            return _json(request, 400, {"error": "number is required (at most 64 characters)"})

        def answer(profile: dict[str, Any]) -> None:
            if not getattr(request, "_disconnected", False):
                request.write(_json(request, 200, profile))
                request.finish()

        def failed(failure: Failure) -> None:
            log.error("AGI lookup failed", error=failure.getErrorMessage()[:300])
            if not getattr(request, "_disconnected", False):
                request.write(_json(request, 503, {"error": "lookup unavailable"}))
                request.finish()

        self._lookup(number).addCallbacks(answer, failed)
        return NOT_DONE_YET


def _json(request: Any, code: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class WithCallers(Protocol):
    """A store (SQL or its memory twin): the lookup takes only its ``callers``."""

    @property
    def callers(self) -> CallerDirectory: ...


def agi_lookup_resource(
    store: WithCallers,
    run: Callable[[Callable[[], Any]], Deferred[Any]],
    *,
    default_region: str,
    token: str | None,
) -> AgiLookupResource | None:
    """The endpoint ``install`` mounts at ``/api/agi/lookup``; None without a token
    (the lookup is off: the AGI script then finds nothing and the calls go on)."""
    if not token:
        return None
    profiles = CallerProfiles(store.callers, default_region=default_region)
    return AgiLookupResource(lambda number: run(lambda: profiles.lookup(number)), token)
