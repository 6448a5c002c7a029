"""The HTTP API as an OpenAPI 3.1 document, served at ``GET /api/openapi.json``.

Integrators read it; ``tests/unit/web/test_openapi.py`` keeps it true: every route the
daemon registers is in it and nothing else, the document is valid OpenAPI 3.1, and real
answers of the daemon's web validate against its schemas. The schemas name the fields
PRODUCT.md promises (``required``) and allow more (the answers carry more, and may gain
fields: "extend, don't break").
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _list_of(key: str, item: Schema) -> Schema:
    return _obj({key: {"type": "array", "items": item}})


STR: Schema = {"type": "string"}
NSTR: Schema = {"type": ["string", "null"]}
INT: Schema = {"type": "integer"}
NINT: Schema = {"type": ["integer", "null"]}
NUM: Schema = {"type": "number"}
NNUM: Schema = {"type": ["number", "null"]}
BOOL: Schema = {"type": "boolean"}
WHEN: Schema = {"type": ["string", "null"], "format": "date-time"}
STRS: Schema = {"type": "array", "items": STR}
ANY_OBJ: Schema = {"type": "object"}

_OUTCOMES = ["answered", "abandoned", "missed", "transferred", "failed"]
_KINDS = ["callback", "documentation", "technician", "repair", "replacement", "second_line"]
_STATUSES = ["open", "dialling", "done", "failed", "cancelled"]

SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": STR}),
    "Login": _obj({"username": STR, "password": STR}),
    "Session": _obj({"token": STR, "role": STR}, {"username": STR, "name": NSTR}),
    "Me": _obj({"username": STR, "name": NSTR, "role": STR, "devices": STRS}),
    "Health": _obj(
        {
            "status": {"enum": ["ok", "degraded"]},
            "ami": ANY_OBJ,
            "database": ANY_OBJ,
            "bus": ANY_OBJ,
        },
        {"node": _obj({"name": STR, "role": STR, "owns": STRS})},
    ),
    "NoteChange": _obj({"at": WHEN, "operator": NSTR, "field": STR, "old": NSTR, "new": NSTR}),
    "Call": _obj(
        {
            "id": INT,
            "pbx": STR,
            "linkedid": STR,
            "direction": {"enum": ["inbound", "outbound", "internal"]},
            "caller_number": NSTR,
            "caller_number_raw": NSTR,
            "caller_name": NSTR,
            "caller_withheld": BOOL,
            "queue": NSTR,
            "started_at": WHEN,
            "answered_at": WHEN,
            "ended_at": WHEN,
            "ended_at_approximate": BOOL,
            "wait_seconds": NNUM,
            "talk_seconds": NNUM,
            "rang": STRS,
            "answered_by": NSTR,
            "outcome": {"type": ["string", "null"], "enum": [*_OUTCOMES, None]},
            "transfers": {"type": "array"},
            "notes": NSTR,
            "category": NSTR,
            "disposition": NSTR,
        },
        {"notes_history": {"type": "array", "items": _ref("NoteChange")}},
    ),
    "CallChanges": {
        "type": "object",
        "properties": {"notes": NSTR, "category": NSTR, "disposition": NSTR},
        "additionalProperties": False,
    },
    "Attempt": _obj(
        {
            "number": INT,
            "operator": NSTR,
            "node": NSTR,
            "started_at": WHEN,
            "ended_at": WHEN,
            "call_id": NINT,
            "outcome": NSTR,
        }
    ),
    "Agreement": _obj(
        {
            "id": INT,
            "kind": {"enum": [*_KINDS, "other"]},
            "status": {"enum": _STATUSES},
            "customer_id": NINT,
            "call_id": NINT,
            "owner": NSTR,
            "queue": NSTR,
            "deadline": WHEN,
            "callback_number": NSTR,
            "window_start": WHEN,
            "window_end": WHEN,
            "notes": NSTR,
            "flagged": BOOL,
            "attempts": {"type": "array", "items": _ref("Attempt")},
        }
    ),
    "NewAgreement": _obj(
        {"kind": {"enum": [*_KINDS, "other"]}},
        {
            "customer_id": NINT,
            "call_id": NINT,
            "owner": NSTR,
            "queue": NSTR,
            "deadline": WHEN,
            "callback_number": NSTR,
            "window_start": WHEN,
            "window_end": WHEN,
            "notes": NSTR,
        },
    ),
    "AgreementChanges": {
        "type": "object",
        "properties": {
            "status": {"enum": ["done", "cancelled"]},
            "deadline": WHEN,
            "owner": NSTR,
            "window_start": WHEN,
            "window_end": WHEN,
            "notes": NSTR,
            "disposition": NSTR,
        },
    },
    "Customer": _obj({"id": INT, "name": STR, "numbers": STRS}, {"company": NSTR}),
    "CustomerContext": _obj(
        {
            "customer": _ref("Customer"),
            "contracts": {"type": "array"},
            "history": {"type": "array", "items": _obj({"type": STR})},
            "agreements": {"type": "array"},
        }
    ),
    "Contact": _obj(
        {
            "id": INT,
            "type": {"const": "contact"},
            "customer_id": INT,
            "channel": STR,
            "subject": NSTR,
            "notes": NSTR,
            "category": NSTR,
            "disposition": NSTR,
        }
    ),
    "NewContact": _obj(
        {"customer_id": INT, "channel": STR},
        {"subject": NSTR, "notes": NSTR, "category": NSTR, "disposition": NSTR},
    ),
    "Words": {
        "type": "object",
        "additionalProperties": {
            "type": "array",
            "items": _obj({"value": STR, "label": STR}),
        },
    },
    "Waiting": _obj(
        {"call_id": NINT, "caller_number": NSTR, "position": NINT, "wait_seconds": NUM}
    ),
    "Member": _obj(
        {
            "operator": NSTR,
            "device": STR,
            "state": {
                "enum": ["available", "ringing", "on_call", "wrap_up", "paused", "unavailable"]
            },
            "paused_reason": NSTR,
            "state_since": WHEN,
        }
    ),
    "Figures": _obj(
        {
            "offered": INT,
            "answered": INT,
            "abandoned": INT,
            "service_level": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "service_level_seconds": NUM,
            "asa_seconds": NNUM,
            "aht_seconds": NNUM,
            "longest_wait_seconds": NNUM,
        }
    ),
    "Queue": _obj(
        {
            "pbx": STR,
            "name": STR,
            "waiting": {"type": "array", "items": _ref("Waiting")},
            "longest_wait_seconds": NUM,
            "members": {"type": "array", "items": _ref("Member")},
            "today": _ref("Figures"),
        },
        # Only on a node relaying another's PBX, false until the owner's snapshot.
        {"live": BOOL},
    ),
    "Agent": _obj(
        {
            "operator": STR,
            "name": NSTR,
            "devices": STRS,
            "state": STR,
            "paused_reason": NSTR,
            "state_since": WHEN,
            "queues": {"type": "array"},
            "calls_today": INT,
            "talk_seconds_today": NUM,
        },
        {"live": BOOL},
    ),
    "Pause": _obj({"reason": STR}),
    "Paused": _obj({"operator": STR, "paused": BOOL, "reason": NSTR, "queues": {"type": "array"}}),
    "QueueKpis": {"allOf": [_ref("Figures"), _obj({"queue": STR, "since": WHEN, "until": WHEN})]},
    "Kpis": {
        "oneOf": [
            _ref("QueueKpis"),
            _obj({"queues": {"type": "array", "items": _ref("QueueKpis")}}),
        ]
    },
    "OperatorKpis": _obj(
        {
            "since": WHEN,
            "until": WHEN,
            "operators": {
                "type": "array",
                "items": _obj({"operator": STR, "calls": INT, "talk_seconds": NUM}),
            },
        }
    ),
    "CallerProfile": _obj({"known": BOOL, "number": NSTR}),
}

_ERRORS = {
    "400": "the request is wrong (the reason says why)",
    "401": "no valid token: missing, forged, expired or logged out",
    "403": "a valid token without the right",
    "404": "no such thing",
    "409": "the operator is in no queue to pause",
    "413": "the body is over 64 KiB (any request's, refused before it is read whole)",
    "429": "too many failed logins: retry after Retry-After seconds",
    "502": "the PBX refused",
    "503": "the PBX link is down",
}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, schema: Schema = STR) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": STR}


def _op(
    summary: str,
    ok: Schema,
    *,
    code: str = "200",
    errors: tuple[str, ...] = ("401",),
    params: list[Schema] | None = None,
    body: Schema | None = None,
    open_: bool = False,
    tag: str = "console",
) -> Schema:
    op: Schema = {"summary": summary, "tags": [tag], "responses": {code: ok}}
    for error in errors:
        op["responses"][error] = _json(_ref("Error"), _ERRORS[error])
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        # Malformed JSON and a body over the limit (web/http.py), wherever a body is read.
        for error in ("400", "413"):
            op["responses"].setdefault(error, _json(_ref("Error"), _ERRORS[error]))
    if open_:
        op["security"] = []
    return op


_SINCE = _query("since", "ISO 8601 date or time (UTC without an offset)", {"type": "string"})
_LIMIT = _query("limit", "at most this many (1 to 500)", {"type": "integer"})
_CALL, _AGREEMENT, _CUSTOMER, _OPERATOR = (
    _path("call_id"),
    _path("agreement_id"),
    _path("customer_id"),
    _path("operator"),
)
_PAGE = {"description": "the page", "content": {"text/html": {"schema": STR}}}

PATHS: dict[str, dict[str, Schema]] = {
    "/healthz": {
        "get": _op(
            "the node's parts: ok, or degraded (503); with [web] status_token set and not"
            " presented, only the status",
            _json(_ref("Health")),
            errors=(),
            open_=True,
            tag="monitoring",
        )
        | {"responses": {"200": _json(_ref("Health")), "503": _json(_ref("Health"), "degraded")}}
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (with [web] status_token set: that bearer token)",
            "tags": ["monitoring"],
            "security": [],
            "responses": {
                "200": {"description": "text", "content": {"text/plain": {"schema": STR}}},
                "401": _json(_ref("Error"), "[web] status_token is set and was not presented"),
            },
        }
    },
    "/api/openapi.json": {
        "get": _op("this document", _json(ANY_OBJ), errors=(), open_=True, tag="accounts")
    },
    "/api/login": {
        "post": _op(
            "a token for a username and password",
            _json(_ref("Session")),
            errors=("400", "401", "429"),
            body=_ref("Login"),
            open_=True,
            tag="accounts",
        )
    },
    "/api/logout": {"post": _op("end this token", _json(_obj({"ok": BOOL})), tag="accounts")},
    "/api/me": {"get": _op("who holds this token", _json(_ref("Me")), tag="accounts")},
    "/api/calls": {
        "get": _op(
            "call history, newest first: an operator's are the ended calls (with"
            ' [web] call_history = "own" only theirs) and the live ones ringing them',
            _json(_list_of("calls", _ref("Call"))),
            errors=("400", "401"),
            params=[
                _query("number", "the caller's number, as typed"),
                _SINCE,
                _LIMIT,
                _query("outcome", "one outcome", {"enum": _OUTCOMES}),
            ],
        )
    },
    "/api/calls/{call_id}": {
        "get": _op(
            "one call (404 also for a call the operator may not see)",
            _json(_ref("Call")),
            errors=("401", "404"),
            params=[_CALL],
        ),
        "patch": _op(
            "notes, category, disposition (who answered it, or a supervisor)",
            _json(_ref("Call")),
            errors=("400", "401", "403", "404"),
            params=[_CALL],
            body=_ref("CallChanges"),
        ),
    },
    "/api/customers": {
        "get": _op(
            "customers by name, company or number",
            _json(_list_of("customers", _ref("Customer"))),
            errors=("400", "401"),
            params=[_query("q", "at least 2 characters"), _LIMIT],
        )
    },
    "/api/customers/{customer_id}": {
        "get": _op(
            "a customer with contracts, history and agreements",
            _json(_ref("CustomerContext")),
            errors=("401", "404"),
            params=[_CUSTOMER],
        )
    },
    "/api/contacts": {
        "post": _op(
            "a contact that is not a call (mail, chat, visit)",
            _json(_ref("Contact"), "made"),
            code="201",
            errors=("400", "401", "403"),
            body=_ref("NewContact"),
        ),
        "get": _op(
            "a customer's contacts, newest first",
            _json(_list_of("contacts", _ref("Contact"))),
            errors=("400", "401"),
            params=[_query("customer_id", "the customer", {"type": "integer"}), _LIMIT],
        ),
    },
    "/api/agreements": {
        "post": _op(
            "make an agreement",
            _json(_ref("Agreement"), "made"),
            code="201",
            errors=("400", "401", "403"),
            body=_ref("NewAgreement"),
        ),
        "get": _op(
            "agreements (an operator: their own and those nobody owns)",
            _json(_list_of("agreements", _ref("Agreement"))),
            errors=("400", "401", "403"),
            params=[
                _query("status", "one status", {"enum": _STATUSES}),
                _query("owner", "a username"),
                _query("due", "today or overdue", {"enum": ["today", "overdue"]}),
                _query("customer_id", "the customer", {"type": "integer"}),
                _query("flagged", "true or false", {"enum": ["true", "false"]}),
                _query("kind", "one kind"),
                _query("unowned", "true: only those nobody owns", {"enum": ["true", "false"]}),
                _LIMIT,
            ],
        ),
    },
    "/api/agreements/{agreement_id}": {
        "get": _op(
            "one agreement with its attempts",
            _json(_ref("Agreement")),
            errors=("401", "403", "404"),
            params=[_AGREEMENT],
        ),
        "patch": _op(
            "status, deadline, owner, window, notes",
            _json(_ref("Agreement")),
            errors=("400", "401", "403", "404"),
            params=[_AGREEMENT],
            body=_ref("AgreementChanges"),
        ),
    },
    "/api/vocabulary": {"get": _op("the helpdesk's words, with labels", _json(_ref("Words")))},
    "/api/agi/lookup": {
        "get": _op(
            "the caller's profile for the dialplan (the AGI's service token; 404 when off)",
            _json(_ref("CallerProfile")),
            errors=("400", "401", "404"),
            params=[_query("number", "the caller's number")],
            tag="pbx",
        )
        | {"security": [{"serviceToken": []}]}
    },
    "/api/queues": {
        "get": _op(
            "live queues (supervisors)",
            _json(_list_of("queues", _ref("Queue"))),
            errors=("401", "403"),
            tag="supervision",
        )
    },
    "/api/queues/pause-reasons": {
        "get": _op(
            "the reasons a pause may give",
            _json(_obj({"reasons": STRS})),
            tag="supervision",
        )
    },
    "/api/agents": {
        "get": _op(
            "live agents (supervisors)",
            _json(_list_of("agents", _ref("Agent"))),
            errors=("401", "403"),
            tag="supervision",
        )
    },
    "/api/agents/{operator}": {
        "get": _op(
            "one agent (the operator themselves, or a supervisor)",
            _json(_ref("Agent")),
            errors=("401", "403", "404"),
            params=[_OPERATOR],
            tag="supervision",
        )
    },
    "/api/agents/{operator}/pause": {
        "post": _op(
            "pause the operator's queue memberships (themselves, or a supervisor)",
            _json(_ref("Paused")),
            errors=("400", "401", "403", "404", "409", "502", "503"),
            params=[_OPERATOR],
            body=_ref("Pause"),
            tag="supervision",
        )
    },
    "/api/agents/{operator}/unpause": {
        "post": _op(
            "unpause the operator's queue memberships",
            _json(_ref("Paused")),
            errors=("401", "403", "404", "409", "502", "503"),
            params=[_OPERATOR],
            tag="supervision",
        )
    },
    "/api/kpis": {
        "get": _op(
            "the KPIs over a period (supervisors; docs/kpis.md)",
            _json(_ref("Kpis")),
            errors=("400", "401", "403"),
            params=[
                _query("queue", "one queue; without: every queue"),
                _SINCE,
                _query("until", "ISO 8601"),
            ],
            tag="supervision",
        )
    },
    "/api/kpis/operators": {
        "get": _op(
            "calls and talk time per operator and hour (supervisors)",
            _json(_ref("OperatorKpis")),
            errors=("400", "401", "403"),
            params=[_SINCE, _query("until", "ISO 8601")],
            tag="supervision",
        )
    },
    "/wallboard": {
        "get": {
            "summary": "the supervisors' wall screen",
            "tags": ["pages"],
            "security": [],
            "responses": {"200": _PAGE},
        }
    },
    "/ws": {
        "get": {
            "summary": "the screens' WebSocket (screen_pop, call_update, queue_update, ...)",
            "description": (
                "The token goes in the query (browsers cannot set headers on a WebSocket). "
                "A browser's Origin must be the daemon's own or one of [web] allowed_origins."
            ),
            "tags": ["pages"],
            "security": [],
            "parameters": [
                {"name": "token", "in": "query", "required": True, "schema": STR},
                {
                    "name": "agents",
                    "in": "query",
                    "required": False,
                    "description": (
                        "batched: a supervisor's socket gets the operators' changes as "
                        "agents_update (a list of agents, every operator changed in an "
                        "interval) instead of one agent_update each"
                    ),
                    "schema": {"type": "string", "enum": ["batched"]},
                },
            ],
            "responses": {
                "101": {"description": "switching to the WebSocket"},
                "401": _json(_ref("Error"), _ERRORS["401"]),
                "403": _json(_ref("Error"), "a browser page of another origin"),
            },
        }
    },
    "/": {
        "get": {
            "summary": "the operators' console (and, below /, its static files)",
            "tags": ["pages"],
            "security": [],
            "responses": {"200": _PAGE},
        }
    },
}


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cti-bridge",
            "version": version,
            "description": (
                "The helpdesk's computer-telephony middleware: call records, agreements, "
                "live supervision. Every endpoint but those marked open needs "
                "`Authorization: Bearer TOKEN` (POST /api/login). Errors are JSON "
                '`{"error": reason}`.'
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "serviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the AGI's service token ([agi] token_env), not a person's",
                },
            },
        },
    }
