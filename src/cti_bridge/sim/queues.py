"""app_queue, simulated: callers wait, members ring, the first to answer gets the call.

The rules are Asterisk's, because the middleware's KPIs and pops depend on them:

* ``ringall`` rings every free member at once, ``linear`` one member at a time in
  configuration order; an attempt that is not answered within ``timeout`` seconds
  ends with ``AgentRingNoAnswer`` and, after ``retry`` seconds, the next attempt;
* a member is free when it is not paused, its phone is reachable, its device is
  ``NOT_INUSE`` (``ringinuse=no``: an operator in a call is never rung) and no other
  caller is ringing it; waiting callers re-check every second, so a member that
  comes free (or is unpaused) picks up the longest waiting caller;
* the caller's own ``Queue(...,60)`` timeout ends the wait with ``QueueCallerAbandon``
  + ``QUEUESTATUS=TIMEOUT`` (quirk 11), and a caller who hangs up abandons.

The dialplan (``dialplan.py``) owns the caller's channel before and after; this
module hands it back through ``on_connect``/``on_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from twisted.internet.interfaces import IDelayedCall

from .channels import DOWN, RINGING, UP, Bridge, Channel, Headers, raw_line
from .pbx import AGENT, PBX
from .phones import Reply, Ringer, Ringing

__all__ = ["Member", "Queue", "QueueCall", "QueueConfig", "QueueEngine", "Waiting"]

#: Queue member ``Status`` per device state (AST_DEVICE_* numbering).
MEMBER_STATUS = {
    "UNKNOWN": 0,
    "NOT_INUSE": 1,
    "INUSE": 2,
    "BUSY": 3,
    "INVALID": 4,
    "UNAVAILABLE": 5,
    "RINGING": 6,
    "RINGINUSE": 7,
    "ONHOLD": 8,
}

#: How often a waiting caller looks for a free member (app_queue's RECHECK).
RECHECK = 1.0


@dataclass
class QueueConfig:
    name: str
    did: str
    members: list[str]  # devices, in configuration order
    strategy: Literal["ringall", "linear"] = "ringall"
    timeout: float = 8.0
    retry: float = 1.0
    max_wait: float = 60.0
    service_level: int = 20


@dataclass(eq=False)
class Member:
    queue: str
    interface: str
    name: str
    login_time: int
    membership: str = "static"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    in_call: bool = False
    paused: bool = False
    paused_reason: str = ""


@dataclass(eq=False)
class Attempt:
    """One member's phone ringing for one waiting caller."""

    member: Member
    leg: Channel
    started_at: float
    ringing: Ringing | None = None


@dataclass(eq=False)
class Waiting:
    """A caller in a queue (``QueueEntry``)."""

    caller: Channel
    queue: Queue
    joined_at: float
    original_position: int
    reply_for: Callable[[str], Reply]
    on_connect: Callable[[QueueCall], None]
    on_timeout: Callable[[Waiting], None]
    attempts: list[Attempt] = field(default_factory=list)
    next_linear: int = 0
    ring_timer: IDelayedCall | None = None
    retry_timer: IDelayedCall | None = None
    max_timer: IDelayedCall | None = None
    done: bool = False


@dataclass(eq=False)
class QueueCall:
    """A caller connected to a member, from ``AgentConnect`` to ``AgentComplete``."""

    waiting: Waiting
    member: Member
    leg: Channel
    bridge: Bridge
    connected_at: float
    hold_time: int
    completed: bool = False


@dataclass(eq=False)
class Queue:
    config: QueueConfig
    members: list[Member]
    waiting: list[Waiting] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    completed_in_sl: int = 0
    holdtime: int = 0
    talktime: int = 0
    recheck: IDelayedCall | None = None

    @property
    def name(self) -> str:
        return self.config.name


