"""``GET /api/kpis`` and ``GET /api/kpis/operators``: supervisors and admins only
(an operator's token gets 403, as on the other supervisor endpoints). docs/kpis.md has
the shapes and every formula."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import inlineCallbacks
from twisted.web.server import Request

from cti_bridge.web.api import WebApp
from cti_bridge.web.auth import Forbidden
from cti_bridge.web.http import BadRequest, arg, parse_utc, respond

from .kpis import PeriodError

if TYPE_CHECKING:
    from .kpi_service import KpiService

__all__ = ["add_kpi_routes", "parse_time"]

#: The longest queue name the records keep (``calls.queue``).
MAX_QUEUE = 128


def parse_time(request: Request, name: str) -> datetime | None:
    """An ISO 8601 time (or date) argument; without an offset it is UTC."""
    value = arg(request, name)
    if value is None or value == "":
        return None
    if len(value) > 40:
        raise BadRequest(f"{name} is too long")
    return parse_utc(value, name)


def _period(request: Request, service: KpiService) -> tuple[datetime, datetime]:
    try:
        return service.period(parse_time(request, "since"), parse_time(request, "until"))
    except PeriodError as error:
        raise BadRequest(str(error)) from None


def add_kpi_routes(web: WebApp, service: KpiService) -> None:
    @web.route("/api/kpis", methods=["GET"])
    @inlineCallbacks
    def kpi_figures(request: Request) -> Any:
        principal = yield web.principal(request)
        if not principal.sees_everything:
            raise Forbidden("the KPIs are for supervisors")
        queue = (arg(request, "queue") or "").strip() or None  # empty: every queue
        if queue is not None and len(queue) > MAX_QUEUE:
            raise BadRequest("queue is too long")
        since, until = _period(request, service)
        found = yield service.figures(queue, since, until)
        return respond(request, 200, found)

    @web.route("/api/kpis/operators", methods=["GET"])
    @inlineCallbacks
    def kpi_operators(request: Request) -> Any:
        principal = yield web.principal(request)
        if not principal.sees_everything:
            raise Forbidden("the KPIs are for supervisors")
        since, until = _period(request, service)
        found = yield service.operator_hours(since, until)
        return respond(request, 200, found)
