"""What every HTTP handler shares: the JSON in and out, the query checks, the errors.

The features' handlers (``console/``, ``agi/``, ...) and the web's own (login, health)
use these, so one request reads, fails and answers the same wherever it is handled.
Raising ``BadRequest``/``NotFound`` (or ``auth.AuthError``/``auth.Forbidden``) from a
handler gives the JSON error answer ``web/api.py`` maps them to.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.server import Request

__all__ = [
    "MAX_BODY",
    "MAX_LIMIT",
    "BadRequest",
    "NotFound",
    "arg",
    "json_body",
    "parse_limit",
    "parse_since",
    "respond",
]

MAX_BODY = 64 * 1024
MAX_LIMIT = 500


class BadRequest(Exception):
    """The request itself is wrong: HTTP 400 with the reason."""


class NotFound(Exception):
    pass


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


def arg(request: Request, name: str) -> str | None:
    """A query argument's first value (``None`` when absent)."""
    values = request.args.get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, at most ``MAX_BODY`` bytes."""
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


def respond(request: IRequest, code: int, body: Any) -> bytes:
    """``body`` as the JSON answer, never cached, never sniffed as anything else."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")
