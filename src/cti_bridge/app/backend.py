"""What the web asks of the rest of cti-bridge, answered from the store in a thread pool.

The web layer knows tokens and JSON; this module knows the store and turns its results
and exceptions into the web's. All database work runs in ``pool`` (bounded), never on
the reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from cti_bridge.store import CallNotFound, InvalidAnnotation, InvalidRecord, OperatorInfo, Store
from cti_bridge.store import LoginRefused as StoreLoginRefused
from cti_bridge.store import LoginThrottled as StoreLoginThrottled
from cti_bridge.web.api import BadRequest, NotFound
from cti_bridge.web.auth import Forbidden, LoginRefused, LoginThrottled, Principal

from .console import (
    agreement_request,
    console_customer_context,
    console_search_customers,
)

T = TypeVar("T")

PATCHABLE = ("notes", "category", "disposition")


def principal_of(info: OperatorInfo) -> Principal:
    return Principal(
        operator_id=info.id,
        username=info.username,
        role=info.role,
        devices=tuple(info.devices),
        name=info.name,
    )


def involved(principal: Principal, call: Mapping[str, Any]) -> bool:
    """Did this operator ring, answer or talk on the call?"""
    name = principal.username
    if call.get("answered_by") == name or name in call.get("rang", ()):
        return True
    return any(s.get("operator") == name for s in call.get("segments", ()))


class StoreBackend:
    def __init__(
        self,
        reactor: Any,
        pool: ThreadPool,
        store: Store,
        health: Callable[[], dict[str, Any]],
        metrics: Callable[[], bytes],
    ):
        self._reactor = reactor
        self._pool = pool
        self.store = store
        self._health = health
        self._metrics = metrics

    def run(self, work: Callable[[], T]) -> Deferred[T]:
        """Run blocking store work in the bounded pool."""
        return deferToThreadPool(self._reactor, self._pool, work)

    # -- accounts ------------------------------------------------------------------------

    @inlineCallbacks
    def login(self, username: str, password: str, source: str) -> Any:
        accounts = self.store.accounts

        def work() -> dict[str, Any]:
            info = accounts.verify_login(username, password, source)
            token = accounts.create_token(info.id)
            return {"token": token, "role": info.role, "username": info.username, "name": info.name}

        try:
            result = yield self.run(work)
        except StoreLoginThrottled as error:
            raise LoginThrottled(error.retry_after) from None
        except StoreLoginRefused:
            raise LoginRefused() from None
        return result

    @inlineCallbacks
    def resolve_token(self, token: str) -> Any:
        info = yield self.run(lambda: self.store.accounts.resolve_token(token))
        return None if info is None else principal_of(info)

    def valid_tokens(self, tokens: Collection[str]) -> Deferred[set[str]]:
        """Which of ``tokens`` still work: one query for all of the hub's screens."""
        asked = list(tokens)
        return self.run(lambda: self.store.accounts.valid_tokens(asked))

    @inlineCallbacks
    def logout(self, token: str) -> Any:
        yield self.run(lambda: self.store.accounts.revoke_token(token))

    @inlineCallbacks
    def operator_id_for(self, username: str) -> Any:
        info = yield self.run(lambda: self.store.accounts.get_operator(username))
        return None if info is None or not info.active else info.id

    # -- calls ---------------------------------------------------------------------------

    def list_calls(
        self, principal: Principal, *, number: str | None, since: datetime | None, limit: int
    ) -> Deferred[list[dict[str, Any]]]:
        # Call history is shared knowledge at a helpdesk: every operator may read it.
        # Pops (who is ringing *now*) are private and only travel on the operator's topic.
        queries = self.store.queries
        return self.run(lambda: queries.list_calls(number=number, since=since, limit=limit))

    @inlineCallbacks
    def get_call(self, principal: Principal, call_id: int) -> Any:
        try:
            call = yield self.run(lambda: self.store.queries.get_call(call_id))
        except CallNotFound:
            return None
        return call

    @inlineCallbacks
    def patch_call(self, principal: Principal, call_id: int, changes: Mapping[str, Any]) -> Any:
        unknown = sorted(set(changes) - set(PATCHABLE))
        if unknown:
            raise BadRequest(f"cannot change {', '.join(unknown)}; only {', '.join(PATCHABLE)}")
        if not changes:
            raise BadRequest(f"nothing to change; give one of {', '.join(PATCHABLE)}")
        for name, value in changes.items():
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"{name} must be a string or null")
        queries = self.store.queries
        try:
            call = yield self.run(lambda: queries.get_call(call_id))
        except CallNotFound:
            raise NotFound("no such call") from None
        if not principal.sees_everything and not involved(principal, call):
            raise Forbidden("only operators who handled this call (or supervisors) may change it")
        try:
            updated = yield self.run(
                lambda: queries.patch_call(call_id, by_operator=principal.operator_id, **changes)
            )
        except InvalidAnnotation as error:
            raise BadRequest(str(error)) from None
        except CallNotFound:
            raise NotFound("no such call") from None
        return updated

    # == operator console (issue 4, console workstream): customers and agreements =========
    # Customer search and the customer view answer the console's search screen; the
    # customer view has the pop's shape (customer, contracts, history, agreements, scripts,
    # upsell) so the page draws both with one renderer. Any operator may read customers
    # (shared helpdesk knowledge, like the call history).

    def search_customers(
        self, principal: Principal, text: str, limit: int
    ) -> Deferred[list[dict[str, Any]]]:
        store = self.store
        return self.run(lambda: console_search_customers(store, text, limit))

    def customer_context(self, principal: Principal, customer_id: int) -> Deferred[Any]:
        store = self.store
        return self.run(lambda: console_customer_context(store, customer_id))

    @inlineCallbacks
    def create_agreement(self, principal: Principal, body: Mapping[str, Any]) -> Any:
        request = agreement_request(body)
        store = self.store
        call_id = request["call_id"]
        if call_id is not None:
            try:
                call = yield self.run(lambda: store.queries.get_call(call_id))
            except CallNotFound:
                raise BadRequest("call_id: no such call") from None
            if not principal.sees_everything and not involved(principal, call):
                raise Forbidden("only operators who handled this call may make its agreements")
            if request["customer_id"] is None:
                request["customer_id"] = call.get("customer_id")
            if request["callback_number"] is None and request["kind"] == "callback":
                request["callback_number"] = call.get("caller_number")
        customer_id = request["customer_id"]
        if customer_id is not None:
            customer = yield self.run(lambda: store.customers.get_customer(customer_id))
            if customer is None:
                raise BadRequest("customer_id: no such customer")
        if request["kind"] == "callback" and request["callback_number"] is None:
            raise BadRequest("callback_number: a callback needs a number to call")

        def work() -> dict[str, Any] | None:
            agreement_id = store.agreements.add_agreement(
                request["kind"],
                customer_id=request["customer_id"],
                call_id=request["call_id"],
                owner_operator_id=principal.operator_id,
                deadline=request["deadline"],
                callback_number=request["callback_number"],
                window=request["window"],
                notes=request["notes"],
                by_operator=principal.operator_id,
            )
            return store.agreements.get_agreement(agreement_id)

        try:
            created = yield self.run(work)
        except InvalidRecord as error:
            raise BadRequest(str(error)) from None
        return created

    # == end of the operator console block ================================================

    # -- health ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._health()

    def metrics(self) -> bytes:
        return self._metrics()
