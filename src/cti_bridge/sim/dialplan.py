"""What the simulated Asterisk runs: inbound calls, ``Dial()``, conversations, transfers.

The dialplan is the one from the pjsip recordings (``from-pstn-sip``), renamed for the
demo site::

    [from-pstn]   3200 -> NoOp / Set(CHANNEL(language)=nl) / Answer / Queue(support,t,,,60) / Hangup
                  3300 -> the same for Queue(sales)
                  1001 -> NoOp / Dial(PJSIP/1001,20) / Hangup     (any operator, 2001)
    [internal]    2001 -> NoOp / Dial(PJSIP/2001,30)             (transfer targets)
    [callback]    _0X. -> NoOp(CTI callback agreement ...) / Dial(PJSIP/${EXTEN}@pstn,30) / Hangup

What the *people* do (answer after 3 s, hang up after 40 s, transfer to 2001) comes
from a :class:`CallPlan`; everything else (who is rung, the events, their order, the
causes) is the PBX's business and follows the recorded traces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from twisted.internet.interfaces import IDelayedCall

from .channels import DOWN, RING, RINGING, UP, Bridge, Channel
from .pbx import PBX, Endpoint
from .phones import Reply, Ringer, Ringing
from .queues import QueueCall, QueueEngine, Waiting
from .transfers import Transfers

__all__ = ["CallPlan", "Callee", "Dialplan", "Talk", "TransferPlan"]

Party = Literal["caller", "operator"]


@dataclass(frozen=True)
class TransferPlan:
    """The operator passes the customer on to another line (by default ``2001``)."""

    kind: Literal["blind", "attended"]
    target: str = "2001"
    after: float = 8.0  # seconds of conversation before the operator transfers
    consult: float = 6.0  # attended: operator and target talk before the operator hangs up
    talk: float = 25.0  # customer and target talk, then the customer hangs up


@dataclass(frozen=True)
class CallPlan:
    """What the people on one inbound call will do."""

    caller: tuple[str, str]  # (number, name) as the trunk delivers them
    dialled: str  # a queue's DID (3200) or an extension (1001)
    talk: float = 30.0  # seconds of conversation once answered
    ended_by: Party = "caller"
    patience: float | None = None  # the caller hangs up after waiting this long unanswered
    #: device -> its phone's reply; a tuple gives one reply per ring attempt, the last repeats.
    replies: Mapping[str, Reply | tuple[Reply, ...]] = field(default_factory=dict)
    transfer: TransferPlan | None = None

    def reply(self, device: str, attempt: int) -> Reply | None:
        found = self.replies.get(device)
        if isinstance(found, tuple):
            return found[min(attempt, len(found) - 1)] if found else None
        return found


@dataclass(frozen=True)
class Callee:
    """A customer the PBX dials out to (callbacks): how they answer and talk."""

    reply: Reply = field(default_factory=lambda: Reply.answer(4.0))
    talk: float = 45.0
    ended_by: Party = "caller"  # "caller" = the customer hangs up, else the operator


@dataclass(eq=False)
class Talk:
    """Two channels bridged: ``a`` runs the dialplan, ``b`` is the one it reached."""

    a: Channel
    b: Channel
    bridge: Bridge
    queue_call: QueueCall | None = None
    dial_started: float = 0.0
    started: float = 0.0
    timer: IDelayedCall | None = None
    customer: Channel | None = None  # whose hang-up counts as "caller" in AgentComplete
    teardown: Callable[[], None] | None = None  # extra channels to clear (attended transfer)
    deferred_complete: QueueCall | None = None  # Redirect: AgentComplete when the caller goes
    over: bool = False


#: A rejected leg's cause -> (``DialEnd`` status, ``DIALSTATUS``). Asterisk 22's
#: ``ast_hangup_cause_to_dial_status`` knows only busy and congestion, so a number that
#: does not exist (404, cause 1) ends with ``DialEnd NOANSWER`` while app_dial counts it
#: as ``CHANUNAVAIL``: only the cause tells it from a customer who let it ring.
DIAL_STATUS = {
    17: ("BUSY", "BUSY"),
    34: ("CONGESTION", "CONGESTION"),
    1: ("NOANSWER", "CHANUNAVAIL"),
}


@dataclass(eq=False)
class DialAttempt:
    caller: Channel
    leg: Channel
    ringing: Ringing | None = None
    timer: IDelayedCall | None = None
    done: bool = False


class Dialplan:
    def __init__(
        self,
        pbx: PBX,
        queues: QueueEngine,
        ringer: Ringer,
        *,
        default_reply: Callable[[str], Reply],
        callee_for: Callable[[str], Callee],
    ) -> None:
        self.pbx = pbx
        self.queues = queues
        self.ringer = ringer
        self.default_reply = default_reply
        self.callee_for = callee_for
        #: Active conversations, by the channel names of both parties.
        self.talks: dict[str, Talk] = {}
        #: How to end a channel that is not talking (Hangup action): waiting, ringing.
        self.enders: dict[str, Callable[[int], None]] = {}
        self.transfers = Transfers(self)

    # -- inbound ----------------------------------------------------------------

    def inbound(self, plan: CallPlan) -> Channel:
        """A customer's INVITE arrives on the trunk for ``plan.dialled``."""
        pbx = self.pbx
        pbx.calls_processed += 1
        chan = pbx.new_pjsip(
            pbx.trunk, state=RING, caller=plan.caller, context="from-pstn", exten=plan.dialled
        )
        pbx.setvar(chan, "SIPDOMAIN", "127.0.0.1")

        attempts: dict[str, int] = {}

        def reply_for(device: str) -> Reply:
            attempt = attempts.get(device, 0)
            attempts[device] = attempt + 1
            return plan.reply(device, attempt) or self.default_reply(device)

        queue = self.queues.by_did(plan.dialled)
        endpoint = pbx.endpoint_for_exten(plan.dialled)
        if queue is not None:
            pbx.newexten(chan, "NoOp", f"{queue.name} line", priority=1)
            pbx.newexten(chan, "Set", "CHANNEL(language)=nl", priority=2)
            chan.language = "nl"
            pbx.newexten(chan, "Answer", "", priority=3)
            pbx.set_state(chan, UP)
            pbx.newexten(chan, "Queue", f"{queue.name},t,,,60", priority=4)
            for name in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS"):
                pbx.setvar(chan, name, "")
            joined = pbx.now()
            waiting = self.queues.join(
                chan,
                queue.name,
                reply_for=reply_for,
                on_connect=lambda call: self._queue_connected(call, plan, joined),
                on_timeout=self._queue_timed_out,
            )
            self._give_up_after(plan.patience, chan, lambda: self.queues.abandon(waiting))
            self.enders[chan.name] = lambda cause: self.queues.abandon(waiting)
        elif endpoint is not None:
            pbx.newexten(chan, "NoOp", f"direct call to operator {endpoint.exten}", priority=1)
            pbx.newexten(chan, "Dial", f"{endpoint.device},20", priority=2)
            attempt = self.dial(
                chan,
                endpoint,
                20.0,
                reply_for(endpoint.device),
                on_answer=lambda talk: self.converse(talk, plan.talk, plan.ended_by),
            )
            self._give_up_after(plan.patience, chan, lambda: self.caller_gives_up(attempt))
        else:
            pbx.newexten(chan, "Hangup", "1", priority=1)
            pbx.soft_hangup_request(chan, 1)
            pbx.hangup(chan, 1)
        return chan

    def _give_up_after(
        self, patience: float | None, chan: Channel, give_up: Callable[[], None]
    ) -> None:
        if patience is None:
            return

        def maybe() -> None:
            if not chan.hung_up and chan.bridge is None and chan.name not in self.talks:
                give_up()

        self.pbx.sched.later(patience, maybe)

    def _queue_connected(self, call: QueueCall, plan: CallPlan, joined: float) -> None:
        caller = call.waiting.caller
        self.enders.pop(caller.name, None)
        talk = Talk(caller, call.leg, call.bridge, call, joined, self.pbx.now(), customer=caller)
        self.register(talk)
        if plan.transfer is not None:
            talk.timer = self.pbx.sched.later(plan.transfer.after, self._transfer, talk, plan)
        else:
            self.converse(talk, plan.talk, plan.ended_by)

    def _queue_timed_out(self, w: Waiting) -> None:
        chan = w.caller
        self.enders.pop(chan.name, None)
        self.pbx.newexten(chan, "Hangup", "", priority=5)
        self.pbx.soft_hangup_request(chan, 16)
        self.pbx.hangup(chan, 16)

    # -- Dial() -------------------------------------------------------------------

    def dial(
        self,
        caller: Channel,
        target: Endpoint | str,
        timeout: float,
        reply: Reply,
        *,
        on_answer: Callable[[Talk], None],
        on_ringing: Callable[[], None] | None = None,
        on_fail: Callable[[str, int, str], None] | None = None,
    ) -> DialAttempt:
        """``Dial(PJSIP/1001,20)`` or ``Dial(PJSIP/<number>@pstn,30)`` from ``caller``."""
        pbx = self.pbx
        if isinstance(target, Endpoint):
            reply = self.phone_reply(target.device, reply)
        for name in (
            "DIALSTATUS",
            "DIALEDPEERNUMBER",
            "DIALEDPEERNAME",
            "ANSWEREDTIME",
            "ANSWEREDTIME_MS",
            "DIALEDTIME",
            "DIALEDTIME_MS",
            "RINGTIME",
            "RINGTIME_MS",
            "PROGRESSTIME",
            "PROGRESSTIME_MS",
        ):
            pbx.setvar(caller, name, "")
        dial_started = pbx.now()
        if isinstance(target, Endpoint):
            leg = pbx.new_pjsip(
                target.exten,
                state=DOWN,
                caller=(target.exten, target.name),
                context=target.context,
                exten="s",
                linkedid=caller.linkedid,
            )
            peer_number, dialstring = target.exten, target.exten
            pbx.setvar(leg, "DIALEDPEERNUMBER", peer_number)
            leg.exten = target.exten
            leg.connected_num, leg.connected_name = caller.caller_num, caller.caller_name
            pbx.newexten(leg, "AppDial", "(Outgoing Line)")
            pbx.chan_event("NewConnectedLine", leg)
        else:
            leg = pbx.new_pjsip(
                pbx.trunk,
                state=DOWN,
                caller=("<unknown>", "<unknown>"),
                context="from-pstn",
                exten="s",
                linkedid=caller.linkedid,
            )
            peer_number = dialstring = f"{target}@{pbx.trunk}"
            pbx.setvar(leg, "DIALEDPEERNUMBER", peer_number)
            leg.exten = target
            pbx.newexten(leg, "AppDial", "(Outgoing Line)")
            pres = "0 (Presentation Allowed, Not Screened)"
            pbx.new_callerid(leg, caller.caller_num, caller.caller_name, pres)
            leg.connected_num, leg.connected_name = caller.caller_num, caller.caller_name
            pbx.chan_event("NewConnectedLine", leg)
        attempt = DialAttempt(caller, leg)
        pbx.dial_begin(caller, leg, dialstring)
        if isinstance(target, Endpoint):
            pbx.connected_line(caller, target.exten, target.name)

        def rang(_: Ringing) -> None:
            pbx.set_state(leg, RINGING)
            ring_ms = int((pbx.now() - dial_started) * 1000)
            pbx.setvar(caller, "RINGTIME", str(ring_ms // 1000))
            pbx.setvar(caller, "RINGTIME_MS", str(ring_ms))
            pbx.dial_state(caller, leg)
            if on_ringing is not None:
                on_ringing()

        def answered(_: Ringing) -> None:
            attempt.done = True
            self.enders.pop(leg.name, None)
            self.enders.pop(caller.name, None)
            pbx.sched.cancel(attempt.timer)
            pbx.set_state(leg, UP)
            pbx.setvar(caller, "DIALSTATUS", "ANSWER")
            pbx.setvar(caller, "DIALEDPEERNAME", leg.name)
            pbx.setvar(caller, "DIALEDPEERNUMBER", peer_number)
            pbx.dial_end(caller, leg, "ANSWER")
            if caller.state != UP:
                pbx.set_state(caller, UP)
            bridge = pbx.bridge_create()
            leg.exten = ""
            pbx.newexten(leg, "AppDial", "(Outgoing Line)")
            pbx.bridge_enter(bridge, leg)
            pbx.bridge_enter(bridge, caller)
            pbx.bridge_peer_vars(caller, leg)
            bridge.technology = "native_rtp"  # re-negotiated silently (pjsip quirk 10)
            talk = Talk(caller, leg, bridge, None, dial_started, pbx.now())
            self.register(talk)
            on_answer(talk)

        def failed(cause: int, tech: str) -> None:
            """No answer (``cause`` 0) or a rejection; the order of 04b and pjsip 06."""
            if attempt.done:
                return
            attempt.done = True
            self.enders.pop(leg.name, None)
            self.enders.pop(caller.name, None)
            pbx.sched.cancel(attempt.timer)
            if attempt.ringing is not None:
                self.ringer.cancel(attempt.ringing)
            status, dialstatus = DIAL_STATUS.get(cause, ("NOANSWER", "NOANSWER"))
            if cause:
                pbx.hangup_request(leg, cause, tech)
            pbx.dial_end(caller, leg, status)
            pbx.setvar(caller, "DIALSTATUS", dialstatus)
            if on_fail is not None:
                pbx.hangup(leg, cause, tech)
                on_fail(status, cause, tech)
                return
            # The dialplan's Hangup(); a rejection's cause spreads to the caller (pjsip 06).
            self.enders.pop(caller.name, None)
            pbx.newexten(caller, "Hangup", "", priority=caller.priority + 1)
            pbx.soft_hangup_request(caller, 16)
            if cause:
                pbx.hangup(caller, cause, tech)
                pbx.hangup(leg, cause, tech)
            else:
                pbx.hangup(leg, 0)
                pbx.hangup(caller, 16)

        attempt.ringing = self.ringer.ring(
            leg,
            reply,
            on_ringing=rang,
            on_answer=answered,
            on_reject=lambda _, cause, tech: failed(cause, tech),
        )
        attempt.timer = pbx.sched.later(timeout, failed, 0, "")
        self.enders[leg.name] = lambda cause: failed(0, "")
        self.enders[caller.name] = lambda cause: self.caller_gives_up(attempt)
        return attempt

    def phone_reply(self, device: str, wanted: Reply) -> Reply:
        """A phone already in a call answers 486 whatever the plan says (no call waiting)."""
        if self.pbx.device_states.get(device) in ("INUSE", "RINGINUSE", "BUSY"):
            return Reply.busy(0.2)
        if self.pbx.has_channels(device):  # ringing for somebody else right now
            return Reply.busy(0.2)
        return wanted

    def caller_gives_up(
        self,
        attempt: DialAttempt,
        cause: int = 16,
        before_hangup: Callable[[], None] | None = None,
    ) -> None:
        """The caller hangs up while ``Dial()`` is still ringing. ``before_hangup`` runs
        between the cancelled leg's ``Hangup`` and the caller's (an Originate's response)."""
        if attempt.done:
            return
        attempt.done = True
        pbx, caller, leg = self.pbx, attempt.caller, attempt.leg
        self.enders.pop(leg.name, None)
        self.enders.pop(caller.name, None)
        pbx.sched.cancel(attempt.timer)
        if attempt.ringing is not None:
            self.ringer.cancel(attempt.ringing)
        pbx.hangup_request(caller, cause)
        pbx.dial_end(caller, leg, "CANCEL")
        pbx.setvar(caller, "DIALSTATUS", "CANCEL")
        pbx.hangup(leg, 0)
        if before_hangup is not None:
            before_hangup()
        pbx.hangup(caller, cause)

    # -- conversations --------------------------------------------------------------

    def register(self, talk: Talk) -> None:
        self.talks[talk.a.name] = talk
        self.talks[talk.b.name] = talk

    def forget(self, talk: Talk) -> None:
        """Stop following ``talk`` as a conversation (a transfer takes it over)."""
        self.pbx.sched.cancel(talk.timer)
        for chan in (talk.a, talk.b):
            if self.talks.get(chan.name) is talk:
                del self.talks[chan.name]

    def converse(self, talk: Talk, seconds: float, ended_by: Party) -> None:
        """Schedule the end of a conversation by the customer or by the operator side."""
        customer = talk.customer or talk.a
        quitter = customer if ended_by == "caller" else (talk.b if customer is talk.a else talk.a)
        talk.timer = self.pbx.sched.later(seconds, self.end_talk, talk, quitter)

    def end_talk(
        self, talk: Talk, quitter: Channel, *, soft: bool = False, shutdown: bool = False
    ) -> None:
        """``quitter``'s phone hangs up (``soft``: the Hangup action ends it; ``shutdown``:
        the PBX stops, and like trace 11 the queue books that as ``Reason: agent``)."""
        if talk.over:
            return
        talk.over = True
        pbx = self.pbx
        pbx.sched.cancel(talk.timer)
        other = talk.b if quitter is talk.a else talk.a
        for chan in (talk.a, talk.b):
            if self.talks.get(chan.name) is talk:
                del self.talks[chan.name]
        if soft:
            pbx.soft_hangup_request(quitter, 16)
        elif not shutdown:
            pbx.hangup_request(quitter, None if talk.queue_call else 16)
        by_customer = quitter is (talk.customer or talk.a) and not shutdown
        if talk.queue_call is not None:
            self.queues.complete(talk.queue_call, "caller" if by_customer else "agent")
        if talk.deferred_complete is not None and by_customer:
            self.queues.complete(talk.deferred_complete, "caller")
        pbx.bridge_peer_vars(quitter, other, clear=True)
        pbx.bridge_leave(talk.bridge, quitter)
        if quitter is talk.a:
            self._answered_vars(talk)
            pbx.soft_hangup_request(talk.a, 16)
            pbx.hangup(talk.a, 16)
            pbx.bridge_leave(talk.bridge, other)
            pbx.bridge_destroy(talk.bridge)
            pbx.hangup(other, 16)
        else:
            pbx.bridge_leave(talk.bridge, other)
            pbx.bridge_destroy(talk.bridge)
            if talk.queue_call is None:  # Dial() returns once its peer is gone (pjsip 05)
                pbx.hangup(quitter, 16)
            self._answered_vars(talk)
            pbx.soft_hangup_request(talk.a, 16)
            pbx.hangup(talk.a, 16)
            pbx.hangup(quitter, 16)
        if talk.teardown is not None:
            talk.teardown()

    def _answered_vars(self, talk: Talk) -> None:
        pbx, now = self.pbx, self.pbx.now()
        answered, dialled = now - talk.started, now - talk.dial_started
        pbx.setvar(talk.a, "ANSWEREDTIME", str(int(answered)))
        pbx.setvar(talk.a, "ANSWEREDTIME_MS", str(int(answered * 1000)))
        pbx.setvar(talk.a, "DIALEDTIME", str(int(dialled)))
        pbx.setvar(talk.a, "DIALEDTIME_MS", str(int(dialled * 1000)))

    def hangup_channel(self, name: str, cause: int = 16, *, shutdown: bool = False) -> bool:
        """The AMI ``Hangup`` action: end whatever ``name`` is doing. False: no such channel."""
        if name not in self.pbx.channels:
            return False
        talk = self.talks.get(name)
        if talk is not None:
            self.end_talk(talk, self.pbx.channels[name], soft=not shutdown, shutdown=shutdown)
            return True
        ender = self.enders.pop(name, None)
        if ender is not None:
            ender(cause)
            return True
        if self.queues.decline(name):
            return True
        chan = self.pbx.channels[name]
        self.pbx.soft_hangup_request(chan, cause)
        self.pbx.hangup(chan, cause)
        return True

    def hangup_everything(self) -> None:
        """``core restart now``: every channel first gets ``SoftHangupRequest Cause: 4``
        (the AST_SOFTHANGUP_SHUTDOWN flag, trace 11), then every call ends."""
        pbx = self.pbx
        for each in list(pbx.channels.values()):
            pbx.soft_hangup_request(each, 4)
        while pbx.channels:
            name = next(iter(pbx.channels))
            self.hangup_channel(name, 16, shutdown=True)
            left = pbx.channels.get(name)
            if left is not None:  # its owner waits for something that will never come
                if left.bridge is not None:
                    pbx.bridge_leave(left.bridge, left)
                pbx.hangup(left, 16)
        for bridge in list(pbx.bridges.values()):
            pbx.bridge_destroy(bridge)
        self.talks.clear()
        self.enders.clear()

    # -- transfers ----------------------------------------------------------------

    def _transfer(self, talk: Talk, plan: CallPlan) -> None:
        assert plan.transfer is not None
        xfer = plan.transfer
        endpoint = self.pbx.endpoint_for_exten(xfer.target)
        if endpoint is None or talk.over:
            return
        reply = plan.reply(endpoint.device, 0) or self.default_reply(endpoint.device)
        if xfer.kind == "blind":
            self.transfers.blind(talk, talk.b, xfer.target, talk_after=xfer.talk, reply=reply)
        else:
            self.transfers.attended(
                talk, xfer.target, consult=xfer.consult, talk_after=xfer.talk, reply=reply
            )
