"""What the tests of a room's routes share: the node's pool without threads, a request
that keeps what it wrote, and the web's logins reduced to tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.web.server import Request

from cti_bridge.web.auth import Principal

T = TypeVar("T")


def at_once(work: Callable[[], T]) -> Deferred[T]:
    """The node's pool, without threads: the work runs as it is handed over."""
    return maybeDeferred(work)


class RecordingRequest(Request):
    """A request that keeps every byte of its answer's body in ``body``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body = b""

    def write(self, data: bytes) -> None:
        self.body += data
        super().write(data)


class Logins:
    """The web's logins, as far as the routes need them: tokens to principals."""

    def __init__(self) -> None:
        self.tokens: dict[str, Principal] = {}

    def resolve_token(self, token: str) -> Deferred[Principal | None]:
        return succeed(self.tokens.get(token))

    def login(self, username: str, password: str, source: str) -> Deferred[dict[str, Any]]:
        raise NotImplementedError

    def logout(self, token: str) -> Deferred[None]:
        raise NotImplementedError
