"""The mutable state the model keeps per live call and per channel.

Kept apart from the handlers (``handlers/``) so the rules that turn state into a record -
snapshot, outcome, who hung up - read in one place. Rings, segments and transfers are
held as the frozen ``events`` objects themselves and replaced when they change, so a
snapshot is a handful of ``tuple()`` calls, not a deep copy.
"""

from __future__ import annotations

from dataclasses import replace

from cti_bridge.calls.callerid import is_withheld
from cti_bridge.calls.events import (
    Call,
    Direction,
    HungUpBy,
    Outcome,
    QueueResult,
    Ring,
    RingResult,
    Segment,
    Transfer,
)

__all__ = ["CallState", "ChannelState", "pair_of"]


def pair_of(channel: str) -> str:
    """Both halves of a Local channel pair share one key; other channels are their own."""
    return channel[:-2] if channel.endswith((";1", ";2")) else channel


class ChannelState:
    """One channel the model saw being created (``Newchannel``) or listed at resync."""

    __slots__ = ("alive", "bridge", "call", "device", "linkedid", "name", "pair", "uniqueid")

    def __init__(
        self, uniqueid: str, name: str, linkedid: str, device: str, call: CallState
    ) -> None:
        self.uniqueid = uniqueid
        self.name = name
        self.linkedid = linkedid
        self.device = device
        self.pair = pair_of(name)
        self.call = call
        self.alive = True
        self.bridge: str | None = None


