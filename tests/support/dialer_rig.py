"""The dialer on fakes: the memory store twin, a scripted PBX, a MemoryReactorClock.

No thread, no socket, no global reactor: the store work runs at once (``maybeDeferred``),
the PBX is whatever bytes a test writes back (``tests/support/ami_link.py``), and time
moves only when a test advances the clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.testing import MemoryReactorClock

from cti_bridge.ami.client import AMIAccount, AMIClient, Backoff
from cti_bridge.ami.parser import Message
from cti_bridge.app.config import DialerConfig
from cti_bridge.bus.memory import MemoryBus
from cti_bridge.bus.topics import SUPERVISORS_TOPIC
from cti_bridge.dialer.policy import OperatorState
from cti_bridge.dialer.service import DialerService
from cti_bridge.store.memory import MemoryStore, open_memory_store
from cti_bridge.testing.store import cheap_hasher
from tests.support.ami_link import (
    FULLY_BOOTED,
    SECRET,
    FakeEndpoint,
    PBXSide,
    finish_resync,
    list_answer,
)
from tests.support.paths import TRACES

__all__ = ["START", "Board", "Rig", "make_rig", "run_now", "trace_blocks"]

T = TypeVar("T")

#: A Tuesday, 10:00 in Brussels: inside the default calling hours, not a holiday.
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
NODE = "node-a"


class Board:
    """The OperatorBoard double: states set by the test."""

    def __init__(self) -> None:
        self.states: dict[str, OperatorState] = {}

    def set(self, operator: str, state: str = "available", *queues: str) -> None:
        self.states[operator] = OperatorState(operator, state, frozenset(queues), START)

    def operator_states(self, pbx: str) -> list[OperatorState]:
        return list(self.states.values())


@dataclass
class Rig:
    reactor: MemoryReactorClock
    store: MemoryStore
    endpoint: FakeEndpoint
    client: AMIClient
    bus: MemoryBus
    board: Board
    service: DialerService
    pushed: list[dict[str, Any]] = field(default_factory=list)
    pbx: PBXSide | None = None
    operators: dict[str, int] = field(default_factory=dict)
    customers: dict[tuple[str, str], int] = field(default_factory=dict)

    # -- time and the PBX ------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), UTC)

    def advance(self, seconds: float) -> None:
        self.reactor.advance(seconds)

    def link_up(self) -> PBXSide:
        """Connect (or reconnect), log in, boot and resync: the link is live."""
        if self.client.state == "stopped":
            self.client.start()
        else:
            self.advance(60)  # the back-off before the next connection
        pbx = self.endpoint.accept()
        (login,) = pbx.actions()
        pbx.send(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n" + FULLY_BOOTED)
        finish_resync(pbx)
        assert self.client.state == "connected"
        self.pbx = pbx
        return pbx

    def actions(self, name: str | None = None) -> list[Message]:
        assert self.pbx is not None
        found = self.pbx.actions()
        return [a for a in found if name is None or a.get("Action") == name]

    def send(self, data: str | bytes) -> None:
        assert self.pbx is not None
        self.pbx.send(data)

    def answer_status(self, action: Message, items: list[str]) -> None:
        assert action.get("Action") == "Status"
        self.send(list_answer(action.action_id or "", items, "StatusComplete"))

    # -- the book ----------------------------------------------------------------------------

    def operator(self, username: str, device: str) -> int:
        info = self.store.accounts.add_operator(username, role="operator", password="secret-123")
        self.store.accounts.bind_device(username, device)
        self.operators[username] = info.id
        return info.id

    def callback(
        self,
        *,
        owner: str | None = "anna",
        customer: str | None = "Jan Peeters",
        number: str = "0470123456",
        due: timedelta = timedelta(minutes=-1),
        deadline: timedelta = timedelta(days=1),
        queue: str | None = None,
    ) -> int:
        customer_id = None
        if customer is not None:
            key = (customer, number)
            if key not in self.customers:
                self.customers[key] = self.store.customers.add_customer(customer, numbers=[number])
            customer_id = self.customers[key]
        return self.store.agreements.add_agreement(
            "callback",
            customer_id=customer_id,
            owner_operator_id=None if owner is None else self.operators[owner],
            callback_number=number,
            deadline=self.now + deadline,
            due_at=self.now + due,
            queue=queue,
        )

    def agreement(self, agreement_id: int) -> dict[str, Any]:
        found = self.store.agreements.get_agreement(agreement_id)
        assert found is not None
        return found

    def attempts(self, agreement_id: int) -> list[dict[str, Any]]:
        attempts: list[dict[str, Any]] = self.agreement(agreement_id)["attempts"]
        return attempts

    def pass_once(self) -> Any:
        """One pass, run to its end (the store answers at once)."""
        d = self.service.pass_once()
        self.reactor.advance(0)
        return _result(d)


def _result(d: Deferred[Any]) -> Any:
    found: list[Any] = []
    d.addBoth(found.append)
    assert found, "the pass did not end"
    return found[0]


def run_now(work: Callable[[], T]) -> Deferred[T]:
    """The store's work at once, on the reactor (its errors in the Deferred)."""
    return maybeDeferred(work)


def make_rig(*, up: bool = True, start: bool = True, **dialer: Any) -> Rig:
    """The dialer with anna (``Local/1001@agents``) and bart (``PJSIP/1002``); ``up``:
    the PBX link is live; ``start``: the passes run on the clock (the first one now)."""
    reactor = MemoryReactorClock()
    reactor.advance(START.timestamp())
    store = open_memory_store(clock=reactor.seconds, accounts={"hasher": cheap_hasher()})
    endpoint = FakeEndpoint()
    client = AMIClient(
        reactor,
        AMIAccount("main", "127.0.0.1", 5038, "cti", SECRET, auth="plain"),
        endpoint=endpoint,
        backoff=Backoff(rng=random.Random(7)),
        ping_interval=3600.0,  # no keep-alive drop while the clock jumps
    )
    bus = MemoryBus(reactor)
    board = Board()
    config = DialerConfig(enabled=True, **dialer)

    def devices(username: str) -> tuple[str, ...]:
        operator = store.accounts.get_operator(username)
        return () if operator is None else operator.devices

    service = DialerService(
        reactor=reactor,
        config=config,
        book=store.agreements,
        board=lambda: board,
        clients={"main": client},
        bus=bus,
        run=run_now,
        devices=devices,
        node_name=NODE,
        region="BE",
    )
    client.add_listener(service.listeners["main"])
    rig = Rig(reactor, store, endpoint, client, bus, board, service)
    bus.subscribe(SUPERVISORS_TOPIC, rig.pushed.append)
    rig.operator("anna", "Local/1001@agents")
    rig.operator("bart", "PJSIP/1002")
    if up:
        rig.link_up()
        reactor.advance(0)  # the resync's settling of open attempts (none)
    if start:
        service.start()
    return rig


def trace_blocks(name: str) -> list[bytes]:
    """A recorded trace's messages after its Originate was queued, each with its blank
    line: the PBX's side of one callback."""
    data = (TRACES / name).read_bytes().split(b"\r\n", 1)[1]  # the banner
    blocks = [chunk + b"\r\n\r\n" for chunk in data.split(b"\r\n\r\n") if chunk]
    start = next(i for i, b in enumerate(blocks) if b"Originate successfully queued" in b)
    return [b for b in blocks[start + 1 :] if not b.startswith(b"Response:")]
