"""What every HTTP handler shares: the JSON in and out, the query checks, the errors.

The features' handlers (``console/``, ``agi/``, ...) and the web's own (login, health)
use these, so one request reads, fails and answers the same wherever it is handled.
Raising ``BadRequest``/``NotFound`` (or ``auth.AuthError``/``auth.Forbidden``) from a
handler gives the JSON error answer ``web/api.py`` maps them to.

``BoundedRequest`` (the daemon's ``Site`` makes every request one) keeps a body to
``MAX_BODY`` bytes while it arrives: a larger one is dropped as it comes, never stored,
and answered 413 without reaching a handler.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from http import HTTPStatus
from io import BytesIO
from typing import Any

from twisted.web.http import RESPONSES
from twisted.web.iweb import IRequest
from twisted.web.server import Request

__all__ = [
    "MAX_BODY",
    "MAX_LIMIT",
    "BadRequest",
    "BoundedRequest",
    "NotFound",
    "PayloadTooLarge",
    "arg",
    "json_body",
    "parse_id",
    "parse_limit",
    "parse_since",
    "parse_utc",
    "respond",
]

MAX_BODY = 64 * 1024
MAX_LIMIT = 500


class BadRequest(Exception):
    """The request itself is wrong: HTTP 400 with the reason."""


class NotFound(Exception):
    pass


class PayloadTooLarge(Exception):
    """A body over ``MAX_BODY``: HTTP 413."""


def parse_utc(value: str, name: str) -> datetime:
    """An ISO 8601 date or time as an aware UTC time (no offset: UTC). Out of range once
    in UTC (``9999-12-31T23:59-23:59``, ``0001-01-01T00:00+23:59``) is a 400 like junk,
    never an ``OverflowError`` further down."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name} must be an ISO 8601 date or time") from None


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    if len(value) > 40:
        raise BadRequest("since is too long")
    return parse_utc(value, "since")


def parse_id(value: str, what: str) -> int:
    """A path's id: ASCII digits only (``isdigit`` and ``int`` take ``١٢``), at most 18
    of them (a 64-bit column), from 1; anything else is no such ``what`` (404)."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18 or int(value) < 1:
        raise NotFound(f"no such {what}")
    return int(value)


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
        raise PayloadTooLarge(f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    except RecursionError:  # [[[[... : 64 KiB of brackets is deeper than Python recurses
        raise BadRequest("the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def respond(request: IRequest, code: int, body: Any) -> bytes:
    """``body`` as the JSON answer, never cached, never sniffed as anything else, with
    the status's reason phrase (Twisted has none for 429: ``429 Unknown Status``)."""
    request.setResponseCode(code, RESPONSES.get(code) or _phrase(code))
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _phrase(code: int) -> bytes | None:
    try:
        return HTTPStatus(code).phrase.encode("ascii")
    except ValueError:
        return None


class BoundedRequest(Request):
    """A request whose body is kept only up to ``max_body`` bytes.

    Twisted stores a whole body, however large, before any handler sees it (in a
    temporary file past 100 kB). Here a ``Content-Length`` over the limit, or a chunked
    body that grows past it, is dropped as it arrives and the request is answered 413 in
    JSON without being dispatched: memory stays bounded whatever a client sends.
    """

    max_body = MAX_BODY
    _body_length = 0
    _too_large = False

    def gotLength(self, length: int | None) -> None:
        self._body_length = 0
        self._too_large = length is not None and length > self.max_body
        # In memory: never more than ``max_body`` bytes are kept.
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._too_large:
            return
        self._body_length += len(data)
        if self._body_length > self.max_body:
            self._too_large = True
            self.content = BytesIO()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        if not self._too_large:
            super().process()
            return
        self.site = self.channel.site  # type: ignore[attr-defined]
        self.write(respond(self, 413, {"error": f"the body is over {self.max_body} bytes"}))
        self.finish()
