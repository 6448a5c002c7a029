"""``SimulatedPBX``: the demo PBX in one object, for ``cti-bridge demo`` and the tests.

It wires the parts (PBX state, queues, dialplan, Originate, the AMI server, the
traffic generator) around one injected reactor and one seeded random generator::

    sim = SimulatedPBX(reactor, seed=7, operators=[("PJSIP/1001", "Anna"), ...])
    port = sim.listen(port=0)              # AMI on 127.0.0.1:port, user "cti"
    sim.start_traffic(calls_per_minute=6)  # realistic calls from now on
    sim.place_call("direct_answered", operator="PJSIP/1001")  # one chosen call
    await sim.stop()
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import ServerFactory

from .channels import Channel
from .dialplan import Callee, CallPlan, Dialplan
from .originate import Originator
from .pbx import PBX, Endpoint, Scheduler
from .phones import Reply, Ringer
from .queues import QueueConfig, QueueEngine
from .reports import Reports
from .scenarios import SCENARIOS, World
from .server import AMIServerFactory
from .traffic import PAUSE_REASONS, Traffic

__all__ = [
    "CALLBACK_NUMBERS",
    "DEFAULT_CUSTOMERS",
    "DEFAULT_OPERATORS",
    "PlacedCall",
    "SimulatedPBX",
]

DEFAULT_OPERATORS: Sequence[tuple[str, str]] = (
    ("PJSIP/1001", "Anna"),
    ("PJSIP/1002", "Bart"),
    ("PJSIP/1003", "Chris"),
    ("PJSIP/1004", "Dina"),
    ("PJSIP/1005", "Emma"),
    ("PJSIP/1006", "Filip"),
)

#: Belgian callers in the formats trunks really deliver: E.164, national, 00-international
#: (distinct numbers once normalised, so every pop finds its own customer).
DEFAULT_CUSTOMERS: Sequence[tuple[str, str]] = (
    ("+3250123456", "Jan Peeters"),
    ("050765432", "Marie Dubois"),
    ("0470123456", "Luc Claes"),
    ("+3293456789", "Bakkerij Janssens"),
    ("003293456780", "Zoë Declercq"),
    ("+32478123456", "Annelies Goossens"),
    ("011223344", "Kris Willems"),
    ("+3250987654", "Sophie Maes"),
    ("056123456", "Thomas Wouters"),
    ("0032485500076", "Garage Verstraete"),
    ("+3250223344", "Els Jacobs"),
    ("0485667788", "Wim Peeters"),
    ("092300051", "Drukkerij Van Damme"),
    ("+32471120035", "Hélène Lambert"),
    ("0032470654321", "Zoë Müller"),
    ("0475112233", "Ahmed El Amrani"),
)


#: How the simulated PSTN treats a callback, by the number as dialled (national format,
#: as ``[dialer] number_format = "national"`` sends it). The first three are the real
#: harness's ``[pstn-out]`` (dialplans/simulation.conf); every other number rings a few
#: seconds and answers. ``sim.set_callee`` overrides any of them.
CALLBACK_NUMBERS: Mapping[str, Callee] = {
    "0478554433": Callee(Reply.busy(1.0)),  # busy (486)
    "025123456": Callee(Reply.noanswer()),  # rings until the Dial() gives up (30 s)
    "093334455": Callee(Reply.congestion(0.5)),  # network congested (503)
    "028880000": Callee(Reply.unallocated()),  # no such number (404)
}


@dataclass(frozen=True)
class PlacedCall:
    """A call started with :meth:`SimulatedPBX.place_call`."""

    linkedid: str
    channel: Channel
    plan: CallPlan


class SimulatedPBX:
    def __init__(
        self,
        reactor: IReactorTime,
        *,
        seed: int | None = None,
        operators: Sequence[tuple[str, str]] = DEFAULT_OPERATORS,
        customers: Sequence[tuple[str, str]] = DEFAULT_CUSTOMERS,
        queues: Sequence[QueueConfig] | None = None,
        second_line: tuple[str, str] = ("PJSIP/2001", "Tweede lijn"),
        username: str = "cti",
        secret: str | None = None,
        speed: float = 1.0,
        timestamp_events: bool = False,
        auth_failure_delay: float = 1.0,
    ) -> None:
        if not operators:
            raise ValueError("the simulator needs at least one operator")
        self.reactor = reactor
        self.rng = random.Random(seed)
        self.customers = list(customers)
        self.operators = [device for device, _ in operators]
        endpoints = [Endpoint(d, d.rsplit("/", 1)[-1], name) for d, name in operators]
        endpoints.append(
            Endpoint(second_line[0], second_line[0].rsplit("/", 1)[-1], second_line[1])
        )
        self.sched = Scheduler(reactor, speed)
        self.pbx = PBX(self.sched, self.rng, endpoints)
        if queues is None:
            queues = [
                QueueConfig("support", "3200", list(self.operators), "ringall", timeout=8.0),
                QueueConfig("sales", "3300", list(self.operators[:2]), "linear", timeout=6.0),
            ]
        self.ringer = Ringer(self.pbx)
        self.queues = QueueEngine(self.pbx, self.ringer, list(queues))
        #: Phones' replies that hold until changed (tests: "1002 never answers").
        self.replies: dict[str, Reply] = {}
        #: How dialled-out customers (callbacks) behave, by number.
        self.callees: dict[str, Callee] = dict(CALLBACK_NUMBERS)
        #: How a phone answers an Originate (a callback ringing the operator first), in
        #: turn: ``(noanswer, answer)`` lets every other callback ring out.
        self.callback_replies: dict[str, tuple[Reply, ...]] = {}
        self._callback_turns: dict[str, int] = {}
        self.dialplan = Dialplan(
            self.pbx,
            self.queues,
            self.ringer,
            default_reply=self._default_reply,
            callee_for=self._callee_for,
        )
        self.originator = Originator(self.dialplan, reply_for=self._callback_reply)
        self.reports = Reports(self.pbx, self.queues)
        self.username = username
        self.secret = secret if secret is not None else secrets.token_urlsafe(12)
        self.factory = AMIServerFactory(
            reactor,
            pbx=self.pbx,
            queues=self.queues,
            dialplan=self.dialplan,
            originator=self.originator,
            reports=self.reports,
            username=username,
            secret=self.secret,
            rng=self.rng,
            timestamp_events=timestamp_events,
            auth_failure_delay=auth_failure_delay,
        )
        self.world = World(self.queues, self.operators, endpoints[-1].exten, self.rng)
        self.traffic: Traffic | None = None
        self._ports: list[IListeningPort] = []

    # -- behaviour --------------------------------------------------------------

    def _default_reply(self, device: str) -> Reply:
        if device in self.replies:
            return self.replies[device]
        if self.pbx.device_states.get(device) not in ("NOT_INUSE", None):
            return Reply.busy(0.2)  # the phone has no call waiting: 486
        return Reply.answer(round(self.rng.uniform(2.0, 6.0), 1))

    def _callee_for(self, number: str) -> Callee:
        if number in self.callees:
            return self.callees[number]
        endpoint = self.pbx.endpoint_for_exten(number)
        if endpoint is not None:
            return Callee(
                self._default_reply(endpoint.device), talk=round(self.rng.uniform(20, 90), 1)
            )
        return Callee(
            Reply.answer(round(self.rng.uniform(3.0, 9.0), 1)),
            talk=round(self.rng.uniform(30.0, 180.0), 1),
        )

    def _callback_reply(self, device: str) -> Reply:
        replies = self.callback_replies.get(device)
        if not replies:
            return self._default_reply(device)
        turn = self._callback_turns.get(device, 0)
        self._callback_turns[device] = turn + 1
        return replies[turn % len(replies)]

    def set_callback_replies(self, device: str, *replies: Reply) -> None:
        """How ``device``'s phone answers the callbacks that ring it, one reply per
        callback in turn, round and round (none: as any other call). Other calls are
        not affected: an operator may let callbacks ring and still take queue calls."""
        self.callback_replies[device] = tuple(replies)
        self._callback_turns[device] = 0

    def set_callee(self, number: str, callee: Callee) -> None:
        """How the customer at ``number`` answers when a callback dials them."""
        self.callees[number] = callee

    def set_reply(self, device: str, reply: Reply | None) -> None:
        """How ``device``'s phone answers every call from now on (None: back to default)."""
        if reply is None:
            self.replies.pop(device, None)
        else:
            self.replies[device] = reply

    def answer(self, device: str) -> bool:
        """The operator at ``device`` picks up the call ringing there now (for tests
        that drive a phone by hand: ring with ``Reply.noanswer()``, then answer)."""
        return self.ringer.answer_now(device)

    def hang_up(self, device: str) -> bool:
        """The phone on ``device`` hangs up whatever call it is in (or rejects a ring)."""
        for name, chan in list(self.pbx.channels.items()):
            if chan.device == device:
                return self.dialplan.hangup_channel(name)
        return False

    def set_reachable(self, device: str, reachable: bool) -> None:
        """Take a phone off the network (qualify notices) or bring it back."""
        self.pbx.set_reachable(device, reachable)

    def pause(self, device: str, reason: str = "", queue: str | None = None) -> bool:
        members = self.queues.members_of(device, queue)
        self.queues.pause(members, True, reason)
        return bool(members)

    def unpause(self, device: str, queue: str | None = None) -> bool:
        members = self.queues.members_of(device, queue)
        self.queues.pause(members, False)
        return bool(members)

    # -- calls ------------------------------------------------------------------

    def place_call(
        self, scenario: str, *, caller: tuple[str, str] | None = None, **options: Any
    ) -> PlacedCall:
        """Start one call now: ``scenario`` is a name from :data:`scenarios.SCENARIOS`."""
        try:
            build = SCENARIOS[scenario]
        except KeyError:
            raise ValueError(f"unknown scenario {scenario!r}; known: {sorted(SCENARIOS)}") from None
        who = caller if caller is not None else self.rng.choice(self.customers)
        plan = build(self.world, who, **options)
        return self.run(plan)

    def run(self, plan: CallPlan) -> PlacedCall:
        """Start a call from a hand-made plan."""
        chan = self.dialplan.inbound(plan)
        return PlacedCall(chan.linkedid, chan, plan)

    def start_traffic(
        self, calls_per_minute: float = 4.0, mix: Mapping[str, float] | None = None
    ) -> Traffic:
        """Generate calls until :meth:`stop_traffic`; operators take breaks now and then."""
        self.stop_traffic()
        self.traffic = Traffic(
            self.sched,
            self.rng,
            self._traffic_call,
            self.customers,
            calls_per_minute=calls_per_minute,
            mix=mix,
            pause=self._random_break,
        )
        self.traffic.start()
        return self.traffic

    def _traffic_call(self, scenario: str, caller: tuple[str, str]) -> PlacedCall:
        """Most queue calls go to ``support``; about one in four to the second queue."""
        options: dict[str, Any] = {}
        queues = list(self.queues.queues)
        takes_queue = scenario not in ("direct_answered", "direct_missed", "ring_no_answer")
        if takes_queue and len(queues) > 1:
            options["queue"] = queues[1] if self.rng.random() < 0.25 else queues[0]
        return self.place_call(scenario, caller=caller, **options)

    def stop_traffic(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()

    def _random_break(self, rng: random.Random) -> Any:
        paused = {m.interface for q in self.queues.queues.values() for m in q.members if m.paused}
        if paused or len(self.operators) < 2:
            return None
        free = [d for d in self.operators if self.pbx.device_states.get(d) == "NOT_INUSE"]
        if not free:
            return None
        device = rng.choice(free)
        self.pause(device, rng.choice(PAUSE_REASONS))
        return lambda: self.unpause(device)

    # -- network ----------------------------------------------------------------

    def listen(self, port: int = 0, interface: str = "127.0.0.1") -> int:
        """Serve AMI on ``interface:port`` (0 = any free port); returns the port."""
        tcp = cast(IReactorTCP, self.reactor)
        factory = cast("ServerFactory[Any]", self.factory)  # Factory[P] is invariant in P
        listening = tcp.listenTCP(port, factory, interface=interface)
        self._ports.append(listening)
        address = listening.getHost()
        assert isinstance(address, IPv4Address | IPv6Address)
        return address.port

    def drop_connections(self) -> None:
        """The network between the PBX and its clients breaks: every AMI link closes
        (no ``Shutdown`` event) while the calls go on."""
        for session in list(self.factory.sessions):
            if session.transport is not None:
                session.transport.loseConnection()

    def shutdown(self, restart: bool = False) -> None:
        """Like ``core stop|restart now`` (trace 11): every call is hung up, then
        ``Event: Shutdown`` and every link closes. After a restart the PBX takes logins
        again at once, with uptime and queue statistics back at zero; traffic stays
        stopped until :meth:`start_traffic`."""
        self.stop_traffic()
        self.dialplan.hangup_everything()
        self.sched.cancel_all()
        self.factory.shutdown(restart)
        if restart:
            now = self.pbx.now()
            self.pbx.booted_at = now
            for queue in self.queues.queues.values():
                queue.completed = queue.abandoned = queue.completed_in_sl = 0
                queue.holdtime = queue.talktime = 0
                for member in queue.members:
                    member.calls_taken = member.last_call = 0
                    member.login_time = int(now)

    def stop(self) -> defer.Deferred[None]:
        """Stop traffic and timers, close connections, stop listening."""
        self.stop_traffic()
        self.sched.cancel_all()
        for session in list(self.factory.sessions):
            if session.transport is not None:
                session.transport.loseConnection()
        ports, self._ports = self._ports, []
        waits = [defer.maybeDeferred(p.stopListening) for p in ports]
        return defer.gatherResults(waits).addCallback(lambda _: None)
