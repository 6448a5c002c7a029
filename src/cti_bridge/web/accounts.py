"""Logins and tokens for the web: the store's accounts, asked in the database pool.

The web knows tokens and principals; the store knows operators and password hashes. This
turns one into the other and the store's refusals into the web's (``auth.LoginRefused``,
``auth.LoginThrottled``). Every call runs in ``run`` (the node's bounded pool), never on
the reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, inlineCallbacks

from cti_bridge.store import Accounts as AccountStore
from cti_bridge.store import LoginRefused as StoreLoginRefused
from cti_bridge.store import LoginThrottled as StoreLoginThrottled
from cti_bridge.store import OperatorInfo

from .auth import LoginRefused, LoginThrottled, Principal

__all__ = ["Accounts", "principal_of"]

T = TypeVar("T")


class Runner(Protocol):
    def __call__(self, work: Callable[[], T]) -> Deferred[T]: ...


def principal_of(info: OperatorInfo) -> Principal:
    return Principal(
        operator_id=info.id,
        username=info.username,
        role=info.role,
        devices=tuple(info.devices),
        name=info.name,
    )


class Accounts:
    """``store`` is the store's accounts (``Store.accounts``)."""

    def __init__(self, store: AccountStore, run: Runner):
        self._store = store
        self._run = run

    @inlineCallbacks
    def login(self, username: str, password: str, source: str) -> Any:
        accounts = self._store

        def work() -> dict[str, Any]:
            info = accounts.verify_login(username, password, source)
            token = accounts.create_token(info.id)
            return {"token": token, "role": info.role, "username": info.username, "name": info.name}

        try:
            result = yield self._run(work)
        except StoreLoginThrottled as error:
            raise LoginThrottled(error.retry_after) from None
        except StoreLoginRefused:
            raise LoginRefused() from None
        return result

    @inlineCallbacks
    def resolve_token(self, token: str) -> Any:
        info = yield self._run(lambda: self._store.resolve_token(token))
        return None if info is None else principal_of(info)

    def valid_tokens(self, tokens: Collection[str]) -> Deferred[set[str]]:
        """Which of ``tokens`` still work: one query for all of the hub's screens."""
        asked = list(tokens)
        return self._run(lambda: self._store.valid_tokens(asked))

    @inlineCallbacks
    def logout(self, token: str) -> Any:
        yield self._run(lambda: self._store.revoke_token(token))

    @inlineCallbacks
    def operator_id_for(self, username: str) -> Any:
        info = yield self._run(lambda: self._store.get_operator(username))
        return None if info is None or not info.active else info.id