class QueueEngine:
    def __init__(self, pbx: PBX, ringer: Ringer, configs: list[QueueConfig]) -> None:
        self.pbx = pbx
        self.ringer = ringer
        login = int(pbx.now())
        self.queues: dict[str, Queue] = {}
        for config in configs:
            members = []
            for device in config.members:
                endpoint = pbx.endpoints[device]
                members.append(Member(config.name, device, endpoint.name, login))
            self.queues[config.name] = Queue(config, members)
        pbx.device_hooks.append(self._device_changed)

    # -- lookups ----------------------------------------------------------------

    def by_did(self, did: str) -> Queue | None:
        return next((q for q in self.queues.values() if q.config.did == did), None)

    def members_of(self, interface: str, queue: str | None = None) -> list[Member]:
        return [
            m
            for q in self.queues.values()
            if queue is None or q.name == queue
            for m in q.members
            if m.interface == interface
        ]

    def status(self, member: Member) -> int:
        return MEMBER_STATUS[self.pbx.device_states.get(member.interface, "NOT_INUSE")]

    def is_free(self, member: Member) -> bool:
        endpoint = self.pbx.endpoints.get(member.interface)
        return (
            not member.paused
            and endpoint is not None
            and endpoint.reachable
            and self.pbx.device_states.get(member.interface, "NOT_INUSE") == "NOT_INUSE"
            and not self.pbx.has_channels(member.interface)
        )

    # -- events -----------------------------------------------------------------

    def member_headers(self, m: Member) -> Headers:
        return [
            ("Queue", m.queue),
            ("MemberName", m.name),
            ("Interface", m.interface),
            ("StateInterface", m.interface),
            ("Membership", m.membership),
            ("Penalty", str(m.penalty)),
            ("CallsTaken", str(m.calls_taken)),
            ("LastCall", str(m.last_call)),
            ("LastPause", str(m.last_pause)),
            ("LoginTime", str(m.login_time)),
            ("InCall", str(int(m.in_call))),
            ("Status", str(self.status(m))),
            ("Paused", str(int(m.paused))),
            ("PausedReason", m.paused_reason),
            ("Ringinuse", "0"),
            ("Wrapuptime", "0"),
        ]

    def _agent_event(self, event: str, w: Waiting, leg: Channel, m: Member, tail: Headers) -> None:
        head = [] if w.caller.hung_up else w.caller.snapshot()
        ident = [("Queue", m.queue), ("Interface", m.interface), ("MemberName", m.name)]
        self.pbx.emit(event, AGENT, [*head, *leg.snapshot("Dest"), *ident, *tail])

    def _device_changed(self, device: str, state: str) -> None:
        for queue in self.queues.values():
            touched = False
            for member in queue.members:
                if member.interface == device:
                    self.pbx.emit("QueueMemberStatus", AGENT, self.member_headers(member))
                    touched = True
            if touched:
                self._update_avail(queue)
                if state == "NOT_INUSE" and queue.waiting:
                    self._arm_recheck(queue)

    def _update_avail(self, queue: Queue) -> None:
        free = any(self.is_free(m) for m in queue.members)
        self.pbx.pseudo_device(f"Queue:{queue.name}_avail", "NOT_INUSE" if free else "INUSE")

    # -- joining and ringing ------------------------------------------------------

    def join(
        self,
        caller: Channel,
        queue_name: str,
        *,
        reply_for: Callable[[str], Reply],
        on_connect: Callable[[QueueCall], None],
        on_timeout: Callable[[Waiting], None],
        max_wait: float | None = None,
    ) -> Waiting:
        queue = self.queues[queue_name]
        w = Waiting(
            caller,
            queue,
            self.pbx.now(),
            len(queue.waiting) + 1,
            reply_for,
            on_connect,
            on_timeout,
        )
        queue.waiting.append(w)
        for name in ("QUEUEWAIT", "QUEUEWAIT_MS"):
            self.pbx.setvar(caller, name, "")
        self.pbx.pseudo_device(f"Queue:{queue.name}", "RINGING")
        self.pbx.chan_event(
            "QueueCallerJoin",
            caller,
            [
                ("Queue", queue.name),
                ("Position", str(len(queue.waiting))),
                ("Count", str(len(queue.waiting))),
            ],
            AGENT,
        )
        wait = queue.config.max_wait if max_wait is None else max_wait
        if wait > 0:
            w.max_timer = self.pbx.sched.later(wait, self._max_wait_reached, w)
        self._tick(queue)
        return w

    def _arm_recheck(self, queue: Queue, delay: float = RECHECK) -> None:
        if queue.recheck is None or not queue.recheck.active():
            queue.recheck = self.pbx.sched.later(delay, self._recheck, queue)

    def _recheck(self, queue: Queue) -> None:
        queue.recheck = None
        self._tick(queue)

    def _tick(self, queue: Queue) -> None:
        """Ring free members for waiting callers, the longest waiting first."""
        idle = False
        for w in list(queue.waiting):
            if w.attempts or w.done or (w.retry_timer is not None and w.retry_timer.active()):
                continue
            free = [m for m in queue.members if self.is_free(m)]
            if not free:
                idle = True
                continue
            if queue.config.strategy == "linear":
                count = len(queue.members)
                order = [queue.members[(w.next_linear + i) % count] for i in range(count)]
                free = [next(m for m in order if m in free)]
            for member in free:
                self._ring(w, member)
            w.ring_timer = self.pbx.sched.later(queue.config.timeout, self._ring_timeout, w)
            self._update_avail(queue)
        if idle:
            self._arm_recheck(queue)

    def _ring(self, w: Waiting, member: Member) -> None:
        pbx, caller = self.pbx, w.caller
        endpoint = pbx.endpoints[member.interface]
        leg = pbx.new_pjsip(
            endpoint.exten,
            state=DOWN,
            caller=(endpoint.exten, endpoint.name),
            context=endpoint.context,
            exten="s",
            linkedid=caller.linkedid,
        )
        as_created = leg.snapshot("Dest")
        pbx.setvar(leg, "DIALEDPEERNUMBER", endpoint.exten)
        leg.exten = caller.exten
        leg.connected_num, leg.connected_name = caller.caller_num, caller.caller_name
        attempt = Attempt(member, leg, pbx.now())
        w.attempts.append(attempt)
        self._agent_event("AgentCalled", w, leg, member, [])
        pbx.dial_begin(caller, leg, member.interface, as_created)
        attempt.ringing = self.ringer.ring(
            leg,
            w.reply_for(member.interface),
            on_ringing=lambda r: self._rang(w, attempt),
            on_answer=lambda r: self._answered(w, attempt),
            on_reject=lambda r, cause, tech: self._rejected(w, attempt, cause, tech),
        )

    def _rang(self, w: Waiting, a: Attempt) -> None:
        self.pbx.set_state(a.leg, RINGING)
        self.pbx.newexten(a.leg, "AppQueue", "(Outgoing Line)")
        self.pbx.chan_event("NewConnectedLine", a.leg)
        self.pbx.dial_state(w.caller, a.leg)

    def _stop_ringing(self, a: Attempt) -> None:
        if a.ringing is not None:
            self.ringer.cancel(a.ringing)

    def _ring_ms(self, a: Attempt) -> str:
        return str(int((self.pbx.now() - a.started_at) * 1000))

    def _ring_timeout(self, w: Waiting) -> None:
        """Nobody answered this attempt: RingNoAnswer for each leg, retry later."""
        pbx = self.pbx
        attempts, w.attempts = w.attempts, []
        for a in attempts:
            self._stop_ringing(a)
            self._agent_event(
                "AgentRingNoAnswer", w, a.leg, a.member, [("RingTime", self._ring_ms(a))]
            )
        for status in ("NOANSWER", "CANCEL"):
            for a in attempts:
                pbx.dial_end(w.caller, a.leg, status)
        for a in attempts:
            pbx.hangup(a.leg, 0)
        self._after_attempt(w, attempts)

    def _after_attempt(self, w: Waiting, attempts: list[Attempt]) -> None:
        queue = w.queue
        if queue.config.strategy == "linear" and attempts:
            w.next_linear = (queue.members.index(attempts[-1].member) + 1) % len(queue.members)
        self.pbx.sched.cancel(w.ring_timer)
        w.retry_timer = self.pbx.sched.later(queue.config.retry, self._tick, queue)

    def decline(self, leg_name: str) -> bool:
        """The phone ringing on ``leg_name`` declines the call (603): the queue books a
        ring-no-answer, as for a busy phone. False if no queue is ringing that leg."""
        for queue in self.queues.values():
            for w in queue.waiting:
                for a in w.attempts:
                    if a.leg.name == leg_name:
                        self._stop_ringing(a)
                        self._rejected(w, a, 21, "603")
                        return True
        return False

    def _rejected(self, w: Waiting, a: Attempt, cause: int, tech: str) -> None:
        """A 486/503 from the phone: the queue books it as a ring-no-answer (pjsip 02)."""
        pbx = self.pbx
        pbx.hangup_request(a.leg, cause, tech)
        pbx.dial_end(w.caller, a.leg, "NOANSWER")
        self._agent_event("AgentRingNoAnswer", w, a.leg, a.member, [("RingTime", "0")])
        w.attempts.remove(a)
        pbx.hangup(a.leg, cause, tech)
        if not w.attempts:
            self._after_attempt(w, [a])

    def _answered(self, w: Waiting, a: Attempt) -> None:
        pbx, caller, member = self.pbx, w.caller, a.member
        others = [o for o in w.attempts if o is not a]
        w.attempts = []
        for timer in (w.ring_timer, w.max_timer, w.retry_timer):
            pbx.sched.cancel(timer)
        for o in others:
            self._stop_ringing(o)
        member.in_call = True
        pbx.set_state(a.leg, UP)
        pbx.dial_end(caller, a.leg, "ANSWER")
        for o in others:
            pbx.dial_end(caller, o.leg, "CANCEL")
        endpoint = pbx.endpoints[member.interface]
        pbx.connected_line(caller, endpoint.exten, endpoint.name)
        for o in others:
            pbx.dial_end(caller, o.leg, "CANCEL")
        hold = int(pbx.now() - w.joined_at)
        self._leave(w)
        pbx.setvar(caller, "QUEUEWAIT", str(hold))
        pbx.setvar(caller, "QUEUEWAIT_MS", str(hold * 1000))
        ring = str(int(pbx.now() - a.started_at))
        self._agent_event(
            "AgentConnect", w, a.leg, member, [("HoldTime", str(hold)), ("RingTime", ring)]
        )
        bridge = pbx.bridge_create()
        pbx.bridge_enter(bridge, a.leg)
        for o in others:
            pbx.hangup(o.leg, 26)
        pbx.bridge_enter(bridge, caller)
        pbx.bridge_peer_vars(a.leg, caller)
        queue = w.queue
        queue.holdtime = (queue.holdtime * 3 + hold) // 4
        w.on_connect(QueueCall(w, member, a.leg, bridge, pbx.now(), hold))

    def _leave(self, w: Waiting) -> None:
        queue, pbx = w.queue, self.pbx
        w.done = True
        position = queue.waiting.index(w) + 1
        queue.waiting.remove(w)
        if not queue.waiting:
            pbx.pseudo_device(f"Queue:{queue.name}", "NOT_INUSE")
        count = str(len(queue.waiting))
        pbx.chan_event(
            "QueueCallerLeave",
            w.caller,
            [("Queue", queue.name), ("Position", str(position)), ("Count", count)],
            AGENT,
        )
        pbx.setvar(w.caller, "QUEUEPOSITION", str(position))

    def _abandon_event(self, w: Waiting, hold: int) -> None:
        position = w.queue.waiting.index(w) + 1
        self.pbx.chan_event(
            "QueueCallerAbandon",
            w.caller,
            [
                ("Queue", w.queue.name),
                ("Position", str(position)),
                ("OriginalPosition", str(w.original_position)),
                ("HoldTime", str(hold)),
            ],
            AGENT,
        )
        w.queue.abandoned += 1

    def _wait_vars(self, w: Waiting, hold: int) -> None:
        pbx, caller = self.pbx, w.caller
        lifetime = pbx.now() - caller.created_at
        pbx.setvar(caller, "QUEUEWAIT", str(hold))
        pbx.setvar(caller, "QUEUEWAIT_MS", str(hold * 1000))
        pbx.setvar(caller, "DIALEDTIME", str(int(lifetime)))
        pbx.setvar(caller, "DIALEDTIME_MS", str(int(lifetime * 1000)))
        pbx.setvar(caller, "ANSWEREDTIME", "0")
        pbx.setvar(caller, "ANSWEREDTIME_MS", "0")

    def abandon(self, w: Waiting) -> None:
        """The caller hung up while waiting (trace pjsip/03)."""
        if w.done:
            return
        pbx, caller = self.pbx, w.caller
        for timer in (w.ring_timer, w.max_timer, w.retry_timer):
            pbx.sched.cancel(timer)
        attempts, w.attempts = w.attempts, []
        pbx.hangup_request(caller)
        for a in attempts:
            self._stop_ringing(a)
        for _ in range(2):
            for a in attempts:
                pbx.dial_end(caller, a.leg, "CANCEL")
        hold = int(pbx.now() - w.joined_at)
        self._wait_vars(w, hold)
        pbx.setvar(caller, "ABANDONED", "TRUE")
        self._abandon_event(w, hold)
        self._leave(w)
        pbx.soft_hangup_request(caller, 16)
        for a in attempts:
            pbx.hangup(a.leg, 0)
        pbx.hangup(caller, 0)
        self._tick(w.queue)

    def _max_wait_reached(self, w: Waiting) -> None:
        """``Queue(...,60)`` gave up: reported as an abandon, then QUEUESTATUS=TIMEOUT."""
        if w.done:
            return
        pbx, caller = self.pbx, w.caller
        for timer in (w.ring_timer, w.retry_timer):
            pbx.sched.cancel(timer)
        attempts, w.attempts = w.attempts, []
        for a in attempts:
            self._stop_ringing(a)
            self._agent_event(
                "AgentRingNoAnswer", w, a.leg, a.member, [("RingTime", self._ring_ms(a))]
            )
            pbx.dial_end(caller, a.leg, "NOANSWER")
            pbx.dial_end(caller, a.leg, "CANCEL")
            pbx.hangup(a.leg, 0)
        hold = round(pbx.now() - w.joined_at)
        pbx.setvar(caller, "ABANDONED", "TRUE")
        self._abandon_event(w, hold)
        self._wait_vars(w, hold)
        self._leave(w)
        pbx.setvar(caller, "QUEUESTATUS", "TIMEOUT")
        w.on_timeout(w)
        self._tick(w.queue)

    # -- after the connect ------------------------------------------------------

    def complete(self, call: QueueCall, reason: Literal["caller", "agent", "transfer"]) -> None:
        """``AgentComplete``: the member's part of the call is over."""
        if call.completed:
            return
        call.completed = True
        pbx, member, queue = self.pbx, call.member, call.waiting.queue
        talk = int(pbx.now() - call.connected_at)
        tail = [("HoldTime", str(call.hold_time)), ("TalkTime", str(talk)), ("Reason", reason)]
        self._agent_event("AgentComplete", call.waiting, call.leg, member, tail)
        member.in_call = False
        member.calls_taken += 1
        member.last_call = int(pbx.now())
        queue.completed += 1
        if call.hold_time <= queue.config.service_level:
            queue.completed_in_sl += 1
        queue.talktime = (queue.talktime * 3 + talk) // 4

    # -- pauses -----------------------------------------------------------------

    def pause(self, members: list[Member], paused: bool, reason: str = "") -> None:
        """QueuePause for members found with :meth:`members_of` (response goes first)."""
        pbx = self.pbx
        for m in members:
            m.paused = paused
            m.paused_reason = reason if paused else ""
            if paused:
                m.last_pause = int(pbx.now())
            state = "INUSE" if paused else "NOT_INUSE"
            pbx.pseudo_device(f"Queue:{m.queue}_pause_{m.interface}", state)
            pbx.emit("QueueMemberPause", AGENT, self.member_headers(m))
        for queue in {self.queues[m.queue] for m in members}:
            self._update_avail(queue)
            if not paused:
                self._tick(queue)

    # -- lists for QueueStatus / QueueSummary ---------------------------------------

    def entry_headers(self, w: Waiting, position: int) -> Headers:
        """``QueueEntry``: raw (unescaped) caller text, ``unknown`` without brackets."""

        def plain(text: str) -> str:
            return "unknown" if text == "<unknown>" else raw_line(text)

        c = w.caller
        return [
            ("Queue", w.queue.name),
            ("Position", str(position)),
            ("Channel", c.name),
            ("Uniqueid", c.uniqueid),
            ("CallerIDNum", plain(c.caller_num)),
            ("CallerIDName", plain(c.caller_name)),
            ("ConnectedLineNum", plain(c.connected_num)),
            ("ConnectedLineName", plain(c.connected_name)),
            ("Wait", str(int(self.pbx.now() - w.joined_at))),
            ("Priority", "0"),
        ]
