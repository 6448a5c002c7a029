"""AMI ``Originate`` (always asynchronous): how cti-bridge dials callbacks.

Asterisk first rings the requested channel (for a callback: the operator's phone,
``PJSIP/1001`` or ``Local/1001@agents/n``); ``OriginateResponse`` reports that first leg
only. Once it is answered the channel runs ``Context,Exten``: in ``callback`` that dials
the customer over the trunk (pjsip traces 05, 06, 06b; Local traces 07 and 08).
``Success`` therefore does not mean the customer was reached (quirk 14).

The ``Reason`` follows Asterisk 22's ``main/dial.c`` and ``pbx_dial_reason``: 4 answered;
3 when the Originate's ``Timeout`` ran out (cause 19, 06b); 5 or 8 only for a *control
frame* (a Local ``;2`` running ``Busy()``/``Congestion()``, trace 08); a channel that
merely hangs up (a SIP phone's 486 or 503, a Local half hung up) leaves no cause, so 0,
the same as a channel that cannot be created at all (an unreachable endpoint has no
contact, chan_pjsip refuses; a foreign technology, trace 08-invalid).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .channels import DOWN, RINGING, UP, Channel
from .dialplan import DIAL_STATUS, Callee, DialAttempt, Dialplan, Talk
from .pbx import CALL, Endpoint
from .phones import Reply, Ringing

__all__ = ["CALLBACK_CONTEXT", "CONNECT_CONTEXT", "OriginateRequest", "Originator"]

#: The ``Reason`` of each way the first leg ends here (no leg sends control frames).
REASONS = {"answer": 4, "noanswer": 3, "failed": 0}

#: ``[callback] _0X.``: the customer's number, dialled once the operator answered.
CALLBACK_CONTEXT = "callback"
CALLBACK_PATTERN = re.compile(r"0[0-9].+")
#: ``[cti-connect] _100X``: a customer-first callback rings the operator's extension.
CONNECT_CONTEXT = "cti-connect"

UNKNOWN = ("<unknown>", "<unknown>")


@dataclass(frozen=True)
class OriginateRequest:
    channel: str  # PJSIP/1001, Local/1001@agents/n (operator first) or PJSIP/<number>@pstn
    context: str
    exten: str
    priority: str = "1"
    timeout: float = 30.0  # seconds (the action gives milliseconds)
    caller_id: tuple[str, str] | None = None
    variables: tuple[tuple[str, str], ...] = ()
    action_id: str | None = None
    channel_id: str | None = None
    other_channel_id: str | None = None


class Originator:
    def __init__(self, dialplan: Dialplan, reply_for: Callable[[str], Reply] | None = None) -> None:
        self.dialplan = dialplan
        self.pbx = dialplan.pbx
        #: How the phone on a device answers an Originate (default: as any call).
        self.reply_for = reply_for or dialplan.default_reply

    def originate(self, req: OriginateRequest) -> None:
        """Start the call; the caller has already sent ``Originate successfully queued``."""
        pbx = self.pbx
        tech, _, resource = req.channel.partition("/")
        if tech.upper() == "LOCAL":
            self._local(req, resource)
            return
        number, _, via = resource.partition("@")
        endpoint = pbx.endpoint_for_exten(resource) or pbx.endpoints.get(req.channel)
        to_trunk = bool(via) and via == pbx.trunk and number != ""
        if tech.upper() != "PJSIP" or (endpoint is None and not to_trunk):
            self._cannot_create(req)  # trace 08-invalid (a)
            return
        if endpoint is not None and not endpoint.reachable:
            self._cannot_create(req)  # qualify said Unreachable: no contact to send to
            return
        pbx.calls_processed += 1
        if endpoint is not None:
            wanted = self.reply_for(endpoint.device)
            reply = self.dialplan.phone_reply(endpoint.device, wanted)
            leg = pbx.new_pjsip(
                endpoint.exten,
                state=DOWN,
                caller=(endpoint.exten, endpoint.name),
                context=endpoint.context,
                exten="s",
                uniqueid=req.channel_id,
            )
            dialstring = endpoint.exten
        else:
            leg = pbx.new_pjsip(
                pbx.trunk,
                state=DOWN,
                caller=UNKNOWN,
                context="from-pstn",
                exten="s",
                uniqueid=req.channel_id,
            )
            reply = self.dialplan.callee_for(number).reply
            dialstring = resource
        pbx.newexten(leg, "AppDial2", "(Outgoing Line)")
        self._set_originate_vars(leg, req)
        pbx.dial_begin(None, leg, dialstring)
        self._ring_first_leg(req, leg, reply)

    # -- the first leg ----------------------------------------------------------------

    def _cannot_create(self, req: OriginateRequest) -> None:
        """No channel: the response (Reason 0) is all there is."""
        self.pbx.sched.later(0.0, self._respond, req, None, "failed")

    def _set_originate_vars(self, chan: Channel, req: OriginateRequest) -> None:
        for name, value in req.variables:
            self.pbx.setvar(chan, name, value)
        if req.caller_id is not None:
            num, name = req.caller_id
            self.pbx.new_callerid(chan, num, name, "0 (Presentation Allowed, Not Screened)")
            self.pbx.connected_line(chan, num, name)

    def _ring_first_leg(self, req: OriginateRequest, leg: Channel, reply: Reply) -> None:
        """A SIP leg rings until it answers, turns the call down or ``Timeout`` passes."""
        pbx, dialplan = self.pbx, self.dialplan
        state = {"over": False}

        def rang(_: Ringing) -> None:
            pbx.set_state(leg, RINGING)
            pbx.dial_state(None, leg)

        def answered(_: Ringing) -> None:
            state["over"] = True
            pbx.sched.cancel(timer)
            dialplan.enders.pop(leg.name, None)
            pbx.set_state(leg, UP)
            self._respond(req, leg, "answer")
            pbx.dial_end(None, leg, "ANSWER")
            self._run_dialplan(leg, req)

        def ended(kind: str, cause: int, tech: str, *, hung_up_by: str = "far end") -> None:
            if state["over"]:
                return
            state["over"] = True
            pbx.sched.cancel(timer)
            dialplan.enders.pop(leg.name, None)
            dialplan.ringer.cancel(ringing)
            if kind != "noanswer":  # the timeout has no DialEnd (pjsip 06b)
                if hung_up_by == "far end":
                    pbx.hangup_request(leg, cause, tech)
                else:
                    pbx.soft_hangup_request(leg, cause)
                status, _ = DIAL_STATUS.get(cause, ("NOANSWER", ""))
                pbx.dial_end(None, leg, status)
            self._respond(req, None, kind)
            pbx.hangup(leg, cause, tech)

        ringing = dialplan.ringer.ring(
            leg,
            reply,
            on_ringing=rang,
            on_answer=answered,
            on_reject=lambda _, cause, tech: ended("failed", cause, tech),
        )
        timer = pbx.sched.later(req.timeout, ended, "noanswer", 19, "")
        dialplan.enders[leg.name] = lambda cause: ended("failed", cause, "", hung_up_by="AMI")

    def _respond(self, req: OriginateRequest, leg: Channel | None, kind: str) -> None:
        num, name = req.caller_id or UNKNOWN
        headers = [("ActionID", req.action_id)] if req.action_id is not None else []
        headers += [
            ("Response", "Success" if kind == "answer" else "Failure"),
            ("Channel", leg.name if leg is not None else req.channel),
            ("Context", req.context),
            ("Exten", req.exten),
            ("Reason", str(REASONS[kind])),
            ("Uniqueid", leg.uniqueid if leg is not None else (req.channel_id or "<unknown>")),
            ("CallerIDNum", num or "<unknown>"),
            ("CallerIDName", name or "<unknown>"),
        ]
        self.pbx.emit("OriginateResponse", CALL, headers)

    # -- Local/<exten>@<context>[/n] ---------------------------------------------------

    def _local(self, req: OriginateRequest, resource: str) -> None:
        """A Local pair whose ``;2`` half runs ``[agents]``: ``Dial(PJSIP/<exten>)``.

        The pair's events follow traces 07/08 (``;1`` is what the Originate dials, the
        variables and caller ID are set on both halves, ``LocalBridge``, a ``DialBegin``
        without ``Channel``); ``;2``'s ``Dial()`` is the one of pjsip 04.
        """
        pbx = self.pbx
        where, _, options = resource.partition("/")
        exten, _, context = where.partition("@")
        endpoint = pbx.endpoint_for_exten(exten)
        pbx.calls_processed += 1
        one, two = pbx.new_local_pair(
            exten, context, UNKNOWN, None, (req.channel_id, req.other_channel_id)
        )
        pbx.newexten(one, "AppDial2", "(Outgoing Line)")
        if endpoint is None or endpoint.context != context:
            # No such extension (trace 08-invalid (b)): both halves go, Cause 0.
            for name, value in req.variables:
                pbx.setvar(one, name, value)
                pbx.setvar(two, name, value)
            pbx.hangup(two, 0)
            pbx.hangup(one, 0)
            self._respond(req, None, "failed")
            return
        self._set_originate_vars(one, req)
        self._set_originate_vars(two, req)
        pbx.emit(
            "LocalBridge",
            CALL,
            [
                *one.snapshot("LocalOne"),
                *two.snapshot("LocalTwo"),
                ("Context", context),
                ("Exten", exten),
                ("LocalOptimization", "No" if "n" in options else "Yes"),
            ],
        )
        pbx.dial_begin(None, one, resource)  # 1001@agents/n
        pbx.newexten(two, "GotoIf", "0?simulated", priority=1)
        pbx.newexten(two, "Dial", f"{endpoint.device},,", priority=2)
        if not endpoint.reachable:
            self._local_fails(req, one, two, attempt=None, dialstatus="CHANUNAVAIL", cause=3)
            return
        LocalOperator(self, req, one, two, endpoint).ring()

    def _local_fails(
        self,
        req: OriginateRequest,
        one: Channel,
        two: Channel,
        *,
        attempt: DialAttempt | None,
        dialstatus: str,
        cause: int,
        tech: str = "",
    ) -> None:
        """``;2``'s ``Dial()`` failed: its ``Hangup()`` takes ``;1`` along (Reason 0)."""
        pbx = self.pbx
        if attempt is None:  # no channel could be created: Dial() returns at once
            pbx.setvar(two, "DIALSTATUS", dialstatus)
        pbx.newexten(two, "Hangup", "", priority=3)
        pbx.soft_hangup_request(two, 16)
        pbx.hangup(two, cause, tech)
        pbx.hangup_request(one, cause, tech)
        pbx.dial_end(None, one, DIAL_STATUS.get(cause, ("NOANSWER", ""))[0])
        pbx.hangup(one, cause, tech)
        self._respond(req, None, "failed")

    # -- once the first leg answered ----------------------------------------------------

    def _run_dialplan(self, leg: Channel, req: OriginateRequest) -> None:
        """The answered first leg runs ``req.context, req.exten``."""
        pbx, dialplan = self.pbx, self.dialplan
        leg.context, leg.exten, leg.priority = req.context, req.exten, 1
        endpoint = pbx.endpoint_for_exten(req.exten)
        if req.context == CONNECT_CONTEXT and endpoint is not None:
            # Customer first (``cti-connect,1001``): now ring the operator.
            pbx.newexten(leg, "NoOp", f"connect to operator {endpoint.exten}", priority=1)
            pbx.newexten(leg, "Dial", f"{endpoint.device},30", priority=2)
            self._dial_and_talk(leg, endpoint, dialplan.default_reply(endpoint.device), leg)
        elif req.context == CALLBACK_CONTEXT and CALLBACK_PATTERN.fullmatch(req.exten):
            agreement = leg.variables.get("CTI_AGREEMENT_ID", "")
            pbx.newexten(leg, "NoOp", f"CTI callback agreement {agreement}", priority=1)
            pbx.newexten(leg, "Dial", f"PJSIP/{req.exten}@{pbx.trunk},30", priority=2)
            callee = dialplan.callee_for(req.exten)
            self._dial_and_talk(leg, req.exten, callee.reply, None, callee)
        else:
            # No such extension: the PBX gives up without running anything and hangs
            # up (AST_SOFTHANGUP_APPUNLOAD = 16, no cause set). The customer never rings.
            pbx.soft_hangup_request(leg, 16)
            pbx.hangup(leg, 0)

    def _dial_and_talk(
        self,
        leg: Channel,
        target: Endpoint | str,
        reply: Reply,
        customer: Channel | None,
        callee: Callee | None = None,
    ) -> None:
        dialplan = self.dialplan
        talk_for = callee or Callee()

        def connected(talk: Talk) -> None:
            talk.customer = customer if customer is not None else talk.b
            dialplan.converse(talk, talk_for.talk, talk_for.ended_by)

        dialplan.dial(leg, target, 30.0, reply, on_answer=connected)


