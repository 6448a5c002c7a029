"""The callback dialer on the reactor: passes over the due callbacks, one Originate per
attempt, each attempt followed to its outcome (docs/dialer.md).

A pass (every ``[dialer] pass_seconds``, or soon after :meth:`DialerService.kick`; one
at a time) reads the due callbacks from the ``CallbackBook`` and asks the policy about
each: ``Over`` is flagged, a later ``Dial`` rescheduled, a ``Dial`` now goes to the
operators the policy may ring (``OperatorBoard``). The attempt is then *claimed* in the
store, committed, in the node's pool, and only after that is the ``Originate`` sent: a
claim that fails or loses a race sends nothing, so two nodes on one database never both
dial it. The attempt machine (``attempt.py``) follows the call from the PBX's events to
its outcome; the outcome is stored with the next attempt's time from the policy, and a
flagged agreement goes to the supervisors (``agreement_flagged``).

What can lose an outcome - a link that drops, no ``OriginateResponse``, a restart - is
settled from the PBX: ``Status`` (with the ``CTI_*`` variables) finds the call or not;
live, it is followed on; gone, the attempt ends ``unknown`` and the policy decides when
to try again (never at once). That happens after every (re)connect of a PBX link (so at
start-up too), and for attempts older than :meth:`DialerService.stale_after` in a sweep
every ``SWEEP_SECONDS`` (the watchdog: it also finds the attempts of a node that died).
A finished attempt the store could not take is kept and written again on each pass.

With several nodes (``fences``: the node's PBX ownership) a callback is dialled only on
a PBX this node owns, and its claim and its outcome are written with the node's fencing
token for that PBX: a stale token (another node took the PBX over) is refused by the
store (``FenceRefused``), nothing is dialled, the node gives the PBX up, and an outcome
it can no longer write is left to the new owner, which settles the open attempt from the
PBX as after any restart.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import structlog
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from cti_bridge.ami.client import AMIClient
from cti_bridge.ami.originate import (
    OriginateNotSent,
    OriginateOutcomeUnknown,
    OriginateRefused,
    OriginateRequest,
    OriginateResult,
)
from cti_bridge.ami.parser import Message
from cti_bridge.bus.topics import SUPERVISORS_TOPIC
from cti_bridge.lease import FenceRefused, Fences

from .attempt import CLAIMED, OUTCOME, RESOLVE, CallbackAttempt, find_call
from .policy import (
    Agreement,
    Attempt,
    Dial,
    InProgress,
    OperatorState,
    Over,
    Policy,
    decide,
    who_may_ring,
)
from .ports import CallbackBook, DueCallback, OpenAttempt, OperatorBoard
from .request import caller_id, dial_number, operator_channel, originate_variables

if TYPE_CHECKING:
    from cti_bridge.app.config import DialerConfig
    from cti_bridge.app.node import Node
    from cti_bridge.bus import Bus

__all__ = ["DialerService", "PassReport"]

log = structlog.get_logger("cti_bridge.dialer")
T = TypeVar("T")

#: Due callbacks read per pass (soonest first; the rest wait for the next pass).
PASS_LIMIT = 100
#: Nobody may be rung (or no device, or no PBX link): look again this much later.
NOBODY_DELAY = timedelta(seconds=30)
#: How long the customer's leg may ring in the callback context (its ``Dial`` timeout
#: is 30 s in dialplans/helpdesk.conf; this leaves room for a slower one).
CUSTOMER_RING_SECONDS = 90.0
#: Beyond the operator's and the customer's ring time, before an attempt is stale.
STALE_MARGIN_SECONDS = 30.0
#: How often open attempts are checked for staleness (the watchdog).
SWEEP_SECONDS = 30.0
#: The ``Status`` action's time limit (it lists every channel of the PBX).
STATUS_TIMEOUT = 20.0
#: An agreement without a deadline: the policy looks this far ahead.
NO_DEADLINE = timedelta(days=400)
#: Why a claim was not made.
NO_DEVICE, LOST = "no device", "lost"
#: The events the attempts are followed by (the link may skip every other one).
FOLLOWED_EVENTS = frozenset({"Newchannel", "DialBegin", "DialEnd", "Hangup", "OriginateResponse"})


class Runner(Protocol):
    """Blocking work off the reactor (``Node.run``)."""

    def __call__(self, work: Callable[[], T]) -> Deferred[T]: ...


@dataclass
class PassReport:
    """What one pass did, agreement ids by what happened to them."""

    due: int = 0
    dialled: list[int] = field(default_factory=list)
    rescheduled: list[int] = field(default_factory=list)
    flagged: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # due, left as they are (no PBX link)
    failed: list[int] = field(default_factory=list)  # a store error: nothing dialled


@dataclass(eq=False)
class _Follow:
    """An attempt being followed on ``pbx``."""

    pbx: str
    machine: CallbackAttempt
    operator: str | None
    started_at: datetime
    #: The due callback it was dialled for; ``None``: found open in the store.
    callback: DueCallback | None = None
    #: The first-leg Uniqueid it is filed under (``None``: not known yet).
    filed_as: str | None = None


@dataclass(frozen=True)
class _Finish:
    """A finished attempt, until the store has taken it."""

    pbx: str
    agreement_id: int
    number: int
    outcome: str
    detail: str | None
    at: datetime
    next_attempt_at: datetime | None
    flag: str | None


class _Listener:
    """The dialer's ear on one PBX link (an ``AMIListener``)."""

    wanted_events = FOLLOWED_EVENTS

    def __init__(self, service: DialerService, pbx: str) -> None:
        self._service = service
        self._pbx = pbx

    def ami_event(self, msg: Message, received_at: float) -> None:
        self._service._event(self._pbx, msg)

    def ami_resync(self, snapshot: object, received_at: float) -> None:
        self._service._pbx_ready(self._pbx)

    def ami_link_lost(self, reason: str, at: float) -> None:
        self._service._pbx_lost(self._pbx)


