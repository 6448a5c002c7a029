"""What the console's endpoints ask of the store, answered in the node's pool.

Call history is shared knowledge at a helpdesk: every operator may read it, and any
operator may read customers. Changing a call or making an agreement on it is for the
operators who talked on it, or supervisors (``rules.may_change_call``, docs/security.md):
being rung for a call somebody else answered is not enough. Pops (who is ringing *now*)
are private and only travel on the operator's topic, not through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred, inlineCallbacks

from cti_bridge.app.config import AgreementsConfig, CallHistory, DialerConfig
from cti_bridge.dialer.policy import Policy, business_deadline, site_day
from cti_bridge.store import CallNotFound, InvalidAnnotation, InvalidRecord, Store
from cti_bridge.store.ports import CallViewer
from cti_bridge.web.auth import Forbidden, Principal
from cti_bridge.web.http import BadRequest, NotFound

from .contacts import contact_request
from .customers import console_customer_context, console_search_customers
from .rules import (
    agreement_changes,
    agreement_request,
    check_patch,
    due_from,
    flagged_filter,
    may_change_call,
    may_handle_agreement,
    may_see_call,
    may_set_owner,
    service_hours,
)

__all__ = ["Console"]

T = TypeVar("T")


class Runner(Protocol):
    def __call__(self, work: Callable[[], T]) -> Deferred[T]: ...


class Console:
    def __init__(
        self,
        store: Store,
        run: Runner,
        clock: Callable[[], float] = time.time,
        *,
        policy: Policy | None = None,
        default_service_hours: float = AgreementsConfig().default_service_hours,
        call_history: CallHistory = "shared",
        ringing: Callable[[int], Collection[tuple[str, str]]] | None = None,
    ):
        self.store = store
        #: The calls on an operator's screen now (the pop engine's; ``(pbx, linkedid)``):
        #: theirs to read although the record may not name the ring yet.
        self._ringing = ringing
        self.run = run
        #: The node's clock (the reactor's ``seconds``): "now" and "today" of the lists.
        self.clock = clock
        #: The site's week (``[dialer]`` hours, zone, holidays): a default deadline is
        #: counted in it (``business_deadline``). ``None``: the default ``[dialer]``.
        self.policy = policy if policy is not None else DialerConfig().policy()
        #: ``[agreements] default_service_hours``: when the customer has no service level.
        self.default_service_hours = default_service_hours
        #: ``[web] call_history``: "shared" (every operator reads ended calls) or "own"
        #: (an operator reads only the calls they were involved in). Live calls are
        #: always only their operators' (``rules.may_see_call``, docs/security.md).
        self.call_history = call_history
        #: Called after an agreement was made or changed (the dialer's ``kick``: a
        #: callback made due now, or given a new window, is dialled without waiting
        #: for the next pass).
        self.agreement_listeners: list[Callable[[], object]] = []

    # -- calls ---------------------------------------------------------------------------

    def list_calls(
        self,
        principal: Principal,
        *,
        number: str | None,
        since: datetime | None,
        limit: int,
        outcome: str | None = None,
    ) -> Deferred[list[dict[str, Any]]]:
        queries = self.store.queries
        viewer = self._viewer(principal)
        return self.run(
            lambda: queries.list_calls(
                number=number, since=since, limit=limit, outcome=outcome, viewer=viewer
            )
        )

    def _may_see(self, principal: Principal, call: Mapping[str, Any]) -> bool:
        ringing = self._ringing
        mine = (
            () if ringing is None or principal.sees_everything else ringing(principal.operator_id)
        )
        return may_see_call(principal, call, self.call_history, mine)

    def _viewer(self, principal: Principal) -> CallViewer | None:
        """The list's filter for this principal: none for supervisors and admins."""
        if principal.sees_everything:
            return None
        return CallViewer(
            principal.operator_id, tuple(principal.devices), own=self.call_history == "own"
        )

    @inlineCallbacks
    def get_call(self, principal: Principal, call_id: int) -> Any:
        """The call, or ``None`` (404) when there is none or the principal may not see it:
        the same answer, so a colleague's live call does not show it exists."""
        try:
            call = yield self.run(lambda: self.store.queries.get_call(call_id))
        except CallNotFound:
            return None
        return call if self._may_see(principal, call) else None

    @inlineCallbacks
    def patch_call(self, principal: Principal, call_id: int, changes: Mapping[str, Any]) -> Any:
        check_patch(changes)
        queries = self.store.queries
        try:
            call = yield self.run(lambda: queries.get_call(call_id))
        except CallNotFound:
            raise NotFound("no such call") from None
        if not self._may_see(principal, call):
            raise NotFound("no such call")
        if not may_change_call(principal, call):
            raise Forbidden(
                "only the operator who answered this call (or a part of it, after a transfer)"
                " or a supervisor may change it"
            )
        try:
            updated = yield self.run(
                lambda: queries.patch_call(call_id, by_operator=principal.operator_id, **changes)
            )
        except InvalidAnnotation as error:
            raise BadRequest(str(error)) from None
        except CallNotFound:
            raise NotFound("no such call") from None
        return updated

    # -- contacts that are not calls -------------------------------------------------------
    # Any operator logs a mail, chat or visit for any customer, and reads a customer's
    # contacts: like the call history, they are the helpdesk's shared knowledge. The
    # operator who logs one is the one asking, never a field of the body.

    @inlineCallbacks
    def create_contact(self, principal: Principal, body: Mapping[str, Any]) -> Any:
        request = contact_request(body)
        log = self.store.contacts
        try:
            created = yield self.run(
                lambda: log.add_contact(
                    request["customer_id"],
                    request["channel"],
                    subject=request["subject"],
                    notes=request["notes"],
                    category=request["category"],
                    disposition=request["disposition"],
                    at=request["at"],
                    by_operator=principal.operator_id,
                )
            )
        except InvalidRecord as error:
            raise BadRequest(str(error)) from None
        return created

    def list_contacts(
        self, principal: Principal, customer_id: int, limit: int
    ) -> Deferred[list[dict[str, Any]]]:
        log = self.store.contacts
        return self.run(lambda: log.list_contacts(customer_id, limit))

    # -- customers and agreements ---------------------------------------------------------
    # The customer view has the pop's shape (customer, contracts, history, agreements,
    # scripts, upsell) so the page draws both with one renderer.

    def search_customers(
        self, principal: Principal, text: str, limit: int
    ) -> Deferred[list[dict[str, Any]]]:
        store = self.store
        return self.run(lambda: console_search_customers(store, text, limit))

    def customer_context(self, principal: Principal, customer_id: int) -> Deferred[Any]:
        store = self.store
        zone, history = self.policy.timezone, self.call_history
        return self.run(
            lambda: console_customer_context(
                store, customer_id, zone, principal=principal, history=history
            )
        )

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
            if not self._may_see(principal, call):
                raise BadRequest("call_id: no such call")
            if not may_change_call(principal, call):
                raise Forbidden(
                    "call_id: only the operator who answered this call (or a part of it, after"
                    " a transfer) or a supervisor may make its agreements"
                )
            if request["customer_id"] is None:
                request["customer_id"] = call.get("customer_id")
            if request["callback_number"] is None and request["kind"] == "callback":
                request["callback_number"] = call.get("caller_number")
            if request["queue"] is None:  # its operators may take the callback
                request["queue"] = call.get("queue")
        customer_id = request["customer_id"]
        if customer_id is not None:
            customer = yield self.run(lambda: store.customers.get_customer(customer_id))
            if customer is None:
                raise BadRequest("customer_id: no such customer")
        if request["kind"] == "callback" and request["callback_number"] is None:
            raise BadRequest("callback_number: a callback needs a number to call")
        if request["deadline"] is None:
            request["deadline"] = yield self._default_deadline(request)

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
                queue=request["queue"],
                due_at=request["due_at"],
            )
            return store.agreements.get_agreement(agreement_id)

        try:
            created = yield self.run(work)
        except InvalidRecord as error:
            raise BadRequest(str(error)) from None
        self._agreements_changed()
        return created

    @inlineCallbacks
    def _default_deadline(self, request: Mapping[str, Any]) -> Any:
        """The customer's service level (the best contract valid today in the site's
        zone; none: ``default_service_hours``) in business hours from when the
        agreement falls due (``rules.due_from``)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        contracts: list[dict[str, Any]] = []
        customer_id = request["customer_id"]
        if customer_id is not None:
            customers = self.store.customers
            contracts = yield self.run(lambda: customers.contracts_of(customer_id))
        today = now.astimezone(ZoneInfo(self.policy.timezone)).date()
        hours = service_hours(contracts, today, self.default_service_hours)
        return business_deadline(due_from(request, now), hours, self.policy)

    # Agreements are their owner's: an operator lists, reads and changes the ones they
    # own, and the one whose phone the dialer rang for its last attempt (after the
    # owner's grace, any operator of the queue: they must be able to read and close the
    # callback they are on); supervisors and admins all, and only they hand one to
    # another owner (docs/console.md). The customer view and pops keep showing a
    # customer's open ones.

    def _agreements_changed(self) -> None:
        for listener in self.agreement_listeners:
            listener()

    def _owner_id(self, username: str) -> Deferred[int | None]:
        accounts = self.store.accounts

        def work() -> int | None:
            found = accounts.get_operator(username)
            return None if found is None else found.id

        return self.run(work)

    @inlineCallbacks
    def list_agreements(
        self,
        principal: Principal,
        *,
        status: str | None,
        owner: str | None,
        due: str | None,
        customer_id: int | None,
        limit: int,
        flagged: str | None = None,
        kind: str | None = None,
        unowned: bool = False,
    ) -> Any:
        """``flagged`` as the query gives it (``true``/``false``), ``kind`` an agreement
        kind; 400 for anything else. ``unowned``: only those nobody owns (the pool every
        operator sees)."""
        only_flagged = flagged_filter(flagged)
        if unowned and owner is not None:
            raise BadRequest("owner and unowned=true exclude each other")
        if not principal.sees_everything and not unowned:
            if owner is not None and owner != principal.username:
                raise Forbidden(
                    "operators see their own agreements and those nobody owns; supervisors see all"
                )
            owner = principal.username
        owner_id = None
        if owner is not None:
            owner_id = yield self._owner_id(owner)
            if owner_id is None:
                raise BadRequest("owner: no such operator")
        now = datetime.fromtimestamp(self.clock(), UTC)
        book = self.store.agreements
        try:
            rows = yield self.run(
                lambda: book.list_agreements(
                    status=status,
                    owner_operator_id=owner_id,
                    customer_id=customer_id,
                    due=due,
                    now=now,
                    today=site_day(now, self.policy.timezone),
                    flagged=only_flagged,
                    kind=kind,
                    unowned=unowned,
                    limit=limit,
                )
            )
        except InvalidRecord as error:
            raise BadRequest(str(error)) from None
        return rows

    @inlineCallbacks
    def get_agreement(self, principal: Principal, agreement_id: int) -> Any:
        book = self.store.agreements
        found = yield self.run(lambda: book.get_agreement(agreement_id))
        if found is None:
            raise NotFound("no such agreement")
        if not may_handle_agreement(principal, found):
            raise Forbidden(
                "operators see their own agreements and those nobody owns; supervisors see all"
            )
        return found

    @inlineCallbacks
    def patch_agreement(
        self, principal: Principal, agreement_id: int, body: Mapping[str, Any]
    ) -> Any:
        changes = agreement_changes(body)
        found = yield self.get_agreement(principal, agreement_id)  # 404, 403
        if "owner" in changes:
            owner = changes.pop("owner")
            if not may_set_owner(principal, found, owner):
                raise Forbidden(
                    "only supervisors hand an agreement to another owner"
                    " (an operator may take one that nobody owns)"
                )
            owner_id = None
            if owner is not None:
                owner_id = yield self._owner_id(owner)
                if owner_id is None:
                    raise BadRequest("owner: no such operator")
            changes["owner_operator_id"] = owner_id
        book = self.store.agreements

        def work() -> dict[str, Any] | None:
            book.update_agreement(agreement_id, changes, by_operator=principal.operator_id)
            return book.get_agreement(agreement_id)

        try:
            updated = yield self.run(work)
        except InvalidRecord as error:
            raise BadRequest(str(error)) from None
        self._agreements_changed()
        return updated
