"""One callback attempt, from its claim to its outcome: a table of states and inputs (pure).

The dialer rings the operator first (``Originate``, ``Async``, a fresh ``ChannelId``);
once the operator answers, the ``[dialer] context`` dials the customer from that same
channel. ``OriginateResponse: Success`` therefore only says the operator answered: the
customer may still be busy (trace ``08-callback-originate-customer-busy``). The outcome
comes from the events of the *first leg*, the channel whose Uniqueid is the attempt's
``channel_id`` (the Linkedid of the whole call)::

               sent                 operator's leg seen
    claimed ─────────▶ originating ─────────────────────▶ operator_ringing
       │                    │                                  │
       │ not sent           │ OriginateResponse Failure,       │ OriginateResponse Success,
       │ (cancelled)        │ the operator's leg hangs up      │ the operator's DialEnd ANSWER
       ▼                    ▼ (operator_*)                     ▼
     ended ◀─────────────── ◀──────────────────────────── operator_answered
       ▲  ▲  hangs up before the customer's dial (failed)      │ customer's DialBegin
       │  │                                                    ▼
       │  └── customer's DialEnd BUSY/NOANSWER/CANCEL/other, customer_dialling
       │      or a hang-up before it (busy, no_answer, ...)    │ DialEnd ANSWER (answered)
       │                                                       ▼
       └────────────────── the first leg hangs up ────────── talking

    outcome_unknown (link lost, no OriginateResponse): the same state, output ``resolve``;
    then what the PBX says: live_* (its phase: may move on, bridged = answered) or gone
    (``unknown``).

Events on a PBX are not strictly ordered the way the picture reads: the customer's
``DialBegin`` may come before the ``OriginateResponse`` (trace 07 with ChannelId), so the
customer's dial is taken from every state before it, and a late ``OriginateResponse``
changes nothing. An input that does not apply in the current state is ignored.

Correlation: by ``channel_id`` (the request's ``ChannelId``: the first leg's Uniqueid);
a PBX that ignores ``ChannelId`` is followed from the ``OriginateResponse`` with the
attempt's ``action_id`` on, whose ``Uniqueid`` names the first leg (it replaces the
channel_id then) (the recorded traces
without ChannelId: the events before it are not seen, and the ones that decide come
after it).

Outputs are names the owner (``service.py``) acts on: ``outcome`` (the attempt has its
outcome, :attr:`CallbackAttempt.outcome` and ``detail``: store it) and ``resolve`` (the
outcome may be lost: ask the PBX whether the call is still there, then feed
:meth:`CallbackAttempt.found`). ``outcome`` is given once per attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cti_bridge.ami.parser import Message

__all__ = [
    "CLAIMED",
    "CUSTOMER_DIALLING",
    "ENDED",
    "OPERATOR_ANSWERED",
    "OPERATOR_RINGING",
    "ORIGINATING",
    "OUTCOME",
    "RESOLVE",
    "STATES",
    "TALKING",
    "TRANSITIONS",
    "CallbackAttempt",
    "Signal",
    "find_call",
]

# -- states ----------------------------------------------------------------------------------
CLAIMED = "claimed"  # committed in the store; the Originate is not out yet
ORIGINATING = "originating"  # the Originate went out (or may have): nothing seen yet
OPERATOR_RINGING = "operator_ringing"  # the first leg exists: the operator's phone rings
OPERATOR_ANSWERED = "operator_answered"  # the operator answered; the callback context runs
CUSTOMER_DIALLING = "customer_dialling"  # the first leg dials the customer
TALKING = "talking"  # the customer answered (outcome ``answered``)
ENDED = "ended"
STATES = (
    CLAIMED,
    ORIGINATING,
    OPERATOR_RINGING,
    OPERATOR_ANSWERED,
    CUSTOMER_DIALLING,
    TALKING,
    ENDED,
)

# -- inputs ----------------------------------------------------------------------------------
SENT = "sent"  # the Originate is handed to the link
NOT_SENT = "not_sent"  # OriginateNotSent: nothing went out
REFUSED = "refused"  # OriginateRefused: the PBX said Error, nothing dials
OUTCOME_UNKNOWN = "outcome_unknown"  # OriginateOutcomeUnknown: link lost or no response
OPERATOR_RUNG = "operator_rung"  # the first leg's Newchannel, or the Originate's own DialBegin
#: OriginateResponse Success; the Originate's own DialEnd ANSWER of the operator's leg
OPERATOR_PICKED_UP = "operator_picked_up"
OPERATOR_FAILED = "operator_failed"  # OriginateResponse Failure (the signal has the outcome)
CUSTOMER_DIALLED = "customer_dialled"  # DialBegin from the first leg to another channel
CUSTOMER_ANSWERED = "customer_answered"  # that dial's DialEnd ANSWER
CUSTOMER_NOT_REACHED = "customer_not_reached"  # any other DialEnd (the signal has the outcome)
HUNG_UP = "hung_up"  # the first leg's Hangup (the signal has the operator's outcome)
LIVE_RINGING = "live_ringing"  # found on the PBX: not answered yet
LIVE_ANSWERED = "live_answered"  # found: up, not dialling, not bridged
LIVE_DIALLING = "live_dialling"  # found: up, running Dial
LIVE_BRIDGED = "live_bridged"  # found: up and bridged (the customer answered)
GONE = "gone"  # not on the PBX (any more)

# -- outputs ---------------------------------------------------------------------------------
OUTCOME = "outcome"
RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Signal:
    """One input, with what it says about the outcome where that is its to say."""

    name: str
    outcome: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    to: str
    outputs: tuple[str, ...] = ()
    #: A verdict of the transition itself; ``None``: the signal's.
    outcome: str | None = None
    detail: str | None = None


_BEFORE_ANSWER = (ORIGINATING, OPERATOR_RINGING)
_BEFORE_CUSTOMER = (*_BEFORE_ANSWER, OPERATOR_ANSWERED)
_FOLLOWING = (*_BEFORE_CUSTOMER, CUSTOMER_DIALLING)


def _table() -> dict[tuple[str, str], Transition]:
    done = Transition(ENDED, (OUTCOME,))
    t: dict[tuple[str, str], Transition] = {
        (CLAIMED, SENT): Transition(ORIGINATING),
        (ORIGINATING, OPERATOR_RUNG): Transition(OPERATOR_RINGING),
        (ORIGINATING, LIVE_RINGING): Transition(OPERATOR_RINGING),
        (OPERATOR_ANSWERED, HUNG_UP): Transition(
            ENDED,
            (OUTCOME,),
            "failed",
            "the call ended before the customer was dialled (no such number in the "
            "callback context?)",
        ),
        (CUSTOMER_DIALLING, HUNG_UP): Transition(
            ENDED, (OUTCOME,), "cancelled", "the call ended while the customer's phone rang"
        ),
        (TALKING, HUNG_UP): Transition(ENDED),
        (TALKING, GONE): Transition(ENDED),
    }
    for state in (CLAIMED, ORIGINATING):
        # Nothing was dialled: it counts as an attempt all the same, never a blind re-dial.
        t[state, NOT_SENT] = Transition(ENDED, (OUTCOME,), "cancelled", "not sent")
        t[state, REFUSED] = done
    for state in _BEFORE_ANSWER:
        t[state, OPERATOR_FAILED] = done
        t[state, HUNG_UP] = done  # the signal carries the operator's outcome (the cause)
        t[state, OPERATOR_PICKED_UP] = Transition(OPERATOR_ANSWERED)
        t[state, LIVE_ANSWERED] = Transition(OPERATOR_ANSWERED)
    for state in _BEFORE_CUSTOMER:
        t[state, CUSTOMER_DIALLED] = Transition(CUSTOMER_DIALLING)
        t[state, LIVE_DIALLING] = Transition(CUSTOMER_DIALLING)
    for state in _FOLLOWING:
        t[state, CUSTOMER_ANSWERED] = Transition(TALKING, (OUTCOME,), "answered")
        t[state, LIVE_BRIDGED] = Transition(
            TALKING, (OUTCOME,), "answered", "found bridged on the PBX"
        )
        t[state, CUSTOMER_NOT_REACHED] = done
        t[state, OUTCOME_UNKNOWN] = Transition(state, (RESOLVE,))
        t[state, GONE] = Transition(ENDED, (OUTCOME,), "unknown")
    return t


#: ``(state, input) -> Transition``; pairs not listed are ignored.
TRANSITIONS: Mapping[tuple[str, str], Transition] = _table()

#: The customer's ``DialEnd`` ``DialStatus`` → the attempt's outcome (other: ``failed``).
DIAL_STATUS_OUTCOMES: Mapping[str, str] = {
    "ANSWER": "answered",
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CANCEL": "cancelled",  # the operator hung up before the customer answered
}

#: Hangup causes of an unanswered first leg that mean "the operator did not answer".
_NO_ANSWER_CAUSES = frozenset({"18", "19"})

#: Q.850 causes of the customer's leg that mean the number cannot be reached at all,
#: whatever the ``DialEnd`` said: a trunk's SIP 404 is cause 1 and Asterisk's
#: ``DialEnd`` calls it ``NOANSWER`` (docs/asterisk.md), a customer who let it ring out.
UNREACHABLE_CAUSES: Mapping[str, str] = {
    "1": "unallocated number",
    "2": "no route to the network",
    "3": "no route to destination",
    "22": "number changed",
    "27": "destination out of order",
    "28": "invalid number format",
    "38": "network out of order",
}


def operator_outcome(reason: int | None) -> str:
    """``OriginateResponse`` Failure ``Reason`` → outcome: 3 no answer, the rest (5 busy,
    8 congestion, 0 no such channel, 1 hung up, none) the operator is unavailable."""
    return "operator_no_answer" if reason == 3 else "operator_unavailable"


class CallbackAttempt:
    """One attempt's machine. Feed it :meth:`event` (AMI events of its PBX, any of them:
    it picks its own), the Originate's fate (:meth:`sent`, :meth:`originate_failed`,
    :meth:`originate_result`) and what the PBX says of it (:meth:`found`); each returns
    the outputs to act on."""

    def __init__(
        self,
        agreement_id: int,
        number: int,
        *,
        channel_id: str | None,
        action_id: str | None = None,
        state: str = CLAIMED,
    ) -> None:
        if state not in STATES:
            raise ValueError(f"{state!r} is not an attempt state")
        self.agreement_id = agreement_id
        self.number = number
        self.channel_id = channel_id
        self.action_id = action_id
        #: The first leg's Uniqueid: the ChannelId, or learned from the OriginateResponse.
        self.first_leg = channel_id
        self.state = state
        self.outcome: str | None = None
        self.detail: str | None = None
        #: A customer's ``DialEnd NOANSWER`` waits for that leg's ``Hangup`` cause:
        #: ``(the customer leg's Uniqueid, the DialEnd's detail)``.
        self._no_answer: tuple[str, str] | None = None

    @classmethod
    def resumed(
        cls, agreement_id: int, number: int, *, channel_id: str | None, action_id: str | None
    ) -> CallbackAttempt:
        """An attempt found open in the store (after a restart or a lost link): the
        Originate went out earlier, nothing is known of it since."""
        return cls(
            agreement_id, number, channel_id=channel_id, action_id=action_id, state=ORIGINATING
        )

    @property
    def ended(self) -> bool:
        return self.state == ENDED

    def input(self, signal: Signal) -> tuple[str, ...]:
        transition = TRANSITIONS.get((self.state, signal.name))
        if transition is None:
            return ()
        self.state = transition.to
        if OUTCOME in transition.outputs:
            self.outcome = transition.outcome or signal.outcome or "failed"
            self.detail = transition.detail or signal.detail
        return transition.outputs

    # -- what the service tells it ---------------------------------------------------------

    def sent(self) -> tuple[str, ...]:
        return self.input(Signal(SENT))

    def originate_failed(self, kind: str, why: str) -> tuple[str, ...]:
        """``kind``: ``not_sent``, ``refused`` or ``outcome_unknown`` (the three
        ``Originate*`` errors of ``ami/originate.py``)."""
        if kind == REFUSED:
            return self.input(Signal(REFUSED, "failed", f"refused by the PBX: {why}"))
        if kind == NOT_SENT:
            return self.input(Signal(NOT_SENT))
        if kind == OUTCOME_UNKNOWN:
            return self.input(Signal(OUTCOME_UNKNOWN, detail=why))
        raise ValueError(f"{kind!r} is not an Originate failure")

    def originate_result(
        self, success: bool, reason: int | None, uniqueid: str | None
    ) -> tuple[str, ...]:
        """The ``OriginateResponse`` (from the Originate's Deferred or the event stream;
        the second of the two changes nothing)."""
        return self.input(self._originate_signal(success, reason, uniqueid))

    def found(self, item: Message | None) -> tuple[str, ...]:
        """What the PBX's ``Status`` list says of the call (see :func:`find_call`):
        ``None``, gone; else its phase."""
        if item is None:
            return self.input(Signal(GONE, detail="the call was gone from the PBX"))
        linkedid = item.get("Linkedid")
        if linkedid and not self.ended:
            # Every channel of an originated call has the first leg's Uniqueid as its
            # Linkedid: a call found by its variables is followed by it from now on.
            self.first_leg = linkedid
        return self.input(Signal(_phase(item)))

    def event(self, msg: Message) -> tuple[str, ...]:
        signal = self.signal_for(msg)
        return () if signal is None else self.input(signal)

    # -- reading AMI events ----------------------------------------------------------------

    def _originate_signal(self, success: bool, reason: int | None, uniqueid: str | None) -> Signal:
        if uniqueid and uniqueid != "<unknown>":
            self.first_leg = uniqueid  # the same as the ChannelId, unless the PBX ignored it
        if success:
            return Signal(OPERATOR_PICKED_UP)
        text = _REASONS.get(reason, f"reason {reason}") if reason is not None else "no reason"
        return Signal(OPERATOR_FAILED, operator_outcome(reason), f"operator's leg: {text}")

    def signal_for(self, msg: Message) -> Signal | None:
        """The input an event is for this attempt, or ``None`` (another call's, or of no
        consequence)."""
        name = msg.get("Event")
        if name == "OriginateResponse":
            if self.action_id is None or msg.get("ActionID") != self.action_id:
                return None
            reason = msg.get("Reason", "")
            return self._originate_signal(
                msg.get("Response", "").lower() == "success",
                int(reason) if reason.isdigit() else None,
                msg.get("Uniqueid"),
            )
        leg = self.first_leg
        if leg is None:
            return None
        if name == "Newchannel":
            return Signal(OPERATOR_RUNG) if msg.get("Uniqueid") == leg else None
        if name == "Hangup":
            pending = self._no_answer
            if pending is not None and msg.get("Uniqueid") in (pending[0], leg):
                # The customer's leg (or, had its Hangup been missed, the first leg)
                # ends after a NOANSWER: its cause tells "rang out" from "no such number".
                self._no_answer = None
                return self._customer_no_answer(pending[1], msg)
            if msg.get("Uniqueid") != leg:
                return None
            cause = msg.get("Cause", "")
            outcome = "operator_no_answer" if cause in _NO_ANSWER_CAUSES else "operator_unavailable"
            return Signal(HUNG_UP, outcome, f"the operator's leg hung up (cause {cause or '?'})")
        if name not in ("DialBegin", "DialEnd"):
            return None
        caller, dest = msg.get("Uniqueid"), msg.get("DestUniqueid")
        if caller == leg and dest != leg:  # the first leg dials: the customer
            if name == "DialBegin":
                return Signal(CUSTOMER_DIALLED)
            status = msg.get("DialStatus", "")
            outcome = DIAL_STATUS_OUTCOMES.get(status, "failed")
            if outcome == "answered":
                return Signal(CUSTOMER_ANSWERED)
            detail = f"customer's leg: {status or '?'}"
            if outcome == "no_answer" and dest and self.state == CUSTOMER_DIALLING:
                self._no_answer = (dest, detail)
                return None
            return Signal(CUSTOMER_NOT_REACHED, outcome, detail)
        if dest == leg and not caller:  # the Originate's own dial of the operator
            if name == "DialBegin":
                return Signal(OPERATOR_RUNG)
            if msg.get("DialStatus") == "ANSWER":
                return Signal(OPERATOR_PICKED_UP)
        return None  # the OriginateResponse says why the operator's leg failed

    def _customer_no_answer(self, detail: str, hangup: Message) -> Signal:
        cause = hangup.get("Cause", "")
        if hangup.get("Uniqueid") != self.first_leg and cause in UNREACHABLE_CAUSES:
            why = UNREACHABLE_CAUSES[cause]
            return Signal(CUSTOMER_NOT_REACHED, "failed", f"{detail}, cause {cause} ({why})")
        return Signal(CUSTOMER_NOT_REACHED, "no_answer", detail)


_REASONS: Mapping[int | None, str] = {
    0: "not dialled (no such channel or extension)",
    1: "hung up",
    3: "no answer",
    5: "busy",
    8: "congestion",
}


def _phase(item: Message) -> str:
    """A live channel's phase from its ``Status`` item."""
    if item.get("ChannelState") != "6":  # not Up
        return LIVE_RINGING
    if item.get("BridgeID") or item.get("BridgedUniqueid"):
        return LIVE_BRIDGED
    if item.get("Application", "").lower() == "dial":
        return LIVE_DIALLING
    return LIVE_ANSWERED


def find_call(
    items: Iterable[Message], *, channel_id: str | None, agreement_id: int, number: int
) -> Message | None:
    """The ``Status`` item of an attempt's call: the first leg (Uniqueid = channel_id),
    else any channel of the call (Linkedid = channel_id), else a channel carrying the
    attempt's ``CTI_AGREEMENT_ID`` and ``CTI_ATTEMPT`` (``Variables`` asked for)."""
    listed = list(items)
    if channel_id:
        for key in ("Uniqueid", "Linkedid"):
            for item in listed:
                if item.get(key) == channel_id:
                    return item
    for item in listed:
        variables = item.variables("Variable")
        if variables.get("CTI_AGREEMENT_ID") == str(agreement_id) and variables.get(
            "CTI_ATTEMPT"
        ) == str(number):
            return item
    return None