class DialerService:
    """The dialer of one node. Public API: :meth:`for_node`, :meth:`start`,
    :meth:`stop`, :meth:`kick`, :meth:`pass_once`, :meth:`status`."""

    def __init__(
        self,
        *,
        reactor: Any,
        config: DialerConfig,
        book: CallbackBook,
        board: Callable[[], OperatorBoard | None],
        clients: Mapping[str, AMIClient],
        bus: Bus,
        run: Runner,
        devices: Callable[[str], Sequence[str]],
        node_name: str,
        region: str,
        fences: Fences | None = None,
    ) -> None:
        self._reactor = reactor
        self._fences = fences
        self.config = config
        self.policy: Policy = config.policy()
        self._book = book
        self._board = board
        self._clients = clients
        self._bus = bus
        self._run = run
        self._devices = devices
        self.node_name = node_name
        self._region = region
        self.listeners = {pbx: _Listener(self, pbx) for pbx in clients}

        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._kick_call: IDelayedCall | None = None
        self._stopped = False
        self._passing: Deferred[PassReport] | None = None
        #: Waiters of the pass after the current one (``None``: none wanted).
        self._next_waiters: list[Deferred[PassReport]] | None = None
        self._last_sweep = float("-inf")
        # Attempts followed: by (agreement, number); by first leg per PBX; by ActionID.
        self._follows: dict[tuple[int, int], _Follow] = {}
        self._by_leg: dict[str, dict[str, _Follow]] = {pbx: {} for pbx in clients}
        self._by_action: dict[tuple[str, str], _Follow] = {}
        self._unfinished: dict[tuple[int, int], _Finish] = {}
        self._writing: set[tuple[int, int]] = set()
        self._work: set[Deferred[Any]] = set()
        # Figures.
        self._passes = 0
        self._originates = 0
        self._outcomes: Counter[str] = Counter()
        self._store_errors = 0
        self._due_backlog = 0
        self._last_pass_at: datetime | None = None
        self._last_error: str | None = None

    @classmethod
    def for_node(cls, node: Node) -> DialerService:
        """The dialer on ``node``'s reactor, store, bus and PBX links; the operators'
        states from the ``members`` part (queues room) once it is there."""
        store = node.store

        def board() -> OperatorBoard | None:
            part = node.parts.get("members")
            return cast("OperatorBoard", part) if hasattr(part, "operator_states") else None

        def devices(username: str) -> Sequence[str]:
            operator = store.accounts.get_operator(username)
            return () if operator is None or not operator.active else operator.devices

        return cls(
            reactor=node.reactor,
            config=node.config.dialer,
            book=store.agreements,
            board=board,
            clients=node.clients,
            bus=node.bus,
            run=node.run,
            devices=devices,
            node_name=node.config.node.name,
            region=node.config.phone.default_region,
            fences=node.fences,
        )

    # -- public ----------------------------------------------------------------------------

    def start(self) -> None:
        """Passes every ``pass_seconds``, the first one now. Open attempts are resolved
        as each PBX link comes up (its resync)."""
        self._stopped = False
        if not self._loop.running:
            self._loop.start(self.config.pass_seconds, now=True)

    def stop(self) -> Deferred[None]:
        """No more passes; fires when the pass and the store writes under way are done.
        Attempts still ringing stay open in the store: the next start resolves them."""
        self._stopped = True
        if self._loop.running:
            self._loop.stop()
        if self._kick_call is not None and self._kick_call.active():
            self._kick_call.cancel()
        self._kick_call = None
        pending = [d for d in self._work if not d.called]
        if self._passing is not None:
            pending.append(self._passing)
        done: Deferred[None] = Deferred()
        DeferredList(pending, consumeErrors=True).addBoth(lambda _: done.callback(None))
        return done

    @property
    def running(self) -> bool:
        return bool(self._loop.running)

    def kick(self) -> None:
        """Run a pass soon (an agreement changed): on the next reactor turn, or right
        after the pass under way. Nothing once stopped."""
        if self._stopped:
            return
        if self._passing is not None:
            if self._next_waiters is None:
                self._next_waiters = []
            return
        if self._kick_call is None or not self._kick_call.active():
            self._kick_call = self._reactor.callLater(0, self._kicked)

    def pass_once(self) -> Deferred[PassReport]:
        """One pass, started now, or after the one under way; fires with its report
        (never fails: errors are logged and counted)."""
        d: Deferred[PassReport] = Deferred()
        if self._passing is not None:
            if self._next_waiters is None:
                self._next_waiters = []
            self._next_waiters.append(d)
            return d
        self._begin([d])
        return d

    def stale_after(self) -> float:
        """Seconds after its start when an open attempt is stale: the operator's ring,
        the customer's ring and a margin."""
        return self.config.operator_ring_seconds + CUSTOMER_RING_SECONDS + STALE_MARGIN_SECONDS

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: ``degraded`` while finished attempts wait for the store."""
        return {
            "status": "degraded" if self._unfinished else "ok",
            "running": self.running,
            "node": self.node_name,
            "passes": self._passes,
            "last_pass_at": _iso(self._last_pass_at),
            "due_backlog": self._due_backlog,
            "pbx": self._pbx(),
            "operator_board": self._board() is not None,
            "originates": self._originates,
            "attempts": dict(sorted(self._outcomes.items())),
            "in_flight": [
                {
                    "agreement_id": f.machine.agreement_id,
                    "number": f.machine.number,
                    "state": f.machine.state,
                    "pbx": f.pbx,
                    "operator": f.operator,
                    "channel_id": f.machine.channel_id,
                    "started_at": _iso(f.started_at),
                }
                for f in self._follows.values()
            ],
            "unfinished": len(self._unfinished),
            "store_errors": self._store_errors,
            "last_error": self._last_error,
        }

    # -- passes ----------------------------------------------------------------------------

    def _tick(self) -> Deferred[PassReport]:
        return self.pass_once()

    def _kicked(self) -> None:
        self._kick_call = None
        self.pass_once()

    def _begin(self, waiters: list[Deferred[PassReport]]) -> None:
        # Marked as under way before it starts: with a store that answers at once the
        # whole pass runs inside fromCoroutine.
        under_way: Deferred[PassReport] = Deferred()
        self._passing = under_way

        def ended(result: PassReport | Failure) -> None:
            self._passing = None
            if isinstance(result, Failure):
                self._error("dialer pass failed", result)
                result = PassReport()
            for waiter in (*waiters, under_way):
                waiter.callback(result)
            follow_up, self._next_waiters = self._next_waiters, None
            if follow_up is not None:
                self._begin(follow_up)

        Deferred.fromCoroutine(self._pass()).addBoth(ended)

    def _busy(self, agreement_id: int) -> bool:
        """An attempt of this agreement is followed here, or its end not yet stored."""
        return any(key[0] == agreement_id for key in (*self._follows, *self._unfinished))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._reactor.seconds(), UTC)

    def _pbx(self) -> str | None:
        """The PBX callbacks are dialled on: the first link (config order) that is up."""
        for name, client in self._clients.items():
            if client.state == "connected" and self._token(name) is not False:
                return name
        return None

    def _token(self, pbx: str) -> int | bool | None:
        """This node's fencing token for ``pbx``; ``None``: no fencing in use; ``False``:
        fenced, and this node does not own ``pbx`` now."""
        if self._fences is None:
            return None
        token = self._fences.token(pbx)
        return False if token is None else token

    async def _pass(self) -> PassReport:
        report = PassReport()
        now = self._now()
        self._passes += 1
        self._last_pass_at = now
        for finish in list(self._unfinished.values()):
            self._write_finish(finish)
        try:
            due = await self._run(lambda: self._book.due_callbacks(now, PASS_LIMIT))
        except Exception as exc:  # a pass never stops the loop
            self._error("cannot read the due callbacks", exc)
            return report
        report.due = self._due_backlog = len(due)
        pbx = self._pbx()
        board = self._board()
        states = board.operator_states(pbx) if pbx is not None and board is not None else []
        for callback in due:
            try:
                await self._one(callback, pbx, states, now=now, report=report)
            except Exception as exc:  # one agreement never stops the pass
                report.failed.append(callback.agreement_id)
                self._error("dialer step failed", exc, callback.agreement_id)
        if self._reactor.seconds() - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = self._reactor.seconds()
            for name, client in self._clients.items():
                if client.state == "connected":
                    self._track(self._resolve_open(name, stale_only=True))
        return report

    async def _one(
        self,
        callback: DueCallback,
        pbx: str | None,
        states: Sequence[OperatorState],
        *,
        now: datetime,
        report: PassReport,
    ) -> None:
        agreement_id = callback.agreement_id
        agreement = _policy_agreement(callback)
        decision = decide(agreement, callback.attempts, self.policy, now)
        if isinstance(decision, InProgress) or self._busy(agreement_id):
            return  # an attempt is open: its end (or its resolution) decides what follows
        if isinstance(decision, Over):
            if not decision.flagged:  # answered: nothing more to dial
                await self._run(lambda: self._book.reschedule(agreement_id, None))
                report.rescheduled.append(agreement_id)
                return
            reason = decision.reason
            flagged = await self._run(
                lambda: self._book.flag_agreement(agreement_id, reason, now=now)
            )
            if flagged is not None:
                report.flagged.append(agreement_id)
                self._push_flagged(flagged)
            return
        assert isinstance(decision, Dial)
        if decision.at > now:
            at = decision.at
            await self._run(lambda: self._book.reschedule(agreement_id, at))
            report.rescheduled.append(agreement_id)
            return
        if pbx is None:
            report.waiting.append(agreement_id)  # dialled when a link is up (it kicks)
            return
        busy = {f.operator for f in self._follows.values()}
        free = [s for s in states if s.operator not in busy]
        operators = who_may_ring(agreement, free, self.policy, now)
        if not operators:
            later = now + NOBODY_DELAY
            await self._run(lambda: self._book.reschedule(agreement_id, later))
            report.rescheduled.append(agreement_id)
            return
        await self._dial(callback, decision.number, operators, pbx, now=now, report=report)

    async def _dial(
        self,
        callback: DueCallback,
        number: int,
        operators: Sequence[str],
        pbx: str,
        *,
        now: datetime,
        report: PassReport,
    ) -> None:
        agreement_id = callback.agreement_id
        try:
            exten = dial_number(callback.callback_number, self.config.number_format, self._region)
        except ValueError as exc:
            log.error(
                "callback number cannot be dialled", agreement_id=agreement_id, error=str(exc)
            )
            later = now + NOBODY_DELAY
            await self._run(lambda: self._book.reschedule(agreement_id, later))
            report.rescheduled.append(agreement_id)
            return
        token = secrets.token_hex(8)
        channel_id, action_id = f"cti-callback-{token}", f"cti-originate-{token}"

        # The queues room's board knows which of an operator's devices is free now; a
        # board without ``free_device`` leaves it to the accounts (the first device).
        free_device = getattr(self._board(), "free_device", None)
        chosen = [(o, d) for o in operators if (d := free_device(pbx, o))] if free_device else None

        fence = self._token(pbx)
        if fence is False:
            report.waiting.append(agreement_id)  # not this node's PBX (any more)
            return
        assert fence is None or isinstance(fence, int)

        def claim() -> tuple[str, str] | str:
            """``(operator, device)`` when claimed, else why not (``NO_DEVICE``, ``LOST``)."""
            candidates = chosen
            if candidates is None:
                candidates = [(o, ds[0]) for o in operators if (ds := self._devices(o))][:1]
            if not candidates:
                return NO_DEVICE
            operator, device = candidates[0]
            won = self._book.claim_attempt(
                agreement_id,
                number,
                now=now,
                operator=operator,
                node=self.node_name,
                pbx=pbx,
                channel_id=channel_id,
                action_id=action_id,
                fence=fence,
            )
            return (operator, device) if won else LOST

        try:
            claimed = await self._run(claim)
        except FenceRefused as exc:  # another node owns the PBX now: nothing dialled
            report.failed.append(agreement_id)
            log.error("callback claim refused: stale fencing token", pbx=pbx, token=exc.token)
            if self._fences is not None:
                self._fences.refused(pbx, exc.token, exc.current)
            return
        except Exception as exc:  # no claim, no Originate
            report.failed.append(agreement_id)
            self._store_errors += 1
            self._error("cannot claim the attempt; nothing dialled", exc, agreement_id)
            return
        if claimed == NO_DEVICE:
            log.warning("nobody to ring has a device", agreement_id=agreement_id)
            later = now + NOBODY_DELAY
            await self._run(lambda: self._book.reschedule(agreement_id, later))
            report.rescheduled.append(agreement_id)
            return
        if isinstance(claimed, str):
            return  # LOST: another node (or a change) got there first; not ours to dial
        operator, device = claimed
        machine = CallbackAttempt(agreement_id, number, channel_id=channel_id, action_id=action_id)
        follow = _Follow(pbx, machine, operator, now, callback)
        self._file(follow)
        report.dialled.append(agreement_id)
        self._originate(
            follow,
            channel=operator_channel(device),
            exten=exten,
            caller=caller_id(callback.customer_name, exten),
        )

    def _originate(self, follow: _Follow, *, channel: str, exten: str, caller: str) -> None:
        machine = follow.machine
        assert machine.channel_id is not None and machine.action_id is not None
        self._apply(follow, machine.sent())
        try:
            request = OriginateRequest(
                channel=channel,
                context=self.config.context,
                exten=exten,
                caller_id=caller,
                variables=originate_variables(
                    machine.agreement_id, machine.number, follow.operator
                ),
                ring_seconds=self.config.operator_ring_seconds,
                action_id=machine.action_id,
                channel_id=machine.channel_id,
            )
        except ValueError as exc:  # a value with CR/LF: refused before anything went out
            self._apply(follow, machine.originate_failed("not_sent", str(exc)))
            return
        self._originates += 1
        log.info(
            "callback_originate",
            agreement_id=machine.agreement_id,
            attempt=machine.number,
            operator=follow.operator,
            pbx=follow.pbx,
            channel=channel,
            channel_id=machine.channel_id,
        )
        d = self._clients[follow.pbx].originate(request)
        d.addCallbacks(
            self._originated,
            self._originate_failed,
            callbackArgs=(follow,),
            errbackArgs=(follow,),
        )

    def _originated(self, result: OriginateResult, follow: _Follow) -> None:
        self._apply(
            follow, follow.machine.originate_result(result.success, result.reason, result.uniqueid)
        )

    def _originate_failed(self, failure: Failure, follow: _Follow) -> None:
        err = failure.value
        if isinstance(err, OriginateRefused):
            outputs = follow.machine.originate_failed("refused", err.message)
        elif isinstance(err, OriginateOutcomeUnknown):
            outputs = follow.machine.originate_failed("outcome_unknown", err.why)
        else:  # OriginateNotSent, or nothing written (an ActionID in use)
            if not isinstance(err, OriginateNotSent):
                log.error("callback originate not sent", error=str(err)[:300])
            outputs = follow.machine.originate_failed("not_sent", str(err))
        self._apply(follow, outputs)

    # -- following ------------------------------------------------------------------------

    def _file(self, follow: _Follow) -> None:
        machine = follow.machine
        self._follows[machine.agreement_id, machine.number] = follow
        if machine.action_id is not None:
            self._by_action[follow.pbx, machine.action_id] = follow
        self._file_leg(follow)

    def _file_leg(self, follow: _Follow) -> None:
        leg = follow.machine.first_leg
        if leg is not None and follow.filed_as != leg:
            legs = self._by_leg.setdefault(follow.pbx, {})
            if follow.filed_as is not None and legs.get(follow.filed_as) is follow:
                del legs[follow.filed_as]  # the PBX ignored the ChannelId
            legs[leg] = follow
            follow.filed_as = leg

    def _forget(self, follow: _Follow) -> None:
        machine = follow.machine
        if self._follows.get((machine.agreement_id, machine.number)) is follow:
            del self._follows[machine.agreement_id, machine.number]
        if machine.action_id is not None:
            self._by_action.pop((follow.pbx, machine.action_id), None)
        if follow.filed_as is not None:
            legs = self._by_leg.get(follow.pbx, {})
            if legs.get(follow.filed_as) is follow:
                del legs[follow.filed_as]

    def _event(self, pbx: str, msg: Message) -> None:
        if not self._follows:
            return
        if msg.get("Event") == "OriginateResponse":
            follow = self._by_action.get((pbx, msg.get("ActionID", "")))
        else:
            legs = self._by_leg.get(pbx, {})
            follow = legs.get(msg.get("Linkedid") or msg.get("DestLinkedid") or "")
            if follow is None:
                follow = legs.get(msg.get("Uniqueid") or "")
        if follow is not None:
            self._apply(follow, follow.machine.event(msg))

    def _apply(self, follow: _Follow, outputs: tuple[str, ...]) -> None:
        self._file_leg(follow)
        if OUTCOME in outputs:
            self._finish(follow)
        elif RESOLVE in outputs:
            client = self._clients[follow.pbx]
            if client.state == "connected":
                self._track(self._ask_pbx(follow.pbx, [follow]))
            # else: the link's next resync resolves it

    def _finish(self, follow: _Follow) -> None:
        self._forget(follow)
        machine = follow.machine
        assert machine.outcome is not None
        now = self._now()
        next_at, flag = self._next_step(follow, machine.outcome, now)
        finish = _Finish(
            follow.pbx,
            machine.agreement_id,
            machine.number,
            machine.outcome,
            machine.detail,
            now,
            next_at,
            flag,
        )
        self._outcomes[machine.outcome] += 1
        log.info(
            "callback_attempt_ended",
            agreement_id=machine.agreement_id,
            attempt=machine.number,
            outcome=machine.outcome,
            detail=machine.detail,
            next_attempt_at=_iso(next_at),
            flag=flag,
        )
        self._unfinished[finish.agreement_id, finish.number] = finish
        self._write_finish(finish)

    def _next_step(
        self, follow: _Follow, outcome: str, now: datetime
    ) -> tuple[datetime | None, str | None]:
        """When to try again, or why to flag: the policy on every attempt including this
        one. An attempt found open in the store (no agreement at hand) is due again at
        once, so that the next pass asks the policy (which waits the retry interval)."""
        callback = follow.callback
        if callback is None:
            return now, None
        attempts = [
            *(a for a in callback.attempts if a.number != follow.machine.number),
            Attempt(follow.machine.number, follow.started_at, now, outcome),
        ]
        decision = decide(_policy_agreement(callback), attempts, self.policy, now)
        if isinstance(decision, Dial):
            return decision.at, None
        if isinstance(decision, Over):
            return None, decision.reason if decision.flagged else None
        return now, None

    def _write_finish(self, finish: _Finish) -> None:
        key = (finish.agreement_id, finish.number)
        if key in self._writing:
            return
        fence = self._token(finish.pbx)
        if fence is False:
            # Not this node's PBX any more: the owner settles the attempt from the PBX.
            log.warning(
                "callback outcome not stored: another node owns the PBX",
                pbx=finish.pbx,
                agreement_id=finish.agreement_id,
                attempt=finish.number,
            )
            self._unfinished.pop(key, None)
            return
        assert fence is None or isinstance(fence, int)
        self._writing.add(key)

        def write() -> dict[str, Any] | None:
            return self._book.finish_attempt(
                finish.agreement_id,
                finish.number,
                finish.outcome,
                now=finish.at,
                detail=finish.detail,
                next_attempt_at=finish.next_attempt_at,
                flag=finish.flag,
                fence=fence,
            )

        def written(agreement: dict[str, Any] | None) -> None:
            self._writing.discard(key)
            self._unfinished.pop(key, None)
            if agreement is not None and finish.flag is not None:
                self._push_flagged(agreement)

        def failed(failure: Failure) -> None:
            self._writing.discard(key)
            if isinstance(failure.value, FenceRefused) and self._fences is not None:
                refused = failure.value
                log.error("callback outcome refused: stale fencing token", pbx=refused.pbx)
                self._unfinished.pop(key, None)
                self._fences.refused(refused.pbx, refused.token, refused.current)
                return
            self._store_errors += 1
            self._error("cannot store the attempt's outcome; kept to retry", failure, key[0])

        self._track(self._run(write).addCallbacks(written, failed))

    def _push_flagged(self, agreement: dict[str, Any]) -> None:
        self._bus.publish(SUPERVISORS_TOPIC, {"type": "agreement_flagged", "agreement": agreement})

    # -- settling from the PBX ---------------------------------------------------------

    def _pbx_ready(self, pbx: str) -> None:
        """A link came up (start-up or reconnect): what happened meanwhile is settled
        from the PBX, then a pass dials what is due."""
        self._reactor.callLater(0, self._settle_and_kick, pbx)

    def _settle_and_kick(self, pbx: str) -> None:
        d = self._track(self._resolve_open(pbx, stale_only=False))
        d.addBoth(lambda _: self.kick())

    def _pbx_lost(self, pbx: str) -> None:
        """Events may be missed from now on; the next resync settles the attempts."""
        count = sum(1 for f in self._follows.values() if f.pbx == pbx)
        if count:
            log.warning("callback attempts lose their PBX link", pbx=pbx, attempts=count)

    async def _resolve_open(self, pbx: str, *, stale_only: bool) -> None:
        """The store's open attempts on ``pbx`` that this node should settle: its own
        (after a reconnect or a restart) and any that are stale (a node that died)."""
        try:
            found = await self._run(lambda: self._book.open_attempts(pbx))
        except Exception as exc:  # tried again at the next sweep
            self._store_errors += 1
            self._error("cannot read the open attempts", exc)
            return
        now = self._reactor.seconds()
        follows = []
        for attempt in found:
            key = (attempt.agreement_id, attempt.number)
            if key in self._unfinished:
                continue  # ended here; its write is pending
            stale = now - attempt.started_at.timestamp() >= self.stale_after()
            if not stale and (stale_only or attempt.node != self.node_name):
                continue
            follow = self._follows.get(key)
            if follow is None:
                follow = self._resume(pbx, attempt)
            elif follow.machine.state == CLAIMED:
                continue  # claimed here, its Originate not out yet
            follows.append(follow)
        if follows:
            await self._ask_pbx(pbx, follows)

    def _resume(self, pbx: str, attempt: OpenAttempt) -> _Follow:
        machine = CallbackAttempt.resumed(
            attempt.agreement_id,
            attempt.number,
            channel_id=attempt.channel_id,
            action_id=attempt.action_id,
        )
        follow = _Follow(pbx, machine, attempt.operator, attempt.started_at)
        self._file(follow)  # before asking: its events from now on count
        return follow

    async def _ask_pbx(self, pbx: str, follows: list[_Follow]) -> None:
        try:
            result = await self._clients[pbx].send_action(
                "Status",
                {"Variables": "CTI_AGREEMENT_ID,CTI_ATTEMPT"},
                timeout=STATUS_TIMEOUT,
            )
        except Exception as exc:  # the next resync or sweep asks again
            self._error("cannot ask the PBX for its channels", exc)
            return
        for follow in follows:
            machine = follow.machine
            key = (machine.agreement_id, machine.number)
            if machine.ended or self._follows.get(key) is not follow:
                continue  # ended meanwhile, from the events
            item = find_call(
                result.items,
                channel_id=machine.first_leg or machine.channel_id,
                agreement_id=machine.agreement_id,
                number=machine.number,
            )
            log.info(
                "callback_attempt_resolved",
                agreement_id=machine.agreement_id,
                attempt=machine.number,
                live=item is not None,
                state=machine.state,
            )
            self._apply(follow, machine.found(item))

    # -- small things ---------------------------------------------------------------------

    def _track(self, work: Any) -> Deferred[Any]:
        """Keep hold of background work (so ``stop`` can wait for it); never fails."""
        d: Deferred[Any] = work if isinstance(work, Deferred) else Deferred.fromCoroutine(work)
        self._work.add(d)

        def done(result: object) -> None:
            self._work.discard(d)
            if isinstance(result, Failure):
                self._error("dialer work failed", result)

        d.addBoth(done)
        return d

    def _error(
        self, what: str, error: BaseException | Failure, agreement_id: int | None = None
    ) -> None:
        text = (error.getErrorMessage() if isinstance(error, Failure) else str(error))[:300]
        self._last_error = f"{what}: {text}"
        log.error(what, agreement_id=agreement_id, error=text)


def _policy_agreement(callback: DueCallback) -> Agreement:
    return Agreement(
        due=callback.due_at,
        deadline=callback.deadline or callback.due_at + NO_DEADLINE,
        owner=callback.owner,
        queue=callback.queue,
        timezone=callback.timezone,
        window_start=callback.window_start,
        window_end=callback.window_end,
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()