class LocalOperator:
    """The operator's phone rung through a Local pair, until ``;1`` answers or gives up."""

    def __init__(
        self,
        originator: Originator,
        req: OriginateRequest,
        one: Channel,
        two: Channel,
        endpoint: Endpoint,
    ) -> None:
        self.originator = originator
        self.pbx = originator.pbx
        self.dialplan = originator.dialplan
        self.req, self.one, self.two, self.endpoint = req, one, two, endpoint
        self.attempt: DialAttempt | None = None
        self.over = False

    def ring(self) -> None:
        dialplan, endpoint = self.dialplan, self.endpoint
        reply = self.originator.reply_for(endpoint.device)  # dial() checks for busy
        self.attempt = dialplan.dial(
            self.two,
            endpoint,
            self.req.timeout + 3600.0,  # Dial(PJSIP/1001,,): only the Originate times out
            reply,
            on_answer=self._answered,
            on_ringing=self._ringing,
            on_fail=self._failed,
        )
        self.timer = self.pbx.sched.later(self.req.timeout, self._give_up, 19, "noanswer")
        dialplan.enders[self.one.name] = lambda cause: self._give_up(cause, "failed")

    def _ringing(self) -> None:
        self.pbx.set_state(self.one, RINGING)
        self.pbx.dial_state(None, self.one)

    def _answered(self, talk: Talk) -> None:
        pbx, one, two = self.pbx, self.one, self.two
        self.over = True
        pbx.sched.cancel(self.timer)
        self.dialplan.enders.pop(one.name, None)
        talk.customer = None  # the operator's own leg: whoever quits, it is "the operator"
        pbx.set_state(one, UP)
        self.originator._respond(self.req, one, "answer")
        pbx.dial_end(None, one, "ANSWER")
        # From now on either half hanging up takes the other one along.
        pbx.hangup_hooks[one.name] = lambda: self.dialplan.hangup_channel(two.name)
        pbx.hangup_hooks[two.name] = lambda: self.dialplan.hangup_channel(one.name)
        self.originator._run_dialplan(one, self.req)

    def _failed(self, status: str, cause: int, tech: str) -> None:
        if self.over:
            return
        self.over = True
        self.pbx.sched.cancel(self.timer)
        self.dialplan.enders.pop(self.one.name, None)
        self.originator._local_fails(
            self.req,
            self.one,
            self.two,
            attempt=self.attempt,
            dialstatus=status,
            cause=cause or 16,
            tech=tech,
        )

    def _give_up(self, cause: int, kind: str) -> None:
        """The Originate's ``Timeout`` (cause 19, Reason 3, trace 08-operator-noanswer)
        or an AMI ``Hangup`` of ``;1`` (Reason 0): ``;2``'s ``Dial()`` is cancelled."""
        if self.over or self.attempt is None:
            return
        self.over = True
        pbx, one, two = self.pbx, self.one, self.two
        pbx.sched.cancel(self.timer)
        self.dialplan.enders.pop(one.name, None)

        def respond() -> None:
            self.originator._respond(self.req, None, kind)
            pbx.soft_hangup_request(two, 16)

        self.dialplan.caller_gives_up(self.attempt, cause, before_hangup=respond)
        pbx.hangup(one, cause)
