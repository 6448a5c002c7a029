"""The supervisors' endpoints: ``GET /api/queues``, ``GET /api/agents`` (supervisors and
admins), ``GET /api/agents/{operator}``, ``POST /api/agents/{operator}/pause`` and
``/unpause`` (a supervisor or admin, or the operator themselves), and ``GET
/api/queues/pause-reasons`` (anyone logged in: an operator pauses themselves with one).
Thin: they check who asks and what, and ask ``Supervision``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.web.server import Request

from cti_bridge.web.api import WebApp
from cti_bridge.web.auth import Forbidden, Principal
from cti_bridge.web.http import BadRequest, NotFound, json_body, respond

from .service import NotAMember, PauseRefused, PbxDown, Supervision

__all__ = ["add_routes"]


def _supervisor(principal: Principal) -> None:
    if not principal.sees_everything:
        raise Forbidden("only supervisors and admins see the queues and agents")


def _self_or_supervisor(principal: Principal, operator: str) -> None:
    if principal.username != operator and not principal.sees_everything:
        raise Forbidden("only the operator themselves or a supervisor may do that")


def add_routes(web: WebApp, supervision: Supervision, pause_reasons: tuple[str, ...]) -> None:
    @web.route("/api/queues", methods=["GET"])
    @inlineCallbacks
    def live_queues(request: Request) -> Any:
        principal = yield web.principal(request)
        _supervisor(principal)
        queues = yield supervision.queues()
        return respond(request, 200, {"queues": queues})

    @web.route("/api/queues/pause-reasons", methods=["GET"])
    @inlineCallbacks
    def pause_reasons_list(request: Request) -> Any:
        yield web.principal(request)
        return respond(request, 200, {"reasons": list(pause_reasons)})

    @web.route("/api/agents", methods=["GET"])
    @inlineCallbacks
    def live_agents(request: Request) -> Any:
        principal = yield web.principal(request)
        _supervisor(principal)
        agents = yield supervision.agents()
        return respond(request, 200, {"agents": agents})

    @web.route("/api/agents/<string:operator>", methods=["GET"])
    @inlineCallbacks
    def live_agent(request: Request, operator: str) -> Any:
        principal = yield web.principal(request)
        _self_or_supervisor(principal, operator)
        agent = yield supervision.agent(operator)
        if agent is None:
            raise NotFound("no such operator")
        return respond(request, 200, agent)

    @inlineCallbacks
    def set_pause(request: Request, operator: str, paused: bool) -> Any:
        principal = yield web.principal(request)
        _self_or_supervisor(principal, operator)
        reason: str | None = None
        if paused:
            body = json_body(request)
            reason = body.get("reason")
            if reason not in pause_reasons:
                allowed = ", ".join(repr(r) for r in pause_reasons)
                raise BadRequest(f"reason must be one of {allowed}")
        roster = yield supervision.reload_roster()
        if operator not in roster:
            raise NotFound("no such operator")
        try:
            queues = yield supervision.pause(operator, reason)
        except PbxDown as error:
            return respond(request, 503, {"error": str(error)})
        except NotAMember as error:
            return respond(request, 409, {"error": str(error)})
        except PauseRefused as error:
            return respond(request, 502, {"error": str(error)})
        answer = {"operator": operator, "paused": paused, "reason": reason, "queues": queues}
        return respond(request, 200, answer)

    @web.route("/api/agents/<string:operator>/pause", methods=["POST"])
    def pause_agent(request: Request, operator: str) -> Any:
        return set_pause(request, operator, True)

    @web.route("/api/agents/<string:operator>/unpause", methods=["POST"])
    def unpause_agent(request: Request, operator: str) -> Any:
        return set_pause(request, operator, False)