class CallState:
    """Everything known about one Linkedid while it is live."""

    __slots__ = (
        "agreement_id",
        "alive",
        "announced",
        "answered_at",
        "answered_by",
        "caller_name",
        "caller_number_raw",
        "caller_pairs",
        "channels",
        "complete",
        "dialled",
        "direction",
        "ended_at",
        "ended_at_approximate",
        "hanging_pairs",
        "hangup_cause",
        "hangup_cause_text",
        "hung_up_by",
        "in_queue",
        "linkedid",
        "open_rings",
        "open_segments",
        "operator_pairs",
        "origin_device",
        "origin_pair",
        "origin_seen",
        "originate_action_id",
        "originated",
        "outcome",
        "pbx",
        "pbx_clock",
        "pending_agent",
        "pres_withheld",
        "queue",
        "queue_caller_uid",
        "queue_joined_at",
        "queue_left_at",
        "queue_result",
        "queues",
        "ring_index",
        "rings",
        "segments",
        "side",
        "started",
        "started_at",
        "transfers",
        "variables",
        "wait_ended_at",
        "wants_target",
    )

    def __init__(
        self, pbx: str, linkedid: str, started_at: float, *, pbx_clock: bool, complete: bool
    ) -> None:
        self.pbx = pbx
        self.linkedid = linkedid
        self.started_at = started_at
        #: Times of this call come from the PBX's ``Timestamp:`` (True) or from local
        #: arrival times (False); chosen once, so durations never mix two clocks.
        self.pbx_clock = pbx_clock
        self.complete = complete
        self.direction = Direction.INTERNAL
        self.caller_number_raw: str | None = None
        self.caller_name: str | None = None
        self.pres_withheld = False
        self.dialled: str | None = None
        self.queue: str | None = None
        self.queues: list[str] = []
        self.queue_joined_at: float | None = None
        self.queue_left_at: float | None = None
        self.queue_caller_uid: str | None = None
        self.queue_result: QueueResult | None = None
        self.in_queue = False
        self.answered_at: float | None = None
        self.answered_by: str | None = None
        self.wait_ended_at: float | None = None
        self.ended_at: float | None = None
        self.rings: list[Ring] = []
        self.ring_index: dict[str, int] = {}  # leg uniqueid -> index in rings
        self.open_rings: set[str] = set()
        self.pending_agent: dict[str, tuple[str | None, str | None]] = {}
        self.segments: list[Segment] = []
        self.open_segments: dict[str, int] = {}  # leg uniqueid -> index in segments
        self.announced: set[int] = set()  # segment indexes already sent in CallAnswered
        self.transfers: list[Transfer] = []
        self.wants_target = False  # the last transfer's target is an extension, not a device
        self.hangup_cause: int | None = None
        self.hangup_cause_text: str | None = None
        self.hung_up_by: HungUpBy | None = None
        self.ended_at_approximate = False
        #: Who started tearing the conversation down, since the last answer or transfer.
        self.side: HungUpBy | None = None
        self.outcome: Outcome | None = None
        self.agreement_id: str | None = None
        self.originate_action_id: str | None = None
        self.originated = False
        self.variables: dict[str, str] = {}
        self.channels: dict[str, ChannelState] = {}
        self.alive = 0
        self.origin_seen = False
        self.origin_device: str | None = None
        self.origin_pair: str | None = None
        #: Channel pairs whose hang-up counts as the caller's / an operator's.
        self.caller_pairs: set[str] = set()
        self.operator_pairs: set[str] = set()
        self.hanging_pairs: set[str] = set()
        self.started = False

    def make_outbound(self) -> None:
        """A callback after all (an agreement, a trunk dialled): the origin is no caller."""
        if self.direction is Direction.INTERNAL:
            self.direction = Direction.OUTBOUND
            if self.origin_pair is not None:
                self.caller_pairs.discard(self.origin_pair)

    # -- rings and segments -------------------------------------------------------------

    def add_ring(self, ring: Ring) -> None:
        self.ring_index[ring.uniqueid] = len(self.rings)
        self.rings.append(ring)
        self.open_rings.add(ring.uniqueid)

    def close_ring(self, uniqueid: str, at: float, result: RingResult) -> Ring | None:
        """Close an open ring; the first end wins (duplicate DialEnds are ignored)."""
        if uniqueid not in self.open_rings:
            return None
        self.open_rings.discard(uniqueid)
        index = self.ring_index[uniqueid]
        old = self.rings[index]
        ring = replace(old, ended_at=max(at, old.started_at), result=result)
        self.rings[index] = ring
        return ring

    def refine_ring(self, uniqueid: str, result: RingResult) -> None:
        index = self.ring_index.get(uniqueid)
        if index is not None:
            self.rings[index] = replace(self.rings[index], result=result)

    def open_segment(self, channel: ChannelState, at: float) -> int:
        index = self.open_segments.get(channel.uniqueid)
        if index is None:
            index = len(self.segments)
            self.segments.append(Segment(channel.device, channel.name, at))
            self.open_segments[channel.uniqueid] = index
        return index

    def close_segment(self, uniqueid: str, at: float) -> None:
        index = self.open_segments.pop(uniqueid, None)
        if index is not None:
            seg = self.segments[index]
            self.segments[index] = replace(seg, ended_at=max(at, seg.started_at))

    def latest_open_segment(self, exclude_pairs: set[str]) -> Segment | None:
        best: Segment | None = None
        for uid, index in self.open_segments.items():
            channel = self.channels.get(uid)
            if channel is not None and channel.pair in exclude_pairs:
                continue
            seg = self.segments[index]
            if best is None or seg.started_at >= best.started_at:
                best = seg
        return best

    # -- the record ---------------------------------------------------------------------

    def finish(self, at: float, *, system: bool, approximate: bool = False) -> None:
        """Set what only the end decides: end time (``approximate``: estimated, the end
        was not seen), who hung up, outcome."""
        self.ended_at = max(at, self.started_at)
        self.ended_at_approximate = approximate
        if self.in_queue and self.queue_result is None:
            self.queue_result = QueueResult.ABANDONED
        self.in_queue = False
        self.hung_up_by = HungUpBy.SYSTEM if system else (self.side or HungUpBy.SYSTEM)
        self.outcome = self._outcome()

    def _outcome(self) -> Outcome:
        if self.answered_at is not None:
            return Outcome.TRANSFERRED if self.transfers else Outcome.ANSWERED
        if self.queue is not None:
            return Outcome.ABANDONED
        if self.direction is Direction.OUTBOUND:
            return Outcome.FAILED  # a callback that never connected the customer
        for ring in self.rings:
            if ring.result in (RingResult.NO_ANSWER, RingResult.CANCELLED):
                return Outcome.MISSED
        return Outcome.FAILED

    def snapshot(self) -> Call:
        number = self.caller_number_raw
        return Call(
            pbx=self.pbx,
            linkedid=self.linkedid,
            direction=self.direction,
            started_at=self.started_at,
            caller_number_raw=number,
            caller_name=self.caller_name,
            caller_withheld=self.pres_withheld or (number is not None and is_withheld(number)),
            dialled=self.dialled,
            queue=self.queue,
            queues=tuple(self.queues),
            queue_joined_at=self.queue_joined_at,
            answered_at=self.answered_at,
            wait_ended_at=self.wait_ended_at,
            answered_by=self.answered_by,
            ended_at=self.ended_at,
            rings=tuple(self.rings),
            segments=tuple(self.segments),
            transfers=tuple(self.transfers),
            hangup_cause=self.hangup_cause,
            hangup_cause_text=self.hangup_cause_text,
            hung_up_by=self.hung_up_by,
            outcome=self.outcome,
            agreement_id=self.agreement_id,
            originate_action_id=self.originate_action_id,
            complete=self.complete,
            variables=dict(self.variables),
            queue_result=self.queue_result,
            ended_at_approximate=self.ended_at_approximate,
        )
