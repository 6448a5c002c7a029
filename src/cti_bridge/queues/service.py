"""The supervisors' live view on the node: the views with today's figures and the calls'
record ids, the agents' roster, and pausing an operator on the PBX.

``Supervision`` lives on the reactor; blocking work (the accounts, the record ids) runs in
the node's pool. The KPI room's part (``kpis``) is looked up at each use, so it may be
installed after this room or not at all (then no ``today``, and null totals).

Pause: ``QueuePause`` (``Queue``, ``Interface``, ``Paused``, ``Reason``) for each of the
operator's queue memberships on each PBX whose link is up. The board shows the pause
when the PBX says so (``QueueMemberPause``), never before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import structlog
from twisted.internet.defer import Deferred, DeferredList, gatherResults, succeed
from twisted.python.failure import Failure

from cti_bridge.ami.protocol import ActionResult

from .live import Account, LiveView
from .ports import CallIds, OperatorTotals, TodayFigures

if TYPE_CHECKING:
    from .relay import RelayedView

__all__ = ["NotAMember", "PauseRefused", "PbxDown", "Supervision"]

log = structlog.get_logger("cti_bridge.queues.supervision")

SendAction = Callable[..., Deferred[ActionResult]]
Runner = Callable[[Callable[[], Any]], Deferred[Any]]

#: Seconds a ``QueuePause`` answer may take.
PAUSE_TIMEOUT = 10.0


class PbxDown(Exception):
    """No PBX link is up: nothing can be paused (HTTP 503)."""


class NotAMember(Exception):
    """The operator is a member of no queue (HTTP 409)."""


class PauseRefused(Exception):
    """The PBX refused every ``QueuePause`` (HTTP 502)."""


class Supervision:
    def __init__(
        self,
        view: LiveView,
        run: Runner,
        *,
        load_accounts: Callable[[], Iterable[Account]],
        call_ids: CallIds | None = None,
        kpis: Callable[[], object | None] = lambda: None,
        links: Mapping[str, tuple[Callable[[], bool], SendAction]] | None = None,
    ):
        self.view = view
        self._run = run
        self._load_accounts = load_accounts
        self._call_ids = call_ids
        self._kpis = kpis
        #: Per PBX: (is the link up, its send_action).
        self._links = dict(links or {})
        self.roster: dict[str, Account] = {}
        self.ids: dict[tuple[str, str], int] = {}
        self.today: dict[str, dict[str, Any]] = {}
        self.totals: dict[str, dict[str, Any]] = {}
        #: The queues and agents of the PBXs this node does not own, as their owners
        #: pushed them (``relay.py``); ``None``: this node owns every PBX it knows.
        self.relay: RelayedView | None = None

    # -- the ports ------------------------------------------------------------------------

    def figures(self) -> TodayFigures | None:
        part = self._kpis()
        return part if part is not None and hasattr(part, "today") else None

    def operator_totals(self) -> OperatorTotals | None:
        part = self._kpis()
        return part if part is not None and hasattr(part, "operators_today") else None

    # -- reads ----------------------------------------------------------------------------

    def reload_roster(self) -> Deferred[dict[str, Account]]:
        def loaded(accounts: list[Account]) -> dict[str, Account]:
            self.roster = {a.operator: a for a in sorted(accounts, key=lambda a: a.operator)}
            return self.roster

        loading: Deferred[list[Account]] = self._run(lambda: list(self._load_accounts()))
        return loading.addCallback(loaded)

    def resolve_ids(self) -> Deferred[bool]:
        """Look up the record ids of the waiting calls that have none yet; True when some
        were found."""
        if self._call_ids is None:
            return succeed(False)
        missing = {
            pbx: [linkedid for linkedid in linkedids if (pbx, linkedid) not in self.ids]
            for pbx, linkedids in self.view.linkedids().items()
        }
        missing = {pbx: ids for pbx, ids in missing.items() if ids}
        if not missing:
            return succeed(False)
        lookup = self._call_ids

        def work() -> dict[tuple[str, str], int]:
            found: dict[tuple[str, str], int] = {}
            for pbx, linkedids in missing.items():
                found.update({(pbx, k): v for k, v in lookup(pbx, linkedids).items()})
            return found

        def found(ids: dict[tuple[str, str], int]) -> bool:
            self.ids.update(ids)
            waiting = {(p, k) for p, ks in self.view.linkedids().items() for k in ks}
            for key in [key for key in self.ids if key not in waiting]:
                del self.ids[key]
            return bool(ids)

        looking: Deferred[dict[tuple[str, str], int]] = self._run(work)
        return looking.addCallback(found)

    def refresh_today(self) -> Deferred[None]:
        """Today's figures for every queue and agent, from the KPI part (if any)."""
        waits: list[Deferred[Any]] = []
        figures = self.figures()
        if figures is not None:
            names = sorted(
                {q["name"] for q in self.view.queues(self.ids)}
                | ({q["name"] for q in self.relay.queues()} if self.relay is not None else set())
            )

            def got_today(today: dict[str, dict[str, Any]]) -> None:
                self.today = dict(today)

            waits.append(figures.today(names).addCallback(got_today))
        totals = self.operator_totals()
        if totals is not None:

            def got_totals(by_operator: dict[str, dict[str, Any]]) -> None:
                self.totals = dict(by_operator)

            waits.append(totals.operators_today().addCallback(got_totals))
        done: Deferred[Any] = gatherResults(waits, consumeErrors=True)
        return done.addCallbacks(lambda _: None, self._today_failed)

    @staticmethod
    def _today_failed(failure: Failure) -> None:
        log.error("cannot read today's figures", error=failure.getErrorMessage())

    def queue_json(self, pbx: str, name: str) -> dict[str, Any]:
        queue = self.view.queue(pbx, name, self.ids)
        if self.figures() is not None:
            queue["today"] = self.today.get(name)
        return queue

    def agent_json(self, account: Account) -> dict[str, Any]:
        agent = self.view.agent(account)
        if self.operator_totals() is None:  # nobody counts: unknown, not zero
            agent["calls_today"] = agent["talk_seconds_today"] = None
        else:  # counted, and not among those who answered today: none yet
            totals = self.totals.get(account.operator, {})
            agent["calls_today"] = totals.get("calls_today", 0)
            agent["talk_seconds_today"] = totals.get("talk_seconds_today", 0.0)
        return agent

    def queues(self) -> Deferred[list[dict[str, Any]]]:
        """Every queue now, with today's figures and the waiting calls' ids fresh (a
        failed look-up of either leaves them as they were)."""
        ids = self.resolve_ids().addErrback(self._ids_failed)
        waits: Deferred[Any] = gatherResults([ids, self.refresh_today()])

        def build(_: object) -> list[dict[str, Any]]:
            relayed = [] if self.relay is None else self.relay.relayed()
            local = [
                self.queue_json(q["pbx"], q["name"])
                for q in self.view.queues(self.ids)
                if q["pbx"] not in relayed
            ]
            if self.relay is None:
                return local
            figures = self.figures() is not None
            for queue in (relayed_queues := self.relay.queues(relayed)):
                if figures:  # read here as the owner reads it: the same records
                    queue["today"] = self.today.get(queue["name"])
            return sorted(local + relayed_queues, key=lambda q: (q["pbx"], q["name"]))

        return waits.addCallback(build)

    def _agent_now(self, account: Account) -> dict[str, Any]:
        """Relayed when this node owns none of the PBXs (the owner's view), else its own."""
        relay = self.relay
        if relay is not None and relay.pbxs and len(relay.relayed()) == len(relay.pbxs):
            agent = relay.agent(account.operator)
            if agent is not None:
                if self.operator_totals() is not None:  # the same records as the owner's
                    totals = self.totals.get(account.operator, {})
                    agent["calls_today"] = totals.get("calls_today", 0)
                    agent["talk_seconds_today"] = totals.get("talk_seconds_today", 0.0)
                return agent
            agent = self.agent_json(account)  # never pushed: nowhere on a PBX
            if not all(relay.is_live(pbx) for pbx in relay.pbxs):
                agent["live"] = False
            return agent
        return self.agent_json(account)

    @staticmethod
    def _ids_failed(failure: Failure) -> bool:
        log.error("cannot look up the waiting calls' ids", error=failure.getErrorMessage())
        return False

    def agents(self) -> Deferred[list[dict[str, Any]]]:
        """Every active operator account now (the roster read again)."""
        loading = self.reload_roster()
        loading.addCallback(lambda _: self.refresh_today())
        return loading.addCallback(
            lambda _: [self._agent_now(account) for account in self.roster.values()]
        )

    def agent(self, username: str) -> Deferred[dict[str, Any] | None]:
        """One active operator now (the roster read again); ``None``: no such account."""
        loading = self.reload_roster()
        loading.addCallback(lambda _: self.refresh_today())

        def build(_: object) -> dict[str, Any] | None:
            account = self.roster.get(username)
            return None if account is None else self._agent_now(account)

        return loading.addCallback(build)

    # -- pause ----------------------------------------------------------------------------

    def pause(self, username: str, reason: str | None) -> Deferred[list[str]]:
        """``reason`` None: unpause. The queues the PBX said yes for, by name."""
        up = {pbx: send for pbx, (is_up, send) in self._links.items() if is_up()}
        if not up:
            raise PbxDown("the PBX link is down")
        memberships = {
            pbx: found for pbx, found in self.view.memberships(username).items() if pbx in up
        }
        if not memberships:
            raise NotAMember(f"{username} is a member of no queue")
        sent: list[Deferred[ActionResult]] = []
        asked: list[str] = []
        for pbx, members in sorted(memberships.items()):
            for queue, interface in members:
                headers = {
                    "Queue": queue,
                    "Interface": interface,
                    "Paused": "false" if reason is None else "true",
                }
                if reason is not None:
                    headers["Reason"] = reason
                sent.append(up[pbx]("QueuePause", headers, timeout=PAUSE_TIMEOUT))
                asked.append(queue)
        log.info(
            "pausing" if reason is not None else "unpausing",
            operator=username,
            reason=reason,
            queues=asked,
        )

        def answered(results: list[tuple[bool, Any]]) -> list[str]:
            done = [queue for queue, (ok, _) in zip(asked, results, strict=True) if ok]
            for queue, (ok, failure) in zip(asked, results, strict=True):
                if not ok:
                    log.warning(
                        "QueuePause refused",
                        operator=username,
                        queue=queue,
                        error=failure.getErrorMessage(),
                    )
            if not done:
                raise PauseRefused("the PBX refused the pause")
            return sorted(set(done))

        return DeferredList(sent, consumeErrors=True).addCallback(answered)
