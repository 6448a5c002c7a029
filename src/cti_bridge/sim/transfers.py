"""Transfers to the second line: blind, attended, and AMI ``Redirect``.

They follow the Local-channel recordings (traces 05, 05-redirect and 06), with the
operator's leg a single PJSIP channel instead of a Local pair:

* **blind** (``BlindTransfer`` action or the phone's blind-transfer key): a
  ``BlindTransfer`` event, ``AgentComplete Reason: transfer``, the operator's leg hangs
  up and the customer runs ``internal,2001`` -- ``Dial(PJSIP/2001,30)`` -- keeping its
  ``Linkedid``;
* **attended** (``Atxfer`` or the ``*2`` feature code): the customer is held, a
  ``Local/2001@internal`` pair (same ``Linkedid``) dials 2001 and is bridged with the
  operator; when the operator hangs up the consultation bridge merges into the
  customer's (``BridgeMerge``, ``AttendedTransfer``) and the customer talks to 2001
  through the Local pair;
* **redirect**: the customer simply leaves the queue bridge -- no transfer event, and
  the queue's ``AgentComplete`` waits until the customer hangs up (quirk 16).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .channels import RINGING, UP, Bridge, Channel
from .pbx import CALL
from .phones import Reply
from .queues import QueueCall

if TYPE_CHECKING:
    from .dialplan import Dialplan, Talk

__all__ = ["Transfers"]


@dataclass(eq=False)
class Consultation:
    """An attended transfer in progress: the operator talks to the target first."""

    talk: Talk  # the customer <-> operator conversation being transferred
    one: Channel  # Local/<exten>@internal-...;1, bridged with the operator
    two: Channel  # ...;2, which dials the target
    bridge: Bridge  # the consultation bridge (operator + ;1)
    talk_after: float
    inner: Talk | None = None  # ;2 <-> the target's leg, once the target answered
    complete_on_answer: bool = False
    customer_gone: bool = False
    done: bool = False


class Transfers:
    def __init__(self, dialplan: Dialplan) -> None:
        self.dialplan = dialplan
        self.pbx = dialplan.pbx

    # -- blind ------------------------------------------------------------------

    def blind(
        self,
        talk: Talk,
        transferer: Channel,
        exten: str,
        context: str = "internal",
        *,
        talk_after: float | None = None,
        reply: Reply | None = None,
        via_ami: bool = False,
    ) -> bool:
        pbx, dialplan = self.pbx, self.dialplan
        if pbx.endpoint_for_exten(exten) is None or talk.over:
            return False
        transferee = talk.b if transferer is talk.a else talk.a
        dialplan.forget(talk)
        talk.over = True
        bridge = talk.bridge
        if via_ami:
            pbx.hold(transferer, False)
        pbx.setvar(transferee, "BLINDTRANSFER", transferer.name)
        pbx.setvar(transferer, "BLINDTRANSFER", transferee.name)
        pbx.setvar(transferer, "BRIDGEPEER", "")
        pbx.emit(
            "BlindTransfer",
            CALL,
            [
                ("Result", "Success"),
                *transferer.snapshot("Transferer"),
                *transferee.snapshot("Transferee"),
                *bridge.snapshot(),
                ("IsExternal", "Yes"),
                ("Context", context),
                ("Extension", exten),
            ],
        )
        pbx.bridge_leave(bridge, transferer)
        pbx.soft_hangup_request(transferer, 16)
        if talk.queue_call is not None:
            dialplan.queues.complete(talk.queue_call, "transfer")
        pbx.hangup(transferer, 16)
        self._continue_to(
            transferee, exten, context, old_bridge=bridge, talk_after=talk_after, reply=reply
        )
        return True

    def redirect(self, chan: Channel, exten: str, context: str = "internal") -> bool:
        pbx, dialplan = self.pbx, self.dialplan
        talk = dialplan.talks.get(chan.name)
        if talk is None or pbx.endpoint_for_exten(exten) is None:
            return False
        dialplan.forget(talk)
        talk.over = True
        operator = talk.b if chan is talk.a else talk.a
        pbx.bridge_leave(talk.bridge, chan)
        pbx.setvar(operator, "BRIDGEPEER", "")
        pbx.bridge_leave(talk.bridge, operator)
        pbx.bridge_destroy(talk.bridge)
        pbx.soft_hangup_request(operator, 16)
        pbx.hangup(operator, 16)
        self._continue_to(chan, exten, context, deferred=talk.queue_call)
        return True

    def _continue_to(
        self,
        customer: Channel,
        exten: str,
        context: str,
        *,
        old_bridge: Bridge | None = None,
        talk_after: float | None = None,
        reply: Reply | None = None,
        deferred: QueueCall | None = None,
    ) -> None:
        """The customer runs ``<context>,<exten>``: ``Dial(PJSIP/<exten>,30)``."""
        pbx, dialplan = self.pbx, self.dialplan
        endpoint = pbx.endpoint_for_exten(exten)
        assert endpoint is not None
        customer.context, customer.exten = context, exten
        pbx.setvar(customer, "BRIDGEPEER", "")
        pbx.newexten(customer, "NoOp", f"internal call to {exten}", priority=1)
        if old_bridge is not None:
            pbx.bridge_leave(old_bridge, customer)
            pbx.bridge_destroy(old_bridge)
        pbx.newexten(customer, "Dial", f"{endpoint.device},30", priority=2)
        seconds = talk_after if talk_after is not None else dialplan.callee_for(exten).talk

        def connected(talk: Talk) -> None:
            talk.customer = customer
            talk.deferred_complete = deferred
            dialplan.converse(talk, seconds, "caller")

        target_reply = reply or dialplan.default_reply(endpoint.device)
        dialplan.dial(customer, endpoint, 30.0, target_reply, on_answer=connected)

    # -- attended -----------------------------------------------------------------

    def attended(
        self,
        talk: Talk,
        exten: str,
        context: str = "internal",
        *,
        consult: float = 6.0,
        talk_after: float = 25.0,
        reply: Reply | None = None,
        via_ami: bool = False,
    ) -> bool:
        pbx, dialplan = self.pbx, self.dialplan
        endpoint = pbx.endpoint_for_exten(exten)
        if endpoint is None or talk.over:
            return False
        dialplan.forget(talk)
        operator, customer, bridge = talk.b, talk.a, talk.bridge
        if via_ami:
            pbx.setvar(operator, "TRANSFER_CONTEXT", context)
        pbx.hold(operator, True)
        one, two = pbx.new_local_pair(
            exten, context, (customer.caller_num, customer.caller_name), operator.linkedid
        )
        pbx.setvar(one, "TRANSFERERNAME", operator.name)
        pbx.setvar(one, "ATTENDEDTRANSFER", operator.name)
        consult_bridge = pbx.bridge_create()
        pbx.setvar(two, "ATTENDEDTRANSFER", operator.name)
        pbx.setvar(two, "TRANSFERERNAME", operator.name)
        pbx.emit(
            "LocalBridge",
            CALL,
            [
                *one.snapshot("LocalOne"),
                *two.snapshot("LocalTwo"),
                ("Context", context),
                ("Exten", exten),
                ("LocalOptimization", "Yes"),
            ],
        )
        pbx.newexten(two, "NoOp", f"internal call to {exten}", priority=1)
        pbx.newexten(two, "Dial", f"{endpoint.device},30", priority=2)
        pbx.bridge_enter(consult_bridge, one)
        pbx.setvar(one, "ATTENDEDTRANSFER", "")
        pbx.bridge_leave(bridge, operator)
        pbx.bridge_enter(consult_bridge, operator)
        c = Consultation(talk, one, two, consult_bridge, talk_after)
        dialplan.enders[operator.name] = lambda cause: self._operator_hangs_up(c)
        dialplan.enders[customer.name] = lambda cause: self._customer_hangs_up(c)

        def target_rings() -> None:
            pbx.set_state(one, RINGING)
            pbx.dial_state(None, one)

        def target_answers(inner: Talk) -> None:
            c.inner = inner
            dialplan.forget(inner)
            pbx.set_state(one, UP)
            pbx.dial_end(None, one, "ANSWER")
            pbx.bridge_peer_vars(one, operator)
            if c.complete_on_answer:
                self._complete(c)
            else:
                pbx.sched.later(consult, self._complete, c)

        dialplan.dial(
            two,
            endpoint,
            30.0,
            reply or dialplan.default_reply(endpoint.device),
            on_answer=target_answers,
            on_ringing=target_rings,
            on_fail=lambda status, cause, tech: self._abort(c),
        )
        return True

    def _operator_hangs_up(self, c: Consultation) -> None:
        if c.inner is not None:
            self._complete(c)
        else:
            c.complete_on_answer = True

    def _customer_hangs_up(self, c: Consultation) -> None:
        """The held customer gives up: their part ends, the consultation goes on."""
        pbx, talk = self.pbx, c.talk
        customer = talk.a
        self.dialplan.enders.pop(customer.name, None)
        c.customer_gone = True
        pbx.hangup_request(customer, 16)
        if talk.queue_call is not None:
            self.dialplan.queues.complete(talk.queue_call, "caller")
        pbx.bridge_leave(talk.bridge, customer)
        pbx.bridge_destroy(talk.bridge)
        pbx.hangup(customer, 16)

    def _complete(self, c: Consultation) -> None:
        """The operator hangs up: the target joins the customer (trace 06)."""
        if c.done or c.inner is None:
            return
        c.done = True
        pbx, dialplan, talk = self.pbx, self.dialplan, c.talk
        operator, customer, bridge, one = talk.b, talk.a, talk.bridge, c.one
        dialplan.enders.pop(operator.name, None)
        dialplan.enders.pop(customer.name, None)
        pbx.hangup_request(operator, 16)
        pbx.setvar(operator, "BRIDGEPEER", "")
        pbx.bridge_leave(c.bridge, operator)
        if c.customer_gone:
            pbx.bridge_leave(c.bridge, one)
            pbx.bridge_destroy(c.bridge)
            pbx.hangup(operator, 16)
            pbx.hangup(one, 16)
            self._local_teardown(c)
            return
        pbx.emit("BridgeMerge", CALL, [*bridge.snapshot("To"), *c.bridge.snapshot("From")])
        pbx.bridge_leave(c.bridge, one)
        pbx.bridge_enter(bridge, one)
        pbx.setvar(customer, "BRIDGEPEER", one.name)
        pbx.setvar(one, "BRIDGEPEER", customer.name)
        target = pbx.endpoints.get(c.inner.b.device)
        if target is not None:
            pbx.connected_line(customer, target.exten, target.name)
        pbx.emit(
            "AttendedTransfer",
            CALL,
            [
                ("Result", "Success"),
                *operator.snapshot("OrigTransferer"),
                *bridge.snapshot("Orig"),
                *operator.snapshot("SecondTransferer"),
                *c.bridge.snapshot("Second"),
                *customer.snapshot("Transferee"),
                ("IsExternal", "No"),
                ("DestType", "Bridge"),
                ("DestBridgeUniqueid", bridge.uniqueid),
            ],
        )
        if talk.queue_call is not None:
            dialplan.queues.complete(talk.queue_call, "transfer")
        pbx.bridge_destroy(c.bridge)
        pbx.hangup(operator, 16)
        talk.over = True
        # type(talk) is Talk: dialplan imports this module, not the other way round
        joined = type(talk)(customer, one, bridge, None, talk.dial_started, talk.started)
        joined.customer = customer
        joined.teardown = lambda: self._local_teardown(c)
        dialplan.register(joined)
        dialplan.converse(joined, c.talk_after, "caller")

    def _abort(self, c: Consultation) -> None:
        """The target did not answer: back to the customer, who hangs up a bit later."""
        pbx, dialplan, talk = self.pbx, self.dialplan, c.talk
        c.done = True
        operator = talk.b
        dialplan.enders.pop(operator.name, None)
        dialplan.enders.pop(talk.a.name, None)
        pbx.hangup(c.two, 16)
        pbx.bridge_leave(c.bridge, c.one)
        pbx.hangup(c.one, 16)
        pbx.bridge_leave(c.bridge, operator)
        pbx.bridge_destroy(c.bridge)
        if c.customer_gone:
            pbx.hangup(operator, 16)
            return
        pbx.bridge_enter(talk.bridge, operator)
        pbx.hold(operator, False)
        dialplan.register(talk)
        dialplan.converse(talk, 10.0, "caller")

    def _local_teardown(self, c: Consultation) -> None:
        """After the customer left: the Local ``;2`` half and the target's leg go too."""
        pbx, inner, two = self.pbx, c.inner, c.two
        assert inner is not None
        pbx.hangup_request(two, 16)
        pbx.bridge_leave(inner.bridge, two)
        pbx.bridge_leave(inner.bridge, inner.b)
        pbx.setvar(two, "DIALSTATUS", "ANSWER")
        pbx.soft_hangup_request(two, 16)
        pbx.hangup(two, 16)
        pbx.bridge_destroy(inner.bridge)
        pbx.hangup(inner.b, 16)
