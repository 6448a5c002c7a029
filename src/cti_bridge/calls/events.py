"""What the call model tells the rest of cti-bridge: calls and their domain events.

These types are the contract between ``calls/`` (which derives them from AMI events)
and everything downstream: call records (``store/``), screen-pops (``pop/``), live
supervision (``queues/``) and the bus. They hold plain data only. Every domain event
carries an immutable *snapshot* of the call as it is after that event, so a consumer
working in a thread pool never sees the model change underneath it.

Times are POSIX seconds (float): the event's ``Timestamp:`` header when Asterisk sends
one, the local arrival time otherwise. One call's durations always come from one clock.

A *device* is the channel prefix Asterisk uses for a phone, as in PRODUCT.md:
``PJSIP/1001-0000002a`` and ``Local/1001@agents-000000a7;1`` belong to the devices
``PJSIP/1001`` and ``Local/1001@agents``. Mapping devices to operators is not the
model's business; the store and the pop router do that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    INBOUND = "inbound"  # from outside (a trunk / the PSTN)
    OUTBOUND = "outbound"  # to outside: callbacks, click-to-dial, operators dialling out
    INTERNAL = "internal"  # device to device


class Outcome(StrEnum):
    """PRODUCT.md's definitions; set when the call ends."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"  # caller left a queue unanswered (also by the queue's timeout)
    MISSED = "missed"  # a direct call rang and nobody answered
    TRANSFERRED = "transferred"  # an answered call was transferred on
    FAILED = "failed"  # never reached anyone (busy, congestion, invalid, ...)


class RingResult(StrEnum):
    ANSWERED = "answered"
    CANCELLED = "cancelled"  # answered elsewhere, or the caller left
    NO_ANSWER = "no_answer"  # rang out (queue RingNoAnswer, Dial/Originate timeout)
    BUSY = "busy"
    UNAVAILABLE = "unavailable"  # unreachable / congestion / channel could not be made
    FAILED = "failed"


class HungUpBy(StrEnum):
    CALLER = "caller"  # the party that started the call (the customer on inbound calls)
    OPERATOR = "operator"  # the operator / device side
    SYSTEM = "system"  # PBX shutdown, queue timeout, resync closing a lost call


class QueueResult(StrEnum):
    """How the caller's (last) stay in a queue ended; both non-answers are ``abandoned``
    calls per PRODUCT.md, this keeps them apart for supervision."""

    ANSWERED = "answered"  # AgentConnect
    ABANDONED = "abandoned"  # the caller hung up while waiting
    TIMEOUT = "timeout"  # the queue's own timeout (QUEUESTATUS=TIMEOUT); the caller carried on
    EXITED = "exited"  # left unanswered for another reason (LEAVEEMPTY, a redirect, ...)


class TransferKind(StrEnum):
    BLIND = "blind"
    ATTENDED = "attended"
    REDIRECT = "redirect"  # AMI Redirect: no transfer event, seen as a move of the caller


@dataclass(frozen=True, slots=True)
class Ring:
    """One attempt to ring one device for this call."""

    device: str
    channel: str
    uniqueid: str
    started_at: float
    queue: str | None = None
    member_name: str | None = None  # the queue's MemberName, when a queue rang it
    ended_at: float | None = None
    result: RingResult | None = None
    #: A phone outside the helpdesk rang (a callback dialling the customer over the
    #: trunk): kept with the call's rings, but it is nobody's pop and not in ``rang``.
    outside: bool = False


@dataclass(frozen=True, slots=True)
class Segment:
    """One device talking on this call, from its answer to the end of its part."""

    device: str
    channel: str
    started_at: float
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    kind: TransferKind
    at: float
    from_device: str | None  # the operator who transferred
    to: str | None  # the target: a device once known, else the extension dialled


@dataclass(frozen=True, slots=True)
class Call:
    """A snapshot of one call: every channel that shares one Linkedid on one PBX."""

    pbx: str
    linkedid: str
    direction: Direction
    started_at: float
    caller_number_raw: str | None = None  # as the PBX sent it ("anonymous", "0470...")
    caller_name: str | None = None  # unescaped text; attacker-controlled
    caller_withheld: bool = False
    dialled: str | None = None  # the number dialled: the DID, an extension, a callee
    queue: str | None = None  # the first queue the call entered
    queues: tuple[str, ...] = ()
    queue_joined_at: float | None = None  # entering the first queue
    answered_at: float | None = None  # the first answer by a device
    #: Where the wait ended when nobody answered: the caller's hang-up, or leaving the
    #: queue on its own timeout (the caller then carries on in the dialplan).
    wait_ended_at: float | None = None
    answered_by: str | None = None  # the device that answered first
    ended_at: float | None = None
    rings: tuple[Ring, ...] = ()
    segments: tuple[Segment, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    hung_up_by: HungUpBy | None = None
    outcome: Outcome | None = None  # None while the call is live
    agreement_id: str | None = None  # CTI_AGREEMENT_ID on an originated callback
    originate_action_id: str | None = None
    #: False when the model had to close the call without seeing its end (resync after
    #: a lost link, PBX shutdown) or joined it half-way.
    complete: bool = True
    variables: dict[str, str] = field(default_factory=dict, compare=False)
    #: Added for the call model (backwards compatible): how the queue stay ended.
    queue_result: QueueResult | None = None
    #: The end was not seen: the call was gone from the PBX's channel list at a resync,
    #: so ``ended_at`` is an estimate (when the link was lost), not the hang-up itself.
    ended_at_approximate: bool = False

    @property
    def wait_seconds(self) -> float | None:
        """From entering the queue (a direct call: its start) to the first answer, or to
        the end when nobody answered. None while it is still running unanswered."""
        start = self.queue_joined_at if self.queue_joined_at is not None else self.started_at
        end = self.answered_at
        if end is None:
            end = self.wait_ended_at if self.wait_ended_at is not None else self.ended_at
        return None if end is None else max(0.0, end - start)

    @property
    def talk_seconds(self) -> float | None:
        """From the first answer to the end of the call, all parts included."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.answered_at)

    @property
    def current_devices(self) -> tuple[str, ...]:
        """Devices talking on the call now (after transfers: who ended up with it)."""
        return tuple(s.device for s in self.segments if s.ended_at is None)

    @property
    def ended_with(self) -> str | None:
        """The device that ended up with the call: still talking now, or the last one to
        stop talking once the call is over (after transfers: the transfer target)."""
        open_now = [s for s in self.segments if s.ended_at is None]
        if open_now:
            return open_now[-1].device
        best: Segment | None = None
        for seg in self.segments:
            if best is None or (seg.ended_at or 0.0) >= (best.ended_at or 0.0):
                best = seg
        return None if best is None else best.device


@dataclass(frozen=True, slots=True)
class CallStarted:
    call: Call


@dataclass(frozen=True, slots=True)
class OperatorRinging:
    """A device starts ringing for the call: the pop trigger."""

    call: Call
    ring: Ring


@dataclass(frozen=True, slots=True)
class RingEnded:
    """A ring attempt ended (answered, cancelled, no answer): withdraw that pop."""

    call: Call
    ring: Ring


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call: Call
    segment: Segment


@dataclass(frozen=True, slots=True)
class CallTransferred:
    call: Call
    transfer: Transfer


@dataclass(frozen=True, slots=True)
class CallEnded:
    call: Call


DomainEvent = CallStarted | OperatorRinging | RingEnded | CallAnswered | CallTransferred | CallEnded
