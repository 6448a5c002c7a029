"""AMI ``Originate`` (always asynchronous): how cti-bridge dials callbacks.

Asterisk first rings the requested channel (for a callback: the operator's phone);
``OriginateResponse`` reports that first leg only (Reason 4 answered, 3 no answer,
5 busy, 8 congestion, 0 could not even create the channel). Once it is answered the
channel runs ``Context,Exten``: in ``callback`` that dials the customer over the
trunk (pjsip traces 05, 06, 06b; Local traces 07 and 08). ``Success`` therefore does
not mean the customer was reached (quirk 14).
"""

from __future__ import annotations

from dataclasses import dataclass

from .channels import DOWN, RINGING, UP, Channel
from .dialplan import Callee, Dialplan, Talk
from .pbx import CALL, Endpoint
from .phones import Reply, Ringing

__all__ = ["OriginateRequest", "Originator"]

#: The Originate's ``Reason`` for each way the first leg can fail.
REASONS = {"answer": 4, "noanswer": 3, "busy": 5, "congestion": 8, "failed": 0}


@dataclass(frozen=True)
class OriginateRequest:
    channel: str  # PJSIP/1001 (operator first) or PJSIP/0470123456@pstn (customer first)
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
    def __init__(self, dialplan: Dialplan) -> None:
        self.dialplan = dialplan
        self.pbx = dialplan.pbx

    def originate(self, req: OriginateRequest) -> None:
        """Start the call; the caller has already sent ``Originate successfully queued``."""
        pbx = self.pbx
        tech, _, resource = req.channel.partition("/")
        number, _, via = resource.partition("@")
        endpoint = pbx.endpoint_for_exten(resource) or pbx.endpoints.get(req.channel)
        to_trunk = bool(via) and via == pbx.trunk and number != ""
        if tech.upper() != "PJSIP" or (endpoint is None and not to_trunk):
            # No channel can be created: the response is all there is (trace 08-invalid).
            pbx.sched.later(0.0, self._respond, req, None, "failed")
            return
        pbx.calls_processed += 1
        if endpoint is not None:
            wanted = self.dialplan.default_reply(endpoint.device)
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
                caller=("<unknown>", "<unknown>"),
                context="from-pstn",
                exten="s",
                uniqueid=req.channel_id,
            )
            reply = self.dialplan.callee_for(number).reply
            dialstring = resource
        pbx.newexten(leg, "AppDial2", "(Outgoing Line)")
        for name, value in req.variables:
            pbx.setvar(leg, name, value)
        if req.caller_id is not None:
            num, name = req.caller_id
            pbx.new_callerid(leg, num, name, "0 (Presentation Allowed, Not Screened)")
            pbx.connected_line(leg, num, name)
        pbx.dial_begin(None, leg, dialstring)
        state = {"over": False}

        def rang(_: Ringing) -> None:
            pbx.dial_state(None, leg)
            pbx.set_state(leg, RINGING)

        def answered(_: Ringing) -> None:
            state["over"] = True
            pbx.sched.cancel(timer)
            self.dialplan.enders.pop(leg.name, None)
            pbx.set_state(leg, UP)
            self._respond(req, leg, "answer")
            pbx.dial_end(None, leg, "ANSWER")
            self._run_dialplan(leg, req)

        def failed(kind: str, cause: int, tech_cause: str) -> None:
            if state["over"]:
                return
            state["over"] = True
            pbx.sched.cancel(timer)
            self.dialplan.enders.pop(leg.name, None)
            self.dialplan.ringer.cancel(ringing)
            if kind in ("busy", "congestion"):
                pbx.hangup_request(leg, cause, tech_cause)
                pbx.dial_end(None, leg, kind.upper())
            self._respond(req, None, kind)
            pbx.hangup(leg, cause, tech_cause)

        ringing = self.dialplan.ringer.ring(
            leg,
            reply,
            on_ringing=rang,
            on_answer=answered,
            on_reject=lambda _, cause, t: failed("busy" if cause == 17 else "congestion", cause, t),
        )
        timer = pbx.sched.later(req.timeout, failed, "noanswer", 19, "480")
        self.dialplan.enders[leg.name] = lambda cause: failed("failed", 16, "")

    def _respond(self, req: OriginateRequest, leg: Channel | None, kind: str) -> None:
        num, name = req.caller_id or ("<unknown>", "<unknown>")
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

    def _run_dialplan(self, leg: Channel, req: OriginateRequest) -> None:
        """The answered first leg runs ``req.context, req.exten``."""
        pbx, dialplan = self.pbx, self.dialplan
        leg.context, leg.exten, leg.priority = req.context, req.exten, 1
        endpoint = pbx.endpoint_for_exten(req.exten)
        queue = dialplan.queues.by_did(req.exten)
        if endpoint is not None:
            # Customer first (``cti-connect,1001``): now ring the operator.
            pbx.newexten(leg, "NoOp", f"connect to operator {endpoint.exten}", priority=1)
            pbx.newexten(leg, "Dial", f"{endpoint.device},30", priority=2)
            self._dial_and_talk(leg, endpoint, dialplan.default_reply(endpoint.device), leg)
        elif queue is not None or not req.exten.isdigit():
            pbx.newexten(leg, "Hangup", "", priority=1)
            pbx.soft_hangup_request(leg, 16)
            pbx.hangup(leg, 16)
        else:
            agreement = leg.variables.get("CTI_AGREEMENT_ID", "")
            pbx.newexten(leg, "NoOp", f"CTI callback agreement {agreement}", priority=1)
            pbx.newexten(leg, "Dial", f"PJSIP/{req.exten}@{pbx.trunk},30", priority=2)
            callee = dialplan.callee_for(req.exten)
            self._dial_and_talk(leg, req.exten, callee.reply, None, callee)

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
